//! Replays the fuzzing corpus (`fuzz/corpus/<target>/`) and every crash input kept in
//! `fuzz/regressions/<target>/` through the same parsers the cargo-fuzz targets call, on
//! stable: each must end in a value or an error, never a panic.

use std::path::{Path, PathBuf};

use mixup_cli::recipe::Recipe;
use mixup_data::{ConllOptions, Format, TagScheme, TrecLabels, parse_conll, parse_examples};

fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut v = Vec::new();
    for dir in ["corpus", "regressions"] {
        if let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) {
            v.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_file()));
        }
    }
    v.sort();
    v
}

#[test]
fn every_corpus_and_crash_input_parses_or_errors() {
    let formats: [(&str, Format); 5] = [
        ("tsv", Format::Tsv),
        (
            "csv",
            Format::Csv {
                text_column: "text".into(),
                label_column: "label".into(),
                text_b_column: None,
            },
        ),
        ("jsonl", Format::Jsonl),
        ("trec", Format::Trec(TrecLabels::Fine)),
        ("trec", Format::Trec(TrecLabels::Coarse)),
    ];
    let mut replayed = 0;
    for (target, format) in &formats {
        let files = inputs(target);
        assert!(!files.is_empty(), "no corpus for the {target} fuzz target");
        for f in files {
            let bytes = std::fs::read(&f).expect("corpus file");
            let _ = parse_examples(Path::new("replay"), &bytes, format);
            replayed += 1;
        }
    }
    let conll = inputs("conll");
    assert!(!conll.is_empty(), "no corpus for the conll fuzz target");
    for f in conll {
        let bytes = std::fs::read(&f).expect("corpus file");
        for scheme in [TagScheme::Bio, TagScheme::Iob1] {
            let options = ConllOptions {
                scheme,
                ..ConllOptions::default()
            };
            let _ = parse_conll(Path::new("replay"), &bytes, &options);
        }
        replayed += 1;
    }
    let recipes = inputs("recipe");
    assert!(!recipes.is_empty(), "no corpus for the recipe fuzz target");
    for f in recipes {
        let bytes = std::fs::read(&f).expect("corpus file");
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = Recipe::parse(text, Path::new("replay.toml"));
        }
        replayed += 1;
    }
    eprintln!("replayed {replayed} fuzz inputs");
}
