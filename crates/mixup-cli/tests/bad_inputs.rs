//! The bad-input corpus: every way a user's files, recipes, run folders and flags can be
//! wrong, each run through the real `mixup` binary. Each must exit non-zero with one line on
//! stderr that starts with `error:` and names the file, line, key or value at fault, and
//! never panic. Inputs that are unusual but valid (BOM, CRLF) must be accepted.
//!
//! The test prints the tally: cases tried, clear errors, panics.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

mod common;
use common::{bin, tmp};

const TRAIN: &str = "POS\tgood fine great\nNEG\tbad awful poor\nPOS\tgreat good\nNEG\tpoor bad\n\
                     POS\tfine good\nNEG\tawful bad\nPOS\tgood\nNEG\tbad\n";
const TEST: &str = "POS\tgood great\nNEG\tbad poor\n";
const MODEL: &str = "[model]\nkind = \"textcnn\"\nd_embed = 8\nn_filters = 4\n";

/// Writes `root/<name>/{train,test}.tsv` from raw bytes.
fn dataset(root: &Path, name: &str, train: &[u8], test: &[u8]) {
    let d = root.join(name);
    std::fs::create_dir_all(&d).expect("dataset dir");
    std::fs::write(d.join("train.tsv"), train).expect("train");
    std::fs::write(d.join("test.tsv"), test).expect("test");
}

/// Writes a recipe `root/<file>` training dataset `data` with extra TOML appended.
fn recipe(root: &Path, file: &str, data: &str, extra: &str) -> PathBuf {
    let p = root.join(file);
    std::fs::write(
        &p,
        format!(
            "name = \"{data}\"\n[data]\ndataset = \"{data}\"\nmax_len = 8\n{MODEL}\
             [train]\nepochs = 1\nbatch_size = 4\n{extra}"
        ),
    )
    .expect("recipe");
    p
}

fn train(root: &Path, recipe: &Path, out: &str) -> Command {
    let mut c = bin();
    c.args(["train", "--recipe"])
        .arg(recipe)
        .arg("--data-dir")
        .arg(root)
        .arg("--out")
        .arg(root.join(out));
    c
}

/// One case: what is run, and what its single stderr line must contain.
struct Case {
    name: &'static str,
    cmd: Command,
    needles: Vec<String>,
}

#[derive(Default)]
struct Tally {
    tried: usize,
    clear: usize,
    panics: usize,
    failures: Vec<String>,
}

impl Tally {
    fn check(&mut self, mut case: Case) {
        self.tried += 1;
        let o: Output = case.cmd.output().expect("the mixup binary runs");
        let stderr = String::from_utf8_lossy(&o.stderr).to_string();
        let stdout = String::from_utf8_lossy(&o.stdout).to_string();
        if stderr.contains("panicked at") || stdout.contains("panicked at") {
            self.panics += 1;
            self.failures
                .push(format!("{}: PANIC: {stderr}", case.name));
            return;
        }
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut problems = Vec::new();
        if o.status.success() {
            problems.push("exit status 0".to_string());
        }
        if lines.len() != 1 || !lines[0].starts_with("error: ") {
            problems.push(format!(
                "stderr is not one `error:` line ({} lines)",
                lines.len()
            ));
        }
        for n in &case.needles {
            if !stderr.contains(n.as_str()) {
                problems.push(format!("does not name {n:?}"));
            }
        }
        if problems.is_empty() {
            self.clear += 1;
        } else {
            self.failures.push(format!(
                "{}: {}; stderr: {stderr}",
                case.name,
                problems.join(", ")
            ));
        }
    }
}

fn case(name: &'static str, cmd: Command, needles: &[&str]) -> Case {
    Case {
        name,
        cmd,
        needles: needles.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn every_bad_input_is_one_clear_error_and_none_panics() {
    let t = tmp("corpus");
    let root = &t.0;
    let mut cases = Vec::new();

    // --- Data files.
    let broken: [(&str, Vec<u8>, &[&str]); 6] = [
        (
            "no-tab",
            b"POS\tgood\nthis line has no tab\n".to_vec(),
            &["train.tsv:2", "tab"],
        ),
        ("empty-file", Vec::new(), &["train.tsv", "empty"]),
        (
            "empty-label",
            b"POS\tgood\n\tno label here\n".to_vec(),
            &["train.tsv:2", "label"],
        ),
        (
            "empty-text",
            b"POS\tgood\nNEG\t   \n".to_vec(),
            &["train.tsv:2", "text"],
        ),
        (
            "non-utf8",
            b"POS\tgood\nNEG\tbad \xff\xfe bytes\n".to_vec(),
            &["train.tsv:2", "UTF-8"],
        ),
        (
            "long-line",
            {
                let mut v = b"POS\tgood\nNEG\t".to_vec();
                v.extend(std::iter::repeat_n(b'a', 10 << 20));
                v.push(b'\n');
                v
            },
            &["train.tsv:2"],
        ),
    ];
    for (name, bytes, needles) in broken {
        dataset(root, name, &bytes, TEST.as_bytes());
        let r = recipe(root, &format!("{name}.toml"), name, "");
        cases.push(case(name, train(root, &r, &format!("out-{name}")), needles));
    }
    dataset(
        root,
        "unknown-label",
        TRAIN.as_bytes(),
        b"POS\tgood\nMAYBE\tso so\n",
    );
    let r = recipe(root, "unknown-label.toml", "unknown-label", "");
    cases.push(case(
        "unknown label in test",
        train(root, &r, "out-unknown-label"),
        &["test.tsv:2", "MAYBE"],
    ));
    std::fs::create_dir_all(root.join("no-test")).expect("dir");
    std::fs::write(root.join("no-test/train.tsv"), TRAIN).expect("train");
    let r = recipe(root, "no-test.toml", "no-test", "");
    cases.push(case(
        "dataset without test.tsv",
        train(root, &r, "out-no-test"),
        &["test.tsv"],
    ));

    // --- CoNLL files of a ner recipe.
    let conll: [(&'static str, &str, &str, &[&str]); 4] = [
        (
            "CoNLL line without a tag",
            "EU\tB-ORG\nrejects\n",
            "EU\tB-ORG\n",
            &["train.txt:2"],
        ),
        (
            "CoNLL tag that is not BIO",
            "EU\tB-ORG\ncall\tE-MISC\n",
            "EU\tB-ORG\n",
            &["train.txt:2", "E-MISC"],
        ),
        (
            "CoNLL test tag never seen in train",
            "EU\tB-ORG\nsays\tO\n",
            "EU\tB-ORG\n\nParis\tB-LOC\n",
            &["test.txt:3", "B-LOC"],
        ),
        (
            "empty CoNLL file",
            "\n\n",
            "EU\tB-ORG\n",
            &["train.txt", "empty"],
        ),
    ];
    for (i, (name, train_text, test_text, needles)) in conll.into_iter().enumerate() {
        let ds = format!("conll-{i}");
        let d = root.join(&ds);
        std::fs::create_dir_all(&d).expect("dir");
        std::fs::write(d.join("train.txt"), train_text).expect("train");
        std::fs::write(d.join("test.txt"), test_text).expect("test");
        let r = root.join(format!("{ds}.toml"));
        std::fs::write(
            &r,
            format!(
                "name = \"{ds}\"\ntask = \"ner\"\n[data]\ndataset = \"{ds}\"\n\
                 [model]\nkind = \"bilstm\"\nd_embed = 4\nd_hidden = 4\n[train]\nepochs = 1\n"
            ),
        )
        .expect("recipe");
        cases.push(case(name, train(root, &r, &format!("out-{ds}")), needles));
    }

    // --- Recipes.
    dataset(root, "good", TRAIN.as_bytes(), TEST.as_bytes());
    let recipes: [(&'static str, &str, &[&str]); 9] = [
        (
            "unknown key",
            "[method]\nkind = \"word\"\nalpah = 1.0\n",
            &["alpah", "line 14"],
        ),
        ("wrong type", "lr = \"fast\"\n", &["line 12", "fast"]),
        (
            "negative alpha",
            "[method]\nkind = \"word\"\nalpha = -1.0\n",
            &["method.alpha", "-1"],
        ),
        (
            "mixing point out of range",
            "[method]\nkind = \"manifold\"\npoints = [9]\n",
            &["method.points", "9"],
        ),
        (
            "unknown method",
            "[method]\nkind = \"cutmix\"\n",
            &["method.kind", "cutmix"],
        ),
        (
            "points on a fixed-point method",
            "[method]\nkind = \"sen\"\npoints = [1]\n",
            &["method.points"],
        ),
        (
            "mixing probability above 1",
            "[method]\nkind = \"word\"\nprob = 1.5\n",
            &["method.prob", "1.5"],
        ),
        (
            "bad span mode",
            "[method]\nkind = \"ssmix\"\nspan = \"everything\"\n",
            &["everything"],
        ),
        ("toml syntax", "epochs = = 3\n", &["line 12"]),
    ];
    for (i, (name, extra, needles)) in recipes.into_iter().enumerate() {
        let r = recipe(root, &format!("recipe-{i}.toml"), "good", extra);
        let mut needles = needles.to_vec();
        let file = format!("recipe-{i}.toml");
        needles.push(&file);
        let needles: Vec<String> = needles.iter().map(|s| s.to_string()).collect();
        cases.push(Case {
            name,
            cmd: train(root, &r, &format!("out-recipe-{i}")),
            needles,
        });
    }
    let r = root.join("missing-model.toml");
    std::fs::write(&r, "name = \"x\"\n[data]\ndataset = \"good\"\n").expect("w");
    cases.push(case(
        "recipe without [model]",
        train(root, &r, "out-missing-model"),
        &["missing-model.toml", "model"],
    ));

    // --- Folders and flags.
    let good = recipe(root, "good.toml", "good", "");
    let mut c = bin();
    c.args(["train", "--recipe"])
        .arg(&good)
        .arg("--data-dir")
        .arg(root.join("no-such-dir"))
        .env("MIXUP_CACHE_DIR", root.join("cache"));
    cases.push(case("missing --data-dir", c, &["good", "no-such-dir"]));
    std::fs::write(root.join("a-file"), "x").expect("w");
    let mut c = bin();
    c.args(["train", "--recipe"])
        .arg(&good)
        .arg("--data-dir")
        .arg(root)
        .arg("--out")
        .arg(root.join("a-file/run"));
    cases.push(case(
        "unwritable output folder",
        c,
        &["cannot create the run folder", "a-file"],
    ));
    let mut c = train(root, &good, "unused");
    c.args(["--device", "tpu"]);
    cases.push(case("unknown device", c, &["tpu"]));

    // --- Run folders and checkpoints: two finished runs with different vocabularies.
    let o = train(root, &good, "run-a").output().expect("train a");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    dataset(
        root,
        "other",
        b"X\tzebra yak\nY\tquokka\nX\tyak\nY\tquokka zebra\n",
        b"X\tyak\n",
    );
    let other = recipe(root, "other.toml", "other", "");
    let o = train(root, &other, "run-b").output().expect("train b");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A run folder made of run-a's files and another model file.
    let patched_run = |name: &str, model: &[u8]| {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("dir");
        for f in ["recipe.toml", "tokenizer.json", "labels.json"] {
            std::fs::copy(root.join("run-a").join(f), dir.join(f)).expect("copy");
        }
        std::fs::write(dir.join("model.bpk"), model).expect("model");
        dir
    };
    let eval = |run: &Path, data: &Path| {
        let mut c = bin();
        c.args(["eval", "--run"]).arg(run).arg("--data").arg(data);
        c
    };
    let test = root.join("good/test.tsv");
    let other_model = std::fs::read(root.join("run-b/model.bpk")).expect("run-b model");
    cases.push(case(
        "checkpoint from another vocabulary",
        eval(&patched_run("run-mixed", &other_model), &test),
        &["model.bpk", "does not match"],
    ));
    cases.push(case(
        "garbage checkpoint",
        eval(&patched_run("run-garbage", b"not a checkpoint"), &test),
        &["run-garbage/model.bpk"],
    ));
    cases.push(case(
        "eval of a folder that is no run",
        eval(&root.join("good"), &test),
        &["good"],
    ));
    // Files given to `mixup eval --run run-a --data FILE`.
    let eval_files: [(&'static str, &str, &str, &[&str]); 4] = [
        (
            "CSV without the text column",
            "no-column.csv",
            "sentence,label\ngood,POS\n",
            &["no-column.csv", "text"],
        ),
        (
            "malformed JSONL",
            "broken.jsonl",
            "{\"text\": \"good\", \"label\": \"POS\"}\n{\"text\": \n",
            &["broken.jsonl:2"],
        ),
        (
            "eval file with a label the run never saw",
            "unknown.tsv",
            "POS\tgood\nMAYBE\tfine\n",
            &["unknown.tsv:2", "MAYBE"],
        ),
        (
            "eval file of an unknown format",
            "data.xlsx",
            "x",
            &["data.xlsx"],
        ),
    ];
    for (name, file, contents, needles) in eval_files {
        let path = root.join(file);
        std::fs::write(&path, contents).expect("eval file");
        cases.push(case(name, eval(&root.join("run-a"), &path), needles));
    }
    let mut c = bin();
    c.args(["train", "--resume"]).arg(root.join("run-a"));
    cases.push(case(
        "resume a finished run",
        c,
        &["run-a", "already finished"],
    ));
    let mut c = bin();
    c.args(["bench", "--model", "textcnn", "--seq", "0"]);
    cases.push(case("bench with zero tokens", c, &["--seq"]));

    let mut tally = Tally::default();
    for c in cases {
        tally.check(c);
    }

    // Unusual but valid: a BOM and CRLF line ends train like plain files.
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend(TRAIN.replace('\n', "\r\n").as_bytes());
    dataset(
        root,
        "bom-crlf",
        &bom,
        TEST.replace('\n', "\r\n").as_bytes(),
    );
    let r = recipe(root, "bom-crlf.toml", "bom-crlf", "");
    let o = train(root, &r, "out-bom").output().expect("train");
    assert!(
        o.status.success(),
        "BOM + CRLF: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    eprintln!(
        "bad inputs tried: {}, clear errors: {}, panics: {}",
        tally.tried, tally.clear, tally.panics
    );
    assert!(
        tally.failures.is_empty(),
        "{} of {} cases failed:\n{}",
        tally.failures.len(),
        tally.tried,
        tally.failures.join("\n")
    );
}
