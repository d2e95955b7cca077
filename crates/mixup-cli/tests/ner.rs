//! Sequence labelling through the `mixup` binary on a toy CoNLL dataset: `mixup train` with a
//! `task = "ner"` recipe (BiLSTM and Transformer taggers) and `mixup ner-al` with every SeqMix
//! variant, plus the errors of bad CoNLL files.

mod common;
use common::{bin, tiny_bert, tmp};
use std::path::Path;

/// Toy NER: names (PER) and cities (LOC) in short template sentences.
fn toy_conll(root: &Path) {
    let dir = root.join("toyner");
    std::fs::create_dir_all(&dir).expect("dir");
    let people = [
        "John Smith",
        "Mary Jones",
        "Ann Lee",
        "Bob Stone",
        "Eve Park",
    ];
    let cities = ["Paris", "New York", "Oslo", "Rome", "Lima"];
    let make = |n: usize, offset: usize| {
        let mut s = String::from("-DOCSTART- O\n\n");
        for i in 0..n {
            let p = people[(i + offset) % people.len()];
            let c = cities[(i * 3 + offset) % cities.len()];
            let mut tokens: Vec<(String, String)> = Vec::new();
            for (k, w) in p.split(' ').enumerate() {
                tokens.push((w.into(), if k == 0 { "B-PER" } else { "I-PER" }.into()));
            }
            for w in ["lives", "in"] {
                tokens.push((w.into(), "O".into()));
            }
            for (k, w) in c.split(' ').enumerate() {
                tokens.push((w.into(), if k == 0 { "B-LOC" } else { "I-LOC" }.into()));
            }
            tokens.push((".".into(), "O".into()));
            for (w, t) in tokens {
                s.push_str(&format!("{w}\t{t}\n"));
            }
            s.push('\n');
        }
        s
    };
    std::fs::write(dir.join("train.txt"), make(60, 0)).expect("train");
    std::fs::write(dir.join("dev.txt"), make(10, 2)).expect("dev");
    std::fs::write(dir.join("test.txt"), make(10, 1)).expect("test");
}

/// `mixup ner-al --recipe R --data-dir ROOT --out OUT` (more arguments to be added).
fn ner_al(root: &Path, recipe: &Path, out: &Path) -> std::process::Command {
    let mut c = bin();
    c.args(["ner-al", "--recipe"])
        .arg(recipe)
        .arg("--data-dir")
        .arg(root)
        .arg("--out")
        .arg(out);
    c
}

fn ner_recipe(root: &Path, name: &str, model: &str) -> std::path::PathBuf {
    let p = root.join(format!("{name}.toml"));
    std::fs::write(
        &p,
        format!(
            "name = \"{name}\"\ntask = \"ner\"\n[data]\ndataset = \"toyner\"\nmax_len = 16\n\
             lowercase = false\n[model]\n{model}\n[seqmix]\nwindow = 2\nmin_labelled = 2\n\
             rate = 0.5\nmax_perplexity = 1000.0\n[train]\nepochs = 4\nbatch_size = 8\nlr = 0.01\n"
        ),
    )
    .expect("recipe");
    p
}

/// `mixup train --recipe R --data-dir ROOT --out OUT` (more arguments to be added).
fn train_cmd(
    root: impl AsRef<Path>,
    recipe: impl AsRef<Path>,
    out: impl AsRef<Path>,
) -> std::process::Command {
    let mut c = bin();
    c.args(["train", "--recipe"])
        .arg(recipe.as_ref())
        .arg("--data-dir")
        .arg(root.as_ref())
        .arg("--out")
        .arg(out.as_ref());
    c
}

/// Runs `mixup train` on a ner recipe; it must succeed and print the entity F1. Returns
/// `final.json`.
fn train_ner(root: &Path, recipe: &Path, out: &Path) -> serde_json::Value {
    train_ner_said(root, recipe, out).0
}

/// [`train_ner`], also returning what the run printed.
fn train_ner_said(root: &Path, recipe: &Path, out: &Path) -> (serde_json::Value, String) {
    let o = train_cmd(root, recipe, out).output().expect("runs");
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && text.contains("test entity F1"),
        "{text}"
    );
    let fin = serde_json::from_slice(&std::fs::read(out.join("final.json")).expect("final.json"))
        .expect("final.json parses");
    (fin, text)
}

/// `mixup eval --run RUN --data FILE`; it must succeed. Returns its JSON report.
fn eval_tagger(run: &Path, data: &Path) -> serde_json::Value {
    let o = bin()
        .args(["eval", "--run"])
        .arg(run)
        .arg("--data")
        .arg(data)
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(text.trim()).expect("eval json")
}

#[test]
fn taggers_train_and_report_entity_f1_and_ner_al_writes_its_table() {
    let t = tmp("ner");
    toy_conll(&t.0);
    for (name, model) in [
        (
            "toy-bilstm",
            "kind = \"bilstm\"\nd_embed = 16\nd_hidden = 16",
        ),
        (
            "toy-transformer",
            "kind = \"transformer\"\nd_model = 16\nn_heads = 2\nn_layers = 1\nd_ff = 32",
        ),
    ] {
        let r = ner_recipe(&t.0, name, model);
        let out = t.0.join(format!("run-{name}"));
        let fin = train_ner(&t.0, &r, &out);
        let f1 = fin["test"]["micro"]["f1"].as_f64().expect("f1");
        assert!((0.0..=1.0).contains(&f1), "{fin}");
        assert!(
            fin["test"]["per_type"]["PER"]["gold"].as_u64() == Some(10),
            "{fin}"
        );
        for f in [
            "model.bpk",
            "tags.json",
            "tokenizer.json",
            "metrics.json",
            "recipe.toml",
        ] {
            assert!(out.join(f).is_file(), "{f} missing");
        }
    }
    // A BERT-family tagger (a tiny random checkpoint): WordPiece sub-tokens, each word scored
    // at its first sub-token.
    tiny_bert(&t.0.join("tiny-bert"));
    let r = t.0.join("toy-bert.toml");
    std::fs::write(
        &r,
        "name = \"toy-bert\"\ntask = \"ner\"\n[data]\ndataset = \"toyner\"\nmax_len = 16\n\
         [model]\nkind = \"bert\"\npretrained = \"tiny-bert\"\n[train]\nepochs = 2\n\
         batch_size = 8\nlr = 1e-3\noptimizer = \"adamw\"\nwarmup = 0.1\nschedule = \"linear\"\n",
    )
    .expect("recipe");
    let fin = train_ner(&t.0, &r, &t.0.join("run-bert"));
    // Every gold entity is counted at word level, whatever the sub-token split.
    assert_eq!(fin["test"]["micro"]["gold"].as_u64(), Some(20), "{fin}");

    // Tagging run folders work with `mixup eval` (entity F1 on a CoNLL file, equal to the
    // run's own final test score) and `mixup predict` (token<TAB>tag lines).
    for run in ["run-toy-bilstm", "run-bert"] {
        let dir = t.0.join(run);
        let eval = eval_tagger(&dir, &t.0.join("toyner/test.txt"));
        let fin: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("final.json")).expect("final"))
                .expect("json");
        assert_eq!(eval["sentences"].as_u64(), Some(10), "{eval}");
        let (a, b) = (
            eval["entity_f1"].as_f64().expect("f1"),
            fin["test"]["micro"]["f1"].as_f64().expect("f1"),
        );
        assert!((a - b).abs() < 1e-9, "{run}: eval F1 {a}, training's {b}");
        assert!(
            eval["per_type"]["LOC"]["gold"].as_u64() == Some(10),
            "{eval}"
        );
        let input = t.0.join("sentences.txt");
        std::fs::write(
            &input,
            "John Smith lives in Paris .\n\nAnn Lee lives in Oslo .\n",
        )
        .expect("input");
        let o = bin()
            .args(["predict", "--run"])
            .arg(&dir)
            .arg(&input)
            .output()
            .expect("runs");
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(
            o.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let lines: Vec<&str> = text.lines().collect();
        // Two sentences of 6 tokens, each followed by a blank line.
        assert_eq!(lines.len(), 14, "{text}");
        assert!(
            lines[0].starts_with("John\t") && lines[6].is_empty(),
            "{text}"
        );
        assert!(
            lines
                .iter()
                .filter(|l| !l.is_empty())
                .all(|l| l.split('\t').count() == 2),
            "{text}"
        );
    }
    // The word-level tagger learned the toy task: names and cities are found.
    let o = bin()
        .args(["predict", "--run"])
        .arg(t.0.join("run-toy-bilstm"))
        .arg(t.0.join("sentences.txt"))
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        text.contains("John\tB-PER") && text.contains("Paris\tB-LOC"),
        "{text}"
    );
    // A tag the run never saw is refused, naming the file and line.
    std::fs::write(t.0.join("bad.txt"), "John\tB-XYZ\n").expect("bad");
    let o = bin()
        .args(["eval", "--run"])
        .arg(t.0.join("run-toy-bilstm"))
        .arg("--data")
        .arg(t.0.join("bad.txt"))
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        !o.status.success() && err.contains("bad.txt:1") && err.contains("B-XYZ"),
        "{err}"
    );

    // The toy task is easy: the BiLSTM tagger finds most entities.
    let fin: serde_json::Value = serde_json::from_slice(
        &std::fs::read(t.0.join("run-toy-bilstm/final.json")).expect("final"),
    )
    .expect("json");
    assert!(
        fin["test"]["micro"]["f1"].as_f64().unwrap_or(0.0) > 0.5,
        "{fin}"
    );

    let r = ner_recipe(
        &t.0,
        "toy-al",
        "kind = \"bilstm\"\nd_embed = 16\nd_hidden = 16",
    );
    // A folder name that is not UTF-8: the report after all the training used to panic on it
    // (std::env::args); it must name the folder lossily and finish.
    #[cfg(unix)]
    let out = {
        use std::os::unix::ffi::OsStrExt;
        t.0.join(std::ffi::OsStr::from_bytes(b"al-\xff"))
    };
    #[cfg(not(unix))]
    let out = t.0.join("al");
    let o = ner_al(&t.0, &r, &out)
        .args([
            "--seeds",
            "2",
            "--seed-size",
            "10",
            "--rounds",
            "2",
            "--query",
            "10",
        ])
        .args(["--candidates", "30", "--policy", "lc"])
        .args(["--augment", "none,whole,sub,label-constrained"])
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{text}");
    let csv = std::fs::read_to_string(out.join("al.csv")).expect("al.csv");
    // 4 augmentations x 2 seeds x 3 rounds, plus the header.
    assert_eq!(csv.lines().count(), 1 + 4 * 2 * 3, "{csv}");
    // SeqMix sentences were generated and trained on by the sub-sequence arm.
    assert!(
        csv.lines()
            .any(|l| l.starts_with("sub,") && l.split(',').nth(4).is_some_and(|a| a != "0")),
        "{csv}"
    );
    let md = std::fs::read_to_string(out.join("al.md")).expect("al.md");
    assert!(
        md.contains("| none | 2 | 30 |") && md.contains("| label-constrained |"),
        "{md}"
    );
    assert!(std::fs::metadata(out.join("al.png")).expect("al.png").len() > 1000);

    // A study in pieces: seed 2 of the `none` arm alone, merged with the run above.
    let piece = t.0.join("al-seed2");
    let protocol = [
        "--seed-size",
        "10",
        "--rounds",
        "2",
        "--candidates",
        "30",
        "--policy",
        "lc",
    ];
    // One `none` piece at SEED with queries of QUERY, merged with the study above.
    let run_piece = |dir: &Path, seed: &str, query: &str| {
        ner_al(&t.0, &r, dir)
            .args(["--seeds", "1", "--seed-start", seed, "--query", query])
            .args(protocol)
            .args(["--augment", "none", "--merge"])
            .arg(out.join("al.csv"))
            .output()
            .expect("runs")
    };
    let o = run_piece(&piece, "2", "10");
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{text}");
    assert!(
        piece.join("state").join("none-seed2.json").exists(),
        "{text}"
    );
    assert!(
        !piece.join("state").join("none-seed0.json").exists(),
        "{text}"
    );
    let merged = std::fs::read_to_string(piece.join("al.csv")).expect("al.csv");
    // The earlier 24 rows and this piece's 3.
    assert_eq!(merged.lines().count(), 1 + 4 * 2 * 3 + 3, "{merged}");
    let md = std::fs::read_to_string(piece.join("al.md")).expect("al.md");
    assert!(
        md.contains("| none | 2 | 30 |") && md.contains("| 3 |\n"),
        "{md}"
    );
    // A piece of another protocol (queries of 5) is refused before any training.
    let o = run_piece(&t.0.join("al-other"), "3", "5");
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        !o.status.success() && err.contains("another study"),
        "{err}"
    );
    assert!(!t.0.join("al-other").join("state").exists(), "{err}");
}

#[test]
fn bad_conll_files_and_ner_settings_are_clear_errors() {
    let t = tmp("ner-errors");
    toy_conll(&t.0);
    let r = ner_recipe(&t.0, "toy", "kind = \"bilstm\"\nd_embed = 8\nd_hidden = 8");
    let check = |root: &Path, recipe: &Path, needles: &[&str]| {
        let o = train_cmd(root, recipe, root.join("out"))
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!o.status.success() && !err.contains("panicked"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        for n in needles {
            assert!(err.contains(n), "expected {n:?} in {err}");
        }
    };
    // A bad tag on line 3 of train.txt; a tag only test has.
    let bad = t.0.join("bad");
    std::fs::create_dir_all(bad.join("toyner")).expect("dir");
    std::fs::write(
        bad.join("toyner/train.txt"),
        "John\tB-PER\nlives\tO\nin\tLOCATION\n",
    )
    .expect("w");
    std::fs::write(bad.join("toyner/test.txt"), "John\tB-PER\n").expect("w");
    check(&bad, &r, &["train.txt:3", "LOCATION"]);
    std::fs::write(bad.join("toyner/train.txt"), "John\tB-PER\nlives\tO\n").expect("w");
    std::fs::write(bad.join("toyner/test.txt"), "John\tB-PER\n\nParis\tB-LOC\n").expect("w");
    check(&bad, &r, &["test.txt:3", "B-LOC"]);
    // A ner recipe with a model that is not a tagger, or a mixing method.
    let p = t.0.join("cnn.toml");
    std::fs::write(
        &p,
        "name = \"x\"\ntask = \"ner\"\n[data]\ndataset = \"toyner\"\n[model]\nkind = \"textcnn\"\n",
    )
    .expect("w");
    check(&t.0, &p, &["cnn.toml", "model.kind", "tagger"]);
    let p = t.0.join("mix.toml");
    std::fs::write(&p, "name = \"x\"\ntask = \"ner\"\n[data]\ndataset = \"toyner\"\n[model]\nkind = \"bilstm\"\n[method]\nkind = \"word\"\n").expect("w");
    check(&t.0, &p, &["mix.toml", "method.kind"]);
    let p = t.0.join("seqmix-variant.toml");
    std::fs::write(&p, "name = \"x\"\ntask = \"ner\"\n[data]\ndataset = \"toyner\"\n[model]\nkind = \"bilstm\"\n[seqmix]\nvariant = \"half\"\n").expect("w");
    check(&t.0, &p, &["seqmix.variant", "half"]);
    // Singleton replacement: a probability, for word-level taggers only, and only where words
    // seen once have entries of their own (min_freq = 1).
    for (name, data, model) in [
        ("su-range", "singleton_unk = 1.5", "kind = \"bilstm\""),
        ("su-zero", "singleton_unk = 0.0", "kind = \"bilstm\""),
        (
            "su-min-freq",
            "singleton_unk = 0.5\nmin_freq = 2",
            "kind = \"bilstm\"",
        ),
        (
            "su-bert",
            "singleton_unk = 0.5",
            "kind = \"bert\"\npretrained = \"tiny-bert\"",
        ),
    ] {
        let p = t.0.join(format!("{name}.toml"));
        std::fs::write(
            &p,
            format!(
                "name = \"x\"\ntask = \"ner\"\n[data]\ndataset = \"toyner\"\n{data}\n[model]\n\
                 {model}\n"
            ),
        )
        .expect("w");
        check(&t.0, &p, &[&format!("{name}.toml"), "data.singleton_unk"]);
    }
}

/// `model.crf = true`: a BiLSTM-CRF and a Transformer-CRF tagger train through the CLI, learn
/// the toy task, and `mixup eval` of the run reproduces its test F1 (Viterbi decoding with the
/// learnt transitions); a classifier recipe with a CRF is refused by key.
#[test]
fn crf_taggers_train_and_evaluate() {
    let t = tmp("ner-crf");
    toy_conll(&t.0);
    for (name, model) in [
        (
            "crf-bilstm",
            "kind = \"bilstm\"\nd_embed = 16\nd_hidden = 16\ncrf = true",
        ),
        (
            "crf-transformer",
            "kind = \"transformer\"\nd_model = 16\nn_heads = 2\nn_layers = 1\nd_ff = 32\ncrf = true",
        ),
        // Character features (a byte CNN per word) with the CRF, and input dropout.
        (
            "crf-char-bilstm",
            "kind = \"bilstm\"\nd_embed = 16\nd_hidden = 16\ncrf = true\nchar_filters = 8\n\
             input_dropout = 0.2",
        ),
        (
            "char-transformer",
            "kind = \"transformer\"\nd_model = 16\nn_heads = 2\nn_layers = 1\nd_ff = 32\n\
             char_filters = 8",
        ),
        // A CRF over a BERT-family encoder's first sub-tokens.
        (
            "crf-bert",
            "kind = \"bert\"\npretrained = \"tiny-bert\"\ncrf = true",
        ),
    ] {
        if name == "crf-bert" {
            tiny_bert(&t.0.join("tiny-bert"));
        }
        let r = ner_recipe(&t.0, name, model);
        let out = t.0.join(format!("run-{name}"));
        let fin = train_ner(&t.0, &r, &out);
        let f1 = fin["test"]["micro"]["f1"].as_f64().expect("f1");
        if name == "crf-bert" {
            // A tiny random encoder: every gold entity is counted at word level.
            assert_eq!(fin["test"]["micro"]["gold"].as_u64(), Some(20), "{fin}");
        } else {
            assert!(f1 > 0.8, "{name}: the toy task is easy ({fin})");
        }
        let o = bin()
            .args(["eval", "--run"])
            .arg(&out)
            .arg("--data")
            .arg(t.0.join("toyner/test.txt"))
            .output()
            .expect("eval");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        assert_eq!(
            v["entity_f1"].as_f64(),
            Some(f1),
            "{name}: eval = the run's test F1"
        );
    }
    // Tagger settings in a classifier recipe are refused by key.
    let r = t.0.join("crf-classifier.toml");
    for (key, line) in [
        ("model.crf", "crf = true"),
        ("model.char_filters", "char_filters = 8"),
        ("model.input_dropout", "input_dropout = 0.3"),
    ] {
        std::fs::write(
            &r,
            format!(
                "name = \"c\"\n[data]\ndataset = \"toy\"\n[model]\nkind = \"bilstm\"\n{line}\n"
            ),
        )
        .expect("recipe");
        let o = bin()
            .args(["train", "--recipe"])
            .arg(&r)
            .output()
            .expect("train");
        let m = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!o.status.success() && m.contains(key), "{m}");
    }
}

/// `mixup ner-al` saves each arm after every round: SIGKILLed in the middle, a second run
/// continues from the saved rounds (it says so) and ends with the table of an uninterrupted
/// study (the seconds column aside).
#[test]
fn ner_al_killed_mid_study_resumes_to_the_same_table() {
    use std::time::{Duration, Instant};
    let t = tmp("ner-al-resume");
    toy_conll(&t.0);
    let r = ner_recipe(
        &t.0,
        "al-resume",
        "kind = \"bilstm\"\nd_embed = 16\nd_hidden = 16",
    );
    let cmd = |out: &Path| {
        let mut c = ner_al(&t.0, &r, out);
        c.args([
            "--seeds",
            "1",
            "--seed-size",
            "10",
            "--rounds",
            "4",
            "--query",
            "10",
        ])
        .args([
            "--candidates",
            "30",
            "--policy",
            "lc",
            "--augment",
            "none,sub",
        ]);
        c
    };
    let whole = t.0.join("whole");
    let o = cmd(&whole).output().expect("ner-al");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cut = t.0.join("cut");
    let mut child = cmd(&cut)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let state = cut.join("state/none-seed0.json");
    let start = Instant::now();
    while !state.is_file() {
        assert!(start.elapsed() < Duration::from_secs(120), "no state saved");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert!(!cut.join("al.csv").exists(), "killed before the end");
    let o = cmd(&cut).output().expect("ner-al again");
    let log = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(log.contains("none seed 0: resuming after round"), "{log}");
    let table = |dir: &Path| -> Vec<String> {
        std::fs::read_to_string(dir.join("al.csv"))
            .expect("al.csv")
            .lines()
            .map(|l| l.rsplit_once(',').map_or(l, |(head, _)| head).to_string())
            .collect()
    };
    assert_eq!(table(&cut), table(&whole));
    assert_eq!(table(&whole).len(), 11, "2 arms x 5 rounds and the header");
}

/// `seqmix.train_rate`: `mixup train` adds SeqMix sentences after each epoch (and says how
/// many); a BERT tagger with it is refused by key.
#[test]
fn seqmix_augments_supervised_training() {
    let t = tmp("ner-seqmix-train");
    toy_conll(&t.0);
    let p = t.0.join("seqmix-train.toml");
    std::fs::write(
        &p,
        "name = \"seqmix-train\"\ntask = \"ner\"\n[data]\ndataset = \"toyner\"\nmax_len = 16\n\
         lowercase = false\n[model]\nkind = \"bilstm\"\nd_embed = 16\nd_hidden = 16\n\
         [seqmix]\nvariant = \"sub\"\nwindow = 2\nmin_labelled = 2\ntrain_rate = 0.5\n\
         [train]\nepochs = 3\nbatch_size = 8\nlr = 0.01\neval_every = 2\n",
    )
    .expect("recipe");
    let o = train_cmd(&t.0, &p, t.0.join("run"))
        .output()
        .expect("train");
    let log = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{log}");
    let made: Vec<usize> = log
        .lines()
        .filter(|l| l.contains("SeqMix sentences"))
        .filter_map(|l| l.split(": ").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(
        log.matches("SeqMix sentences (sub) for the next epoch")
            .count(),
        2,
        "after epochs 1 and 2: {log}"
    );
    assert!(made.iter().any(|&n| n > 0), "some sentences made: {log}");
    // `eval_every = 2` over 3 epochs scores epochs 2 and 3 only.
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.0.join("run/metrics.json")).expect("metrics.json"))
            .expect("json");
    let scored: Vec<bool> = (0..3).map(|i| metrics[i]["test_f1"].is_f64()).collect();
    assert_eq!(scored, [false, true, true], "{metrics}");
    assert!(
        log.contains("epoch 1 done: train loss") && log.contains("not evaluated"),
        "{log}"
    );
    // A BERT-family tagger mixes its words' first sub-tokens and projects onto whole-word
    // pieces (alignment: `ner_al::stream_tests::bert_seqmix_keeps_words_and_labels_aligned`).
    tiny_bert(&t.0.join("tiny-bert"));
    let bert = t.0.join("seqmix-bert.toml");
    std::fs::write(
        &bert,
        "name = \"b\"\ntask = \"ner\"\n[data]\ndataset = \"toyner\"\nmax_len = 16\n[model]\n\
         kind = \"bert\"\npretrained = \"tiny-bert\"\n[seqmix]\nvariant = \"sub\"\nwindow = 2\n\
         min_labelled = 1\ntrain_rate = 0.5\n[train]\nepochs = 2\nbatch_size = 8\nlr = 1e-3\n",
    )
    .expect("recipe");
    let o = train_cmd(&t.0, &bert, t.0.join("run-bert"))
        .output()
        .expect("train");
    let log = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{log}");
    assert!(
        log.contains("SeqMix sentences (sub) for the next epoch"),
        "{log}"
    );
    // `mixup ner-al` with the BERT tagger: each round a fresh tagger from the checkpoint,
    // queries scored at first sub-tokens, SeqMix sentences of whole-word pieces.
    let out = t.0.join("al-bert");
    let o = ner_al(&t.0, &bert, &out)
        .args([
            "--seeds",
            "1",
            "--seed-size",
            "10",
            "--rounds",
            "1",
            "--query",
            "10",
        ])
        .args([
            "--candidates",
            "30",
            "--policy",
            "nte",
            "--augment",
            "none,sub",
        ])
        .args(["--pool", "25"])
        .output()
        .expect("ner-al");
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{text}");
    let csv = std::fs::read_to_string(out.join("al.csv")).expect("al.csv");
    assert_eq!(csv.lines().count(), 1 + 2 * 2, "{csv}");
    let md = std::fs::read_to_string(out.join("al.md")).expect("al.md");
    assert!(md.contains("of a pool of 25"), "{md}");
    // A pool smaller than the rounds' queries is refused by flag.
    let o = ner_al(&t.0, &bert, &t.0.join("al-small"))
        .args([
            "--seed-size",
            "10",
            "--rounds",
            "2",
            "--query",
            "10",
            "--pool",
            "15",
        ])
        .output()
        .expect("ner-al");
    let e = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success() && e.contains("--pool 15"), "{e}");
}

/// `train.select = "best-dev"` on a tagger keeps the epoch of the best dev F1 (the first of
/// equals) and reports that epoch's test F1, as `metrics.json` recorded it; without a
/// `dev.txt` it is one clear error, and `ner-al` refuses it. `data.zero_digits` reaches the
/// saved tokenizer; `data.singleton_unk` trains and says how many singletons it found.
#[test]
fn taggers_select_on_dev_and_zero_digits_is_saved() {
    let t = tmp("ner-select");
    toy_conll(&t.0);
    let r = ner_recipe(
        &t.0,
        "toy-select",
        "kind = \"bilstm\"\nd_embed = 16\nd_hidden = 16",
    );
    let text = std::fs::read_to_string(&r)
        .expect("recipe")
        .replace(
            "lowercase = false\n",
            "lowercase = false\nzero_digits = true\nsingleton_unk = 0.5\n",
        )
        .replace("epochs = 4\n", "epochs = 4\nselect = \"best-dev\"\n");
    std::fs::write(&r, text).expect("recipe");
    let out = t.0.join("run-select");
    let (fin, said_train) = train_ner_said(&t.0, &r, &out);
    let epochs: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).expect("metrics"))
            .expect("metrics parse");
    let dev: Vec<f64> = epochs
        .iter()
        .map(|e| e["dev_f1"].as_f64().expect("dev F1 every epoch"))
        .collect();
    let best = dev
        .iter()
        .enumerate()
        .fold(0, |b, (i, &f)| if f > dev[b] { i } else { b });
    assert_eq!(
        fin["selected_epoch"].as_u64(),
        Some(best as u64 + 1),
        "{fin}"
    );
    assert_eq!(
        fin["test"]["micro"]["f1"].as_f64(),
        epochs[best]["test_f1"].as_f64(),
        "the kept epoch's test F1"
    );
    assert_eq!(fin["dev"]["micro"]["f1"].as_f64(), Some(dev[best]));
    let tok = std::fs::read_to_string(out.join("tokenizer.json")).expect("tokenizer");
    assert!(
        said_train.contains("singleton replacement: "),
        "{said_train}"
    );
    assert!(tok.contains("\"zero_digits\":true"), "{tok}");

    // The saved run evaluates to the same test F1 (the kept model is the one saved).
    let eval = eval_tagger(&out, &t.0.join("toyner/test.txt"));
    let (a, b) = (
        eval["entity_f1"].as_f64().expect("f1"),
        fin["test"]["micro"]["f1"].as_f64().expect("f1"),
    );
    assert!(
        (a - b).abs() < 1e-9,
        "eval of the saved model {a}, the run's {b}"
    );

    std::fs::remove_file(t.0.join("toyner/dev.txt")).expect("rm dev");
    let o = train_cmd(&t.0, &r, t.0.join("run-nodev"))
        .output()
        .expect("runs");
    let said = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        !o.status.success() && said.contains("best-dev") && said.contains("dev.txt"),
        "{said}"
    );
    let o = ner_al(&t.0, &r, &t.0.join("al")).output().expect("runs");
    let said = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success() && said.contains("best-dev"), "{said}");
}

/// As in the SeqMix paper, an augmenting arm's first point trains on the seed set plus its
/// SeqMix sentences (made by a tagger trained on the seed set), while `none` trains on the seed
/// set alone; `--augment-seed-set false` gives every arm the bare seed set at round 0.
#[test]
fn ner_al_augments_the_seed_set_as_the_paper() {
    let t = tmp("ner-al-seed-set");
    toy_conll(&t.0);
    let r = ner_recipe(
        &t.0,
        "toy-al0",
        "kind = \"bilstm\"\nd_embed = 16\nd_hidden = 16",
    );
    let first_points = |extra: &[&str], out: &str| -> Vec<(String, String)> {
        let out = t.0.join(out);
        let o = ner_al(&t.0, &r, &out)
            .args(["--seeds", "1", "--seed-size", "20", "--rounds", "0"])
            .args(["--augment", "none,sub"])
            .args(extra)
            .output()
            .expect("runs");
        let text =
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{text}");
        let csv = std::fs::read_to_string(out.join("al.csv")).expect("al.csv");
        csv.lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                assert_eq!(f[2], "0", "round 0 only: {csv}");
                (f[0].to_string(), f[4].to_string())
            })
            .collect()
    };
    let paper = first_points(&[], "al-paper");
    assert_eq!(paper.len(), 2, "{paper:?}");
    assert_eq!(paper[0], ("none".into(), "0".into()));
    let sub: usize = paper[1].1.parse().expect("a count");
    assert!(paper[1].0 == "sub" && sub > 0, "{paper:?}");
    let bare = first_points(&["--augment-seed-set", "false"], "al-bare");
    assert_eq!(
        bare,
        vec![("none".into(), "0".into()), ("sub".into(), "0".into())]
    );
}
