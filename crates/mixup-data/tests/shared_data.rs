//! Reads the real datasets of `../shared/data` (or `$MIXUP_DATA_DIR`). Without them the tests
//! say so and pass locally, but fail loudly in CI (`CI=true`), so CI never passes silently.

use std::path::PathBuf;

use mixup_data::{LabelSet, Splits, TrecLabels, read_trec};

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("MIXUP_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    if dir.join("trec/train.tsv").is_file() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "shared data missing at {} (set MIXUP_DATA_DIR); CI needs it",
            dir.display()
        );
    }
    eprintln!("note: shared data not found at {}; skipping", dir.display());
    None
}

#[test]
fn trec_splits_have_the_documented_counts() {
    let Some(dir) = data_dir() else { return };
    let s = Splits::load(&dir.join("trec")).expect("trec loads");
    assert_eq!(s.train.1.len(), 5452);
    assert_eq!(s.test.1.len(), 500);
    assert!(s.dev.is_none());
    let labels = LabelSet::from_examples(&s.train.1);
    assert_eq!(
        labels.names(),
        ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    );
    for e in &s.test.1 {
        labels
            .encode(e, &s.test.0)
            .expect("every test label is a train label");
    }
    // sst2 has a dev split.
    let sst2 = Splits::load(&dir.join("sst2")).expect("sst2 loads");
    assert!(sst2.dev.is_some());
}

#[test]
fn raw_trec_parses_to_the_same_examples_as_the_tsv() {
    let Some(dir) = data_dir() else { return };
    for (raw, tsv) in [("TREC.train", "train.tsv"), ("TREC.test", "test.tsv")] {
        let from_raw = read_trec(&dir.join("raw/trec").join(raw), TrecLabels::Coarse).expect("raw");
        let from_tsv = mixup_data::read_tsv(&dir.join("trec").join(tsv)).expect("tsv");
        assert_eq!(from_raw, from_tsv, "{raw} and {tsv} differ");
    }
    let fine = read_trec(&dir.join("raw/trec/TREC.train"), TrecLabels::Fine).expect("fine");
    let fine_tsv = mixup_data::read_tsv(&dir.join("trec50/train.tsv")).expect("trec50");
    assert_eq!(fine, fine_tsv);
}
