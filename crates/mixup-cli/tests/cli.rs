//! End-to-end tests of the `mixup` binary on a small synthetic dataset (no shared data, no
//! network): train, the run folder, eval, predict, and the errors a user meets.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

mod common;
mod sweep_shared;
use common::{bin, tiny_bert, tmp, toy_dataset};

fn recipe(root: &Path, method: &str) -> PathBuf {
    recipe_for(
        root,
        method,
        "kind = \"textcnn\"\nd_embed = 16\nn_filters = 8",
    )
}

fn recipe_for(root: &Path, method: &str, model: &str) -> PathBuf {
    let tag: String = model
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    let p = root.join(format!("toy-{method}-{tag}.toml"));
    std::fs::write(
        &p,
        format!(
            "name = \"toy-{method}\"\n[data]\ndataset = \"toy\"\nmax_len = 12\n\
             [model]\n{model}\n\
             [method]\nkind = \"{method}\"\n[train]\nepochs = 3\nbatch_size = 16\nlr = 0.01\n"
        ),
    )
    .expect("recipe");
    p
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the mixup binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn train(root: &Path, method: &str, out: &Path, seed: u64) -> Output {
    run(bin()
        .args(["train", "--recipe"])
        .arg(recipe(root, method))
        .args(["--data-dir"])
        .arg(root)
        .args(["--seed", &seed.to_string(), "--out"])
        .arg(out))
}

/// Runs `mixup eval` on a run folder and a labelled file; it must succeed and print JSON.
fn eval_json(run_dir: &Path, data: &Path) -> serde_json::Value {
    let o = run(bin()
        .args(["eval", "--run"])
        .arg(run_dir)
        .arg("--data")
        .arg(data));
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).expect("eval prints one JSON object")
}

fn final_json(out: &Path) -> serde_json::Value {
    let bytes = std::fs::read(out.join("final.json")).expect("final.json");
    serde_json::from_slice(&bytes).expect("final.json parses")
}

#[test]
fn train_writes_a_complete_run_and_eval_and_predict_use_it() {
    let t = tmp("full");
    toy_dataset(&t.0);
    let out = t.0.join("run");
    let o = train(&t.0, "none", &out, 0);
    assert!(o.status.success(), "{}", text(&o));
    let log = text(&o);
    assert!(
        log.contains("epoch 3 done") && log.contains("samples/s"),
        "{log}"
    );
    for f in [
        "recipe.toml",
        "tokenizer.json",
        "labels.json",
        "model.bpk",
        "metrics.csv",
        "metrics.json",
        "final.json",
        "curves.png",
    ] {
        assert!(out.join(f).is_file(), "run folder lacks {f}");
    }
    let csv = std::fs::read_to_string(out.join("metrics.csv")).expect("csv");
    assert_eq!(csv.lines().count(), 4, "{csv}");
    let png = std::fs::read(out.join("curves.png")).expect("png");
    assert_eq!(&png[..4], b"\x89PNG");
    let report = final_json(&out);
    let acc = report["test_accuracy"].as_f64().expect("accuracy");
    // The toy task is easy: a model that learnt nothing would sit near 1/3.
    assert!(acc > 0.9, "toy test accuracy {acc}");

    // eval on the test file reproduces the run's own test accuracy.
    assert_eq!(
        eval_json(&out, &t.0.join("toy/test.tsv"))["accuracy"].as_f64(),
        Some(acc)
    );
    assert_eq!(
        eval_json(&out, &t.0.join("toy/test.tsv"))["examples"].as_u64(),
        Some(30)
    );

    // predict reads standard input and prints label, probability, text.
    let mut child = bin()
        .args(["predict", "--run"])
        .arg(&out)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"apple the apple of apple\n\nengine and engine\n")
        .expect("write");
    let o = child.wait_with_output().expect("predict");
    assert!(o.status.success(), "{}", text(&o));
    let lines: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("FRUIT\t") && lines[1].starts_with("MACHINE\t"),
        "{lines:?}"
    );
    let prob: f64 = lines[0]
        .split('\t')
        .nth(1)
        .expect("prob")
        .parse()
        .expect("number");
    assert!((0.0..=1.0).contains(&prob));

    // A file with a label the run never saw: an error naming file and line.
    let bad = t.0.join("bad.tsv");
    std::fs::write(&bad, "FRUIT\tapple\nPLANET\tmars\n").expect("write");
    let o = run(bin()
        .args(["eval", "--run"])
        .arg(&out)
        .arg("--data")
        .arg(&bad));
    assert!(!o.status.success());
    assert!(
        text(&o).contains("bad.tsv:2") && text(&o).contains("PLANET"),
        "{}",
        text(&o)
    );

    // A checkpoint that does not fit its recipe (labels changed): a clear error.
    let broken = t.0.join("broken");
    std::fs::create_dir_all(&broken).expect("dir");
    for f in ["recipe.toml", "tokenizer.json", "model.bpk"] {
        std::fs::copy(out.join(f), broken.join(f)).expect("copy");
    }
    std::fs::write(broken.join("labels.json"), r#"["A","B","C","D"]"#).expect("labels");
    let o = run(bin()
        .args(["eval", "--run"])
        .arg(&broken)
        .arg("--data")
        .arg(&bad));
    assert!(!o.status.success());
    assert!(text(&o).contains("does not match"), "{}", text(&o));
    assert!(!text(&o).contains("panicked"), "{}", text(&o));
}

#[test]
fn every_method_trains_and_the_same_seed_gives_the_same_run() {
    let t = tmp("methods");
    toy_dataset(&t.0);
    for method in ["input", "word", "sen", "manifold"] {
        let out = t.0.join(method);
        let o = train(&t.0, method, &out, 3);
        assert!(o.status.success(), "{method}: {}", text(&o));
        assert!(
            text(&o).contains(", mixing)"),
            "{method} never mixed: {}",
            text(&o)
        );
        assert_eq!(final_json(&out)["method"], method);
    }
    let again = t.0.join("manifold-again");
    let o = train(&t.0, "manifold", &again, 3);
    assert!(o.status.success(), "{}", text(&o));
    let a = std::fs::read_to_string(t.0.join("manifold/metrics.json")).expect("a");
    let b = std::fs::read_to_string(again.join("metrics.json")).expect("b");
    let strip = |s: &str| -> Vec<(f64, f64, f64)> {
        let v: serde_json::Value = serde_json::from_str(s).expect("json");
        v.as_array()
            .expect("array")
            .iter()
            .map(|e| {
                (
                    e["train_loss"].as_f64().expect("l"),
                    e["test_loss"].as_f64().expect("t"),
                    e["test_acc"].as_f64().expect("a"),
                )
            })
            .collect()
    };
    assert_eq!(strip(&a), strip(&b), "same seed, different run on flex");
    let other = t.0.join("manifold-seed4");
    assert!(train(&t.0, "manifold", &other, 4).status.success());
    let c = std::fs::read_to_string(other.join("metrics.json")).expect("c");
    assert_ne!(
        strip(&a),
        strip(&c),
        "a different seed gave the very same run"
    );
}

#[test]
fn user_errors_are_messages_not_panics() {
    let t = tmp("errors");
    toy_dataset(&t.0);
    let r = recipe(&t.0, "word");
    let check = |o: Output, needles: &[&str]| {
        assert!(!o.status.success(), "should fail: {}", text(&o));
        let s = text(&o);
        assert!(!s.contains("panicked"), "panicked: {s}");
        for n in needles {
            assert!(s.contains(n), "expected {n:?} in: {s}");
        }
    };
    check(
        run(bin()
            .args(["train", "--recipe"])
            .arg(&r)
            .args(["--device", "tpu"])),
        &["unknown device", "tpu"],
    );
    if !cfg!(feature = "wgpu") {
        check(
            run(bin()
                .args(["train", "--recipe"])
                .arg(&r)
                .args(["--device", "wgpu"])),
            &["not compiled", "--features wgpu"],
        );
        check(
            run(bin()
                .args(["train", "--recipe"])
                .arg(&r)
                .env("BURN_DEVICE", "wgpu")),
            &["--features wgpu"],
        );
    }
    check(
        run(bin()
            .args(["train", "--recipe"])
            .arg(&r)
            .args(["--method", "cutmix"])),
        &["--method", "cutmix", "mixup-transformer"],
    );
    check(
        run(bin().args(["train", "--recipe"]).arg(t.0.join("nope.toml"))),
        &["nope.toml"],
    );
    let bad = t.0.join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\n[data]\ndataset = \"toy\"\n[model]\nkind = \"textcnn\"\n[train]\nepochs = 0\n").expect("w");
    check(
        run(bin().args(["train", "--recipe"]).arg(&bad)),
        &["bad.toml", "train.epochs"],
    );
    // A dataset that is nowhere and not fetchable: the message says where it looked and how
    // to point at it.
    let missing = t.0.join("missing.toml");
    std::fs::write(
        &missing,
        "name = \"x\"\n[data]\ndataset = \"sst9\"\n[model]\nkind = \"textcnn\"\n",
    )
    .expect("w");
    check(
        run(bin()
            .args(["train", "--recipe"])
            .arg(&missing)
            .args(["--data-dir"])
            .arg(&t.0)
            .env("MIXUP_CACHE_DIR", t.0.join("cache"))),
        &["sst9", "MIXUP_DATA_DIR", "--data-dir"],
    );
    // A malformed training file.
    let broken = t.0.join("broken");
    std::fs::create_dir_all(broken.join("toy")).expect("dir");
    std::fs::write(
        broken.join("toy/train.tsv"),
        "FRUIT\tapple\nno tab on this line\n",
    )
    .expect("w");
    std::fs::write(broken.join("toy/test.tsv"), "FRUIT\tapple\n").expect("w");
    check(
        run(bin()
            .args(["train", "--recipe"])
            .arg(&r)
            .args(["--data-dir"])
            .arg(&broken)),
        &["train.tsv:2", "no tab"],
    );
    check(
        run(bin()
            .args(["eval", "--run"])
            .arg(t.0.join("no-run"))
            .args(["--data", "x.tsv"])),
        &["no-run"],
    );
    // A run folder that cannot be created (its parent is a file): refused before training.
    let file = t.0.join("a-file");
    std::fs::write(&file, "x").expect("w");
    check(
        run(bin()
            .args(["train", "--recipe"])
            .arg(&r)
            .args(["--data-dir"])
            .arg(&t.0)
            .arg("--out")
            .arg(file.join("run"))),
        &["cannot create the run folder", "a-file"],
    );
    // A learning rate that blows the weights up: a clear stop, and no poisoned checkpoint.
    let huge = t.0.join("huge-lr.toml");
    std::fs::write(&huge, "name = \"x\"\n[data]\ndataset = \"toy\"\nmax_len = 12\n[model]\nkind = \"textcnn\"\nd_embed = 16\nn_filters = 8\n[train]\nepochs = 2\nbatch_size = 16\nlr = 1e30\n").expect("w");
    let diverged = t.0.join("diverged");
    check(
        run(bin()
            .args(["train", "--recipe"])
            .arg(&huge)
            .args(["--data-dir"])
            .arg(&t.0)
            .arg("--out")
            .arg(&diverged)),
        &["training diverged", "epoch 1", "train.lr"],
    );
    assert!(
        !diverged.join("model.bpk").exists(),
        "a diverged run wrote a checkpoint"
    );
}

/// `--device flex,flex` trains data-parallel (two replicas, each half of every batch, their
/// gradients summed on the first) and learns the task like one device does; a list with a bad
/// entry is refused before anything is trained.
#[test]
fn a_device_list_trains_data_parallel() {
    let t = tmp("data-parallel");
    toy_dataset(&t.0);
    let out = t.0.join("dp");
    let on = |method: &str, devices: &str, out: &Path| {
        run(bin()
            .args(["train", "--recipe"])
            .arg(recipe(&t.0, method))
            .arg("--data-dir")
            .arg(&t.0)
            .args(["--device", devices, "--out"])
            .arg(out))
    };
    let o = on("tmix", "flex,flex", &out);
    assert!(o.status.success(), "{}", text(&o));
    let report = final_json(&out);
    assert_eq!(report["device"], "flex,flex");
    let acc = report["test_accuracy"].as_f64().expect("accuracy");
    assert!(acc >= 0.9, "data-parallel run learns the toy task: {acc}");
    let o = on("none", "flex,tpu", &t.0.join("bad"));
    assert!(!o.status.success());
    assert!(text(&o).contains("\"tpu\""), "{}", text(&o));
    assert!(
        !t.0.join("bad").exists(),
        "nothing is written for a bad device list"
    );
}

#[test]
fn bilstm_trains_with_manifold_mixup_and_eval_reloads_it() {
    let t = tmp("bilstm");
    toy_dataset(&t.0);
    let r = recipe_for(
        &t.0,
        "manifold",
        "kind = \"bilstm\"\nd_embed = 16\nd_hidden = 8\nn_layers = 2\npooling = \"mean\"",
    );
    let out = t.0.join("run");
    let o = run(bin()
        .args(["train", "--recipe"])
        .arg(&r)
        .args(["--data-dir"])
        .arg(&t.0)
        .args(["--epochs", "6", "--out"])
        .arg(&out));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains(", mixing)"), "{}", text(&o));
    let acc = final_json(&out)["test_accuracy"]
        .as_f64()
        .expect("accuracy");
    assert!(acc > 0.6, "toy BiLSTM test accuracy {acc}");
    assert_eq!(
        eval_json(&out, &t.0.join("toy/test.tsv"))["accuracy"].as_f64(),
        Some(acc)
    );
}

/// Runs `mixup sweep` over the toy recipes of `root` (two epochs, seeds 0 and 1) into `out`.
fn sweep(root: &Path, out: &Path) -> Output {
    run(bin()
        .args(["sweep", "--recipes"])
        .arg(format!("{}/toy-*.toml", root.display()))
        .args(["--seeds", "2", "--epochs", "2", "--data-dir"])
        .arg(root)
        .arg("--out")
        .arg(out))
}

/// The `(recipe, test accuracy cell)` of each row of a sweep's `results.md` (its first
/// table; the paired comparison follows it).
fn accuracy_cells(out: &Path) -> Vec<(String, String)> {
    let md = std::fs::read_to_string(out.join("results.md")).expect("results.md");
    let table = md.split("\n## Paired").next().unwrap_or_default();
    table
        .lines()
        .filter(|l| l.starts_with("| toy |"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            // "", dataset, model, method, recipe, accuracy, ...
            (cells[4].to_string(), cells[5].to_string())
        })
        .collect()
}

#[test]
fn sweep_trains_every_recipe_and_seed_resumes_and_repeats_exactly() {
    let t = tmp("sweep");
    toy_dataset(&t.0);
    for method in ["none", "word"] {
        // A slower learning rate than the other tests: accuracies that differ by seed, so that
        // equal tables mean something.
        let r = recipe(&t.0, method);
        let slow = std::fs::read_to_string(&r)
            .expect("recipe")
            .replace("lr = 0.01", "lr = 0.001");
        std::fs::write(&r, slow).expect("recipe");
    }
    let a = t.0.join("sweep-a");
    let o = sweep(&t.0, &a);
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    for line in [
        "[1/4] toy-none seed 0: training",
        "[2/4] toy-none seed 1: training",
        "[3/4] toy-word seed 0: training",
        "[4/4] toy-word seed 1: training",
        "epoch 2 done",
        "results (4 of 4 runs finished)",
    ] {
        assert!(log.contains(line), "expected {line:?} in: {log}");
    }
    for run in [
        "toy-none/seed0",
        "toy-none/seed1",
        "toy-word/seed0",
        "toy-word/seed1",
    ] {
        assert!(
            a.join(run).join("final.json").is_file(),
            "{run} not finished"
        );
        assert_eq!(final_json(&a.join(run))["epochs"], 2);
    }
    let md = std::fs::read_to_string(a.join("results.md")).expect("results.md");
    assert!(md.contains("mixup sweep --recipes"), "{md}");
    assert!(md.contains("| toy | textcnn | none | toy-none |"), "{md}");
    assert!(md.contains("| toy | textcnn | word | toy-word |"), "{md}");
    let cells = accuracy_cells(&a);
    assert_eq!(cells.len(), 2, "{md}");
    assert!(
        cells.iter().all(|(_, acc)| acc.contains(" ± ")),
        "{cells:?}"
    );
    // The table is printed too.
    assert!(log.contains("| toy | textcnn | word | toy-word |"), "{log}");
    let png = std::fs::read(a.join("results.png")).expect("results.png");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "results.png is not a PNG"
    );
    let csv = std::fs::read_to_string(a.join("results.csv")).expect("results.csv");
    assert_eq!(csv.lines().count(), 5, "{csv}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("results.json")).expect("json"))
            .expect("results.json parses");
    assert_eq!(json.as_array().map(Vec::len), Some(2), "{json}");

    // Again: every run is finished, nothing trains, the numbers stay.
    let o = sweep(&t.0, &a);
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    assert_eq!(log.matches(": skipped (finished)").count(), 4, "{log}");
    assert!(!log.contains(": training"), "{log}");
    assert_eq!(accuracy_cells(&a), cells);

    // A fresh folder: the same seeds give the same accuracies on flex.
    let b = t.0.join("sweep-b");
    let o = sweep(&t.0, &b);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        accuracy_cells(&b),
        cells,
        "a second sweep gave other accuracies"
    );
    let loss = |dir: &Path, run: &str| final_json(&dir.join(run))["test_loss"].as_f64();
    for run in [
        "toy-none/seed0",
        "toy-none/seed1",
        "toy-word/seed0",
        "toy-word/seed1",
    ] {
        assert_eq!(loss(&a, run), loss(&b, run), "{run}: another test loss");
    }
    assert_ne!(loss(&a, "toy-none/seed0"), loss(&a, "toy-none/seed1"));

    // An interrupted run (no final.json) is trained again, alone.
    std::fs::remove_file(b.join("toy-word/seed1/final.json")).expect("remove");
    let o = sweep(&t.0, &b);
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    assert!(log.contains("[4/4] toy-word seed 1: training"), "{log}");
    assert_eq!(log.matches(": skipped (finished)").count(), 3, "{log}");
    assert_eq!(accuracy_cells(&b), cells);
}

#[test]
fn sweep_errors_name_the_pattern_and_the_clashing_recipes() {
    let t = tmp("sweep-errors");
    toy_dataset(&t.0);
    let o = run(bin()
        .args(["sweep", "--recipes"])
        .arg(t.0.join("*.nothing"))
        .arg("--out")
        .arg(t.0.join("out")));
    assert!(!o.status.success());
    assert!(text(&o).contains("*.nothing"), "{}", text(&o));
    assert!(!text(&o).contains("panicked"), "{}", text(&o));
    // Two files, one recipe name: refused before anything trains.
    let a = recipe(&t.0, "none");
    let b = recipe_for(&t.0, "none", "kind = \"bilstm\"\nd_embed = 8\nd_hidden = 4");
    let o = run(bin()
        .args(["sweep", "--recipes"])
        .arg(&a)
        .arg(&b)
        .arg("--out")
        .arg(t.0.join("out")));
    assert!(!o.status.success());
    let s = text(&o);
    for file in [&a, &b] {
        let name = file.file_name().expect("name").to_string_lossy();
        assert!(s.contains(name.as_ref()), "expected {name} in: {s}");
    }
    assert!(!t.0.join("out").exists(), "a refused sweep wrote something");
}

/// Writes a toy recipe with the given `[model]` and `[method]` bodies.
fn recipe_text(root: &Path, name: &str, model: &str, method: &str) -> PathBuf {
    let p = root.join(format!("{name}.toml"));
    std::fs::write(
        &p,
        format!(
            "name = \"{name}\"\n[data]\ndataset = \"toy\"\nmax_len = 12\n[model]\n{model}\n\
             [method]\n{method}\n[train]\nepochs = 4\nbatch_size = 16\nlr = 0.003\n"
        ),
    )
    .expect("recipe");
    p
}

fn train_recipe(root: &Path, recipe: &Path, out: &Path) -> Output {
    run(bin()
        .args(["train", "--recipe"])
        .arg(recipe)
        .arg("--data-dir")
        .arg(root)
        .arg("--out")
        .arg(out))
}

#[test]
fn transformer_trains_with_tmix_mixup_transformer_ssmix_and_clean_loss() {
    let t = tmp("transformer");
    toy_dataset(&t.0);
    let pre_mean = "kind = \"transformer\"\nd_model = 16\nn_heads = 2\nn_layers = 2\nd_ff = 32";
    let post_cls = format!("{pre_mean}\nnorm = \"post\"\npooling = \"cls\"\nactivation = \"gelu\"");
    let cases = [
        (
            "tr-tmix",
            pre_mean.to_string(),
            "kind = \"tmix\"\nalpha = 16.0",
        ),
        (
            "tr-tmix-layer1-clean",
            pre_mean.to_string(),
            "kind = \"tmix\"\nalpha = 0.4\nlambda_ge_half = true\npoints = [1]\nclean_loss = true\n\
             loss = \"interpolated\"",
        ),
        (
            "tr-mixup-transformer",
            post_cls.clone(),
            "kind = \"mixup-transformer\"\noff_epoch = 3",
        ),
        (
            "tr-ssmix-cls",
            post_cls.clone(),
            "kind = \"ssmix\"\npairing = \"split-halves\"\nspan_share = 0.3",
        ),
        (
            "tr-ssmix-random-tokens",
            pre_mean.to_string(),
            "kind = \"ssmix\"\nspan = \"random-tokens\"\nloss = \"interpolated\"",
        ),
    ];
    for (name, model, method) in cases {
        let out = t.0.join(name);
        let o = train_recipe(&t.0, &recipe_text(&t.0, name, &model, method), &out);
        assert!(o.status.success(), "{name}: {}", text(&o));
        let log = text(&o);
        assert!(log.contains(", mixing)"), "{name}: {log}");
        if name == "tr-mixup-transformer" {
            // off_epoch = 3 mixes epochs 1 to 3 (timm's mixup_off_epoch), not epoch 4.
            let done = |e: usize| {
                log.lines()
                    .find(|l| l.starts_with(&format!("epoch {e} done")))
                    .unwrap_or_default()
                    .to_string()
            };
            assert!(done(3).contains("mixing"), "{log}");
            assert!(!done(4).is_empty() && !done(4).contains("mixing"), "{log}");
        }
        let acc = final_json(&out)["test_accuracy"]
            .as_f64()
            .expect("accuracy");
        assert!(acc > 0.5, "{name}: toy Transformer test accuracy {acc}");
        assert_eq!(
            eval_json(&out, &t.0.join("toy/test.tsv"))["accuracy"].as_f64(),
            Some(acc),
            "{name}: eval of the saved run"
        );
    }
}

#[test]
fn transformer_and_method_settings_are_checked() {
    let t = tmp("transformer-errors");
    toy_dataset(&t.0);
    let model = "kind = \"transformer\"\nd_model = 16\nn_heads = 2\nn_layers = 2\nd_ff = 32";
    let cases = [
        (
            "kind = \"transformer\"\nd_model = 10\nn_heads = 4",
            "kind = \"none\"",
            "model.n_heads",
        ),
        (
            "kind = \"transformer\"\npooling = \"max\"",
            "kind = \"none\"",
            "model.pooling",
        ),
        (model, "kind = \"sen\"\npoints = [1]", "method.points"),
        (model, "kind = \"tmix\"\npoints = [3]", "point 3 is Pooled"),
        (
            model,
            "kind = \"manifold\"\npoints = [9]",
            "point 9 does not exist",
        ),
        (model, "kind = \"word\"\noff_epoch = 0", "method.off_epoch"),
        (
            model,
            "kind = \"ssmix\"\nspan_share = 0.0",
            "method.span_share",
        ),
        (model, "kind = \"ssmix\"\nspan = \"words\"", "method.span"),
    ];
    for (i, (model, method, want)) in cases.into_iter().enumerate() {
        let name = format!("bad{i}");
        let o = train_recipe(
            &t.0,
            &recipe_text(&t.0, &name, model, method),
            &t.0.join(&name),
        );
        let log = text(&o);
        assert!(!o.status.success(), "case {i} should fail: {log}");
        assert!(log.contains(want), "case {i}: want {want:?} in: {log}");
        assert!(!log.contains("panicked"), "case {i}: {log}");
    }
}

// ---- BERT-family encoders ---------------------------------------------------------------------

/// A toy recipe with a `kind = "bert"` model (extra model keys in `model`), the method in
/// `method`, and BERT-style optimisation.
fn bert_recipe(root: &Path, name: &str, model: &str, method: &str, train: &str) -> PathBuf {
    let p = root.join(format!("{name}.toml"));
    std::fs::write(
        &p,
        format!(
            "name = \"{name}\"\n[data]\ndataset = \"toy\"\nmax_len = 12\n\
             [model]\nkind = \"bert\"\n{model}\n[method]\n{method}\n\
             [train]\nepochs = 10\nbatch_size = 16\nlr = 0.005\n{train}\n"
        ),
    )
    .expect("recipe");
    p
}

const BERT_TRAIN: &str = "optimizer = \"adamw\"\nweight_decay = 0.01\nwarmup = 0.1\n\
                          schedule = \"linear\"\nclip_grad_norm = 1.0";

#[test]
fn bert_trains_from_a_checkpoint_and_its_runs_load_without_it() {
    let t = tmp("bert");
    toy_dataset(&t.0);
    let ckpt = t.0.join("tiny-bert");
    tiny_bert(&ckpt);
    let by_path = format!("pretrained = {:?}", ckpt.display().to_string());
    let cases = [
        (
            "bert-none",
            "pretrained = \"tiny-bert\"".to_string(),
            "kind = \"none\"",
        ),
        (
            "bert-tmix",
            "pretrained = \"tiny-bert\"\ndropout = 0.2".to_string(),
            "kind = \"tmix\"\nalpha = 0.4",
        ),
        (
            "bert-ssmix",
            format!("{by_path}\npooler = true\nfreeze_layers = 1"),
            "kind = \"ssmix\"",
        ),
    ];
    let mut runs = Vec::new();
    for (name, model, method) in &cases {
        let out = t.0.join("runs").join(name);
        let recipe = bert_recipe(&t.0, name, model, method, BERT_TRAIN);
        let o = train_recipe(&t.0, &recipe, &out);
        let log = text(&o);
        assert!(o.status.success(), "{name}: {log}");
        assert!(log.contains("epoch 10 done"), "{name}: {log}");
        if *method != "kind = \"none\"" {
            assert!(log.contains(", mixing)"), "{name}: {log}");
        }
        for f in [
            "recipe.toml",
            "labels.json",
            "model.bpk",
            "bert-config.json",
            "wordpiece/vocab.txt",
            "final.json",
            "curves.png",
        ] {
            assert!(out.join(f).is_file(), "{name}: run folder lacks {f}");
        }
        assert!(
            !out.join("tokenizer.json").exists(),
            "{name}: no word vocabulary"
        );
        let acc = final_json(&out)["test_accuracy"]
            .as_f64()
            .expect("accuracy");
        assert!(acc > 0.5, "{name}: toy BERT test accuracy {acc}: {log}");
        runs.push((name.to_string(), out, acc));
    }

    // The runs load from their own folders: the checkpoint is no longer needed.
    std::fs::rename(&ckpt, t.0.join("moved-away")).expect("move the checkpoint");
    for (name, out, acc) in &runs {
        assert_eq!(
            eval_json(out, &t.0.join("toy/test.tsv"))["accuracy"].as_f64(),
            Some(*acc),
            "{name}: eval of the saved run"
        );
        let file = t.0.join("predict.txt");
        std::fs::write(
            &file,
            "apple the apple of apple\n\nengine and engine\nriver\n",
        )
        .expect("predict input");
        let o = run(bin().args(["predict", "--run"]).arg(out).arg(&file));
        assert!(o.status.success(), "{name}: {}", text(&o));
        let lines: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(lines.len(), 3, "{name}: {lines:?}");
        for line in &lines {
            let label = line.split('\t').next().unwrap_or_default();
            assert!(
                ["FRUIT", "WATER", "MACHINE"].contains(&label),
                "{name}: {line:?}"
            );
        }
    }

    // A checkpoint that does not fit its config or labels, or a broken config: errors naming
    // the file.
    let (_, out, _) = &runs[1];
    let broken = t.0.join("broken");
    std::fs::create_dir_all(broken.join("wordpiece")).expect("dir");
    for f in [
        "recipe.toml",
        "bert-config.json",
        "model.bpk",
        "wordpiece/vocab.txt",
    ] {
        std::fs::copy(out.join(f), broken.join(f)).expect("copy");
    }
    std::fs::write(broken.join("labels.json"), r#"["A","B","C","D"]"#).expect("labels");
    let eval_broken = || {
        run(bin()
            .args(["eval", "--run"])
            .arg(&broken)
            .arg("--data")
            .arg(t.0.join("toy/test.tsv")))
    };
    let o = eval_broken();
    assert!(!o.status.success());
    assert!(
        text(&o).contains("model.bpk") && text(&o).contains("does not match"),
        "{}",
        text(&o)
    );
    std::fs::write(broken.join("bert-config.json"), "{}").expect("config");
    let o = eval_broken();
    assert!(!o.status.success());
    assert!(text(&o).contains("bert-config.json"), "{}", text(&o));
    assert!(!text(&o).contains("panicked"), "{}", text(&o));

    // A bert run folder without its tokenizer: an error naming what is missing.
    let (_, out, _) = &runs[0];
    std::fs::remove_dir_all(out.join("wordpiece")).expect("remove tokenizer");
    let o = run(bin()
        .args(["eval", "--run"])
        .arg(out)
        .arg("--data")
        .arg(t.0.join("toy/test.tsv")));
    assert!(!o.status.success());
    assert!(text(&o).contains("wordpiece"), "{}", text(&o));
    assert!(!text(&o).contains("panicked"), "{}", text(&o));
}

#[test]
fn bert_recipe_errors_name_the_key() {
    let t = tmp("bert-errors");
    toy_dataset(&t.0);
    tiny_bert(&t.0.join("tiny-bert"));
    let ok = "pretrained = \"tiny-bert\"";
    let cases = [
        (
            "pretrained = \"no-such-model\"",
            "kind = \"none\"",
            "",
            vec!["model.pretrained", "no-such-model", "looked in"],
        ),
        (
            "pretrained = \"tiny-bert\"\nfreeze_layers = 5",
            "kind = \"none\"",
            "",
            vec!["model.freeze_layers = 5", "2 encoder layers"],
        ),
        (
            ok,
            "kind = \"none\"",
            "optimizer = \"sgd\"",
            vec!["train.optimizer", "sgd"],
        ),
        (
            ok,
            "kind = \"none\"",
            "schedule = \"cosine\"",
            vec!["train.schedule"],
        ),
    ];
    for (i, (model, method, train, want)) in cases.into_iter().enumerate() {
        let name = format!("bad-bert{i}");
        let out = t.0.join(&name);
        let o = train_recipe(&t.0, &bert_recipe(&t.0, &name, model, method, train), &out);
        let log = text(&o);
        assert!(!o.status.success(), "case {i} should fail: {log}");
        for w in want {
            assert!(log.contains(w), "case {i}: want {w:?} in: {log}");
        }
        assert!(!log.contains("panicked"), "case {i}: {log}");
        assert!(!out.join("model.bpk").exists(), "case {i} wrote a run");
    }
    // Longer rows than the checkpoint has positions (16).
    let long =
        bert_recipe(&t.0, "long", ok, "kind = \"none\"", "").with_file_name("long-rows.toml");
    std::fs::write(
        &long,
        format!("name = \"long\"\n[data]\ndataset = \"toy\"\nmax_len = 40\n[model]\nkind = \"bert\"\n{ok}\n"),
    )
    .expect("recipe");
    let o = train_recipe(&t.0, &long, &t.0.join("long"));
    assert!(!o.status.success());
    assert!(text(&o).contains("data.max_len = 40"), "{}", text(&o));
    // `mixup bench --seq` past the checkpoint's 16 positions is refused before any step (it
    // panicked in the position embedding before).
    let fits = bert_recipe(&t.0, "bench-bert", ok, "kind = \"none\"", "");
    let o = run(bin()
        .args(["bench", "--recipe"])
        .arg(&fits)
        .args(["--seq", "40", "--steps", "1", "--warmup", "0", "--data-dir"])
        .arg(&t.0));
    let log = text(&o);
    assert!(
        !o.status.success() && log.contains("--seq 40") && log.contains("16 positions"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    let o = run(bin()
        .args(["bench", "--recipe"])
        .arg(&fits)
        .args([
            "--seq",
            "16",
            "--batch",
            "2",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--data-dir",
        ])
        .arg(&t.0));
    assert!(o.status.success(), "{}", text(&o));
    // Two replicas: `--device flex,flex` times the data-parallel step, and says so.
    let o = run(bin()
        .args(["bench", "--recipe"])
        .arg(&fits)
        .args([
            "--seq", "16", "--batch", "4", "--steps", "1", "--warmup", "0",
        ])
        .args(["--device", "flex,flex", "--json", "--data-dir"])
        .arg(&t.0));
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(report["device"], "flex,flex", "{log}");
    assert_eq!(report["batch"], 4, "{log}");
    // The missing folder's message lists the --data-dir folder it tried.
    let o = train_recipe(
        &t.0,
        &bert_recipe(
            &t.0,
            "missing",
            "pretrained = \"gone\"",
            "kind = \"none\"",
            "",
        ),
        &t.0.join("missing"),
    );
    assert!(
        text(&o).contains(&t.0.join("gone").display().to_string()),
        "{}",
        text(&o)
    );
}

/// The metrics of a finished run that must not depend on interruptions: everything in
/// `metrics.json` and `final.json` but the timings.
fn run_metrics(out: &Path) -> (serde_json::Value, serde_json::Value) {
    let mut epochs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).expect("metrics.json"))
            .expect("metrics.json parses");
    for e in epochs.as_array_mut().expect("an array of epochs") {
        let e = e.as_object_mut().expect("an epoch object");
        e.remove("train_seconds");
        e.remove("samples_per_s");
    }
    let mut fin = final_json(out);
    let f = fin.as_object_mut().expect("final object");
    for k in [
        "train_samples_per_s",
        "median_epoch_seconds",
        "total_seconds",
    ] {
        f.remove(k);
    }
    (epochs, fin)
}

#[test]
fn runs_killed_at_random_moments_resume_to_the_uninterrupted_result() {
    use std::time::{Duration, Instant};
    let t = tmp("resume");
    toy_dataset(&t.0);
    // Ten copies of the toy training set, so that a run lasts long enough to be cut.
    let big = t.0.join("toybig");
    std::fs::create_dir_all(&big).expect("dir");
    let train = std::fs::read_to_string(t.0.join("toy/train.tsv")).expect("train");
    std::fs::write(big.join("train.tsv"), train.repeat(10)).expect("train");
    std::fs::copy(t.0.join("toy/test.tsv"), big.join("test.tsv")).expect("test");
    // Dropout (TextCNN's 0.5) and Manifold Mixup: both the device RNG and the mixing draws
    // must continue exactly.
    let r = t.0.join("toy-resume.toml");
    std::fs::write(
        &r,
        "name = \"toy-resume\"\n[data]\ndataset = \"toybig\"\nmax_len = 12\n[model]\n\
         kind = \"textcnn\"\nd_embed = 32\nn_filters = 16\n[method]\nkind = \"manifold\"\n\
         alpha = 1.0\n[train]\nepochs = 4\nbatch_size = 8\nlr = 0.003\n",
    )
    .expect("recipe");
    let whole = t.0.join("whole");
    let start = Instant::now();
    let o = train_recipe(&t.0, &r, &whole);
    let full = start.elapsed();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        !whole.join("checkpoints").exists(),
        "checkpoints are removed once the run is finished"
    );

    // The same run, checkpointing every step, SIGKILLed three times at moments drawn from a
    // fixed seed: 5% to 25% of the uninterrupted run's wall time after the restarted run has
    // saved its first new checkpoint (so a slow start on a loaded machine does not turn a
    // kill into one before any training).
    let cut = t.0.join("cut");
    let newest_step = |dir: &Path| {
        dir.join("checkpoints")
            .read_dir()
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().to_string();
                        name.strip_prefix("step-")?
                            .strip_suffix(".ckpt")?
                            .parse::<usize>()
                            .ok()
                    })
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    };
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut kills = 0;
    let mut torn_writes = 0;
    let mut progress = Vec::new();
    for round in 0..3 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let share = 0.05 + 0.20 * ((state >> 11) as f64 / (1u64 << 53) as f64);
        let has_checkpoint = cut
            .join("checkpoints")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some());
        let mut cmd = bin();
        if round > 0 && has_checkpoint {
            cmd.arg("train").arg("--resume").arg(&cut);
        } else {
            cmd.args(["train", "--recipe"])
                .arg(&r)
                .arg("--out")
                .arg(&cut);
        }
        let mut child = cmd
            .arg("--data-dir")
            .arg(&t.0)
            .args(["--checkpoint-every", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let before = newest_step(&cut);
        let waited = Instant::now();
        while newest_step(&cut) <= before && waited.elapsed() < Duration::from_secs(120) {
            if child.try_wait().expect("poll").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(full.mul_f64(share).max(Duration::from_millis(20)));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        assert!(
            !cut.join("final.json").exists(),
            "round {round}: the run finished before the kill ({share:.2} of {full:?}); \
             the test did not interrupt it"
        );
        kills += 1;
        progress.push(newest_step(&cut));
        if cut.join("checkpoints").read_dir().is_ok_and(|d| {
            d.flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "tmp"))
        }) {
            torn_writes += 1;
        }
    }
    // Damage the newest checkpoint: the resume must say so and fall back to the previous one.
    let mut ckpts: Vec<PathBuf> = cut
        .join("checkpoints")
        .read_dir()
        .expect("checkpoints after three kills")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ckpt"))
        .collect();
    ckpts.sort();
    let newest = ckpts
        .last()
        .expect("a checkpoint survived the kills")
        .clone();
    let bytes = std::fs::read(&newest).expect("read");
    std::fs::write(&newest, &bytes[..bytes.len() / 2]).expect("truncate");
    let o = run(bin()
        .arg("train")
        .arg("--resume")
        .arg(&cut)
        .arg("--data-dir")
        .arg(&t.0));
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("skipping checkpoint") && out.contains("resuming from"),
        "{out}"
    );
    eprintln!(
        "kills survived: {kills}; newest checkpoint step after each kill: {progress:?} of {}; \
         kills that left a half-written checkpoint: {torn_writes}; uninterrupted run {full:?}",
        4 * 120
    );
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]) && progress[2] > progress[0] && progress[0] > 0,
        "the kills did not land while training progressed: {progress:?}"
    );
    assert_eq!(run_metrics(&cut), run_metrics(&whole));

    // A finished run cannot be resumed, and a folder without checkpoints says so.
    let o = run(bin().arg("train").arg("--resume").arg(&cut));
    assert!(
        !o.status.success() && text(&o).contains("already finished"),
        "{}",
        text(&o)
    );
    let o = run(bin().arg("train").arg("--resume").arg(t.0.join("nowhere")));
    assert!(
        !o.status.success() && text(&o).contains("no recipe.toml"),
        "{}",
        text(&o)
    );
}

/// A two-class pair dataset `pairs/`: `SAME` when both texts carry the same class word,
/// `DIFF` otherwise (neither text alone tells). Texts are 2 to 4 words, so that a pair fits
/// the tiny BERT's 16 positions.
fn toy_pairs(root: &Path) {
    let dir = root.join("pairs");
    std::fs::create_dir_all(&dir).expect("dataset dir");
    let words = ["apple", "river", "engine"];
    let filler = ["the", "a", "of", "and", "to", "in"];
    let make = |n: usize, offset: usize| -> String {
        let mut s = String::new();
        for i in 0..n {
            let ca = (i + offset) % 3;
            let same = i % 2 == 0;
            let cb = if same { ca } else { (ca + 1 + i / 2 % 2) % 3 };
            let side = |c: usize, k: usize| -> String {
                let len = 2 + (i + k) % 3;
                (0..len)
                    .map(|t| {
                        if t == (i + k) % len {
                            words[c]
                        } else {
                            filler[(i * 3 + t + k) % filler.len()]
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let label = if same { "SAME" } else { "DIFF" };
            s.push_str(&format!("{label}\t{}\t{}\n", side(ca, 0), side(cb, 1)));
        }
        s
    };
    std::fs::write(dir.join("train.tsv"), make(96, 0)).expect("train");
    std::fs::write(dir.join("test.tsv"), make(30, 1)).expect("test");
}

/// Text pairs from the CLI: a word model (`a <sep> b`) and a BERT model (`[CLS] a [SEP] b
/// [SEP]`) train with SSMix, their runs evaluate and predict pairs (`a<TAB>b` lines), and a
/// run trained on single texts refuses a pair with a clear error.
#[test]
fn text_pairs_train_word_and_bert_models_with_ssmix() {
    let t = tmp("pairs");
    toy_pairs(&t.0);
    toy_dataset(&t.0);
    tiny_bert(&t.0.join("tiny-bert"));
    let word = t.0.join("pairs-word.toml");
    std::fs::write(
        &word,
        "name = \"pairs-word\"\n[data]\ndataset = \"pairs\"\nmax_len = 12\n\
         [model]\nkind = \"bilstm\"\nd_embed = 16\nd_hidden = 16\n\
         [method]\nkind = \"ssmix\"\nspan_share = 0.3\n\
         [train]\nepochs = 3\nbatch_size = 16\nlr = 0.01\n",
    )
    .expect("recipe");
    let bert = t.0.join("pairs-bert.toml");
    std::fs::write(
        &bert,
        format!(
            "name = \"pairs-bert\"\n[data]\ndataset = \"pairs\"\nmax_len = 16\n\
             [model]\nkind = \"bert\"\npretrained = \"tiny-bert\"\n\
             [method]\nkind = \"ssmix\"\nspan_share = 0.3\n\
             [train]\nepochs = 3\nbatch_size = 16\nlr = 0.005\n{BERT_TRAIN}\n"
        ),
    )
    .expect("recipe");
    let test_file = t.0.join("pairs/test.tsv");
    for (name, recipe) in [("word", &word), ("bert", &bert)] {
        let out = t.0.join("runs").join(name);
        let o = train_recipe(&t.0, recipe, &out);
        let log = text(&o);
        assert!(o.status.success(), "{name}: {log}");
        assert!(log.contains(", mixing)"), "{name}: SSMix mixed: {log}");
        if name == "word" {
            let vocab = std::fs::read_to_string(out.join("tokenizer.json")).expect("vocab");
            assert!(
                vocab.contains("\"<sep>\""),
                "the pair separator is in the vocabulary"
            );
        }
        let acc = final_json(&out)["test_accuracy"]
            .as_f64()
            .expect("accuracy");
        assert_eq!(
            eval_json(&out, &test_file)["accuracy"].as_f64(),
            Some(acc),
            "{name}: eval reads the pair file as the run did"
        );
        let input = t.0.join("pairs.txt");
        std::fs::write(&input, "apple the\ta apple\nriver of\tengine\n").expect("input");
        let o = run(bin().args(["predict", "--run"]).arg(&out).arg(&input));
        assert!(o.status.success(), "{name}: {}", text(&o));
        let stdout = String::from_utf8_lossy(&o.stdout).to_string();
        assert_eq!(stdout.lines().count(), 2, "{name}: {stdout}");
        assert!(
            stdout
                .lines()
                .all(|l| l.starts_with("SAME\t") || l.starts_with("DIFF\t")),
            "{stdout}"
        );
    }
    // A single-text word run cannot encode a pair.
    let single = t.0.join("runs/single");
    let o = train(&t.0, "none", &single, 0);
    assert!(o.status.success(), "{}", text(&o));
    let input = t.0.join("pair-for-single.txt");
    std::fs::write(&input, "apple\tapple\n").expect("input");
    let o = run(bin().args(["predict", "--run"]).arg(&single).arg(&input));
    let m = text(&o);
    assert!(!o.status.success(), "{m}");
    assert!(
        m.contains("pair-for-single.txt:1") && m.contains("<sep>"),
        "{m}"
    );
    // A dataset whose test split is single texts while train holds pairs is refused.
    std::fs::copy(t.0.join("toy/test.tsv"), t.0.join("pairs/test.tsv")).expect("copy");
    let o = train_recipe(&t.0, &word, &t.0.join("runs/mixed"));
    let m = text(&o);
    assert!(!o.status.success(), "{m}");
    assert!(
        m.contains("pairs/test.tsv:1") && m.contains("same shape"),
        "{m}"
    );
}

/// `train.init_from`: a run starts from a finished run's weights and vocabulary. With a
/// learning rate too small to move them, its test accuracy is the finished run's; a fresh
/// start is not; a run folder that is missing, or whose model differs, is a clear error.
#[test]
fn init_from_starts_from_a_finished_runs_weights() {
    let t = tmp("init-from");
    toy_dataset(&t.0);
    let first = t.0.join("runs/first");
    let o = train(&t.0, "none", &first, 0);
    assert!(o.status.success(), "{}", text(&o));
    let acc = final_json(&first)["test_accuracy"]
        .as_f64()
        .expect("accuracy");
    let model = "kind = \"textcnn\"\nd_embed = 16\nn_filters = 8";
    let second = |init: Option<&Path>, model: &str| -> Output {
        let p = t.0.join("second.toml");
        let init = init.map_or(String::new(), |p| {
            format!("init_from = {:?}\n", p.display().to_string())
        });
        std::fs::write(
            &p,
            format!(
                "name = \"second\"\n[data]\ndataset = \"toy\"\nmax_len = 12\n[model]\n{model}\n\
                 [method]\nkind = \"word\"\nalpha = 0.4\n\
                 [train]\nepochs = 1\nbatch_size = 16\nlr = 1e-12\nseed = 5\n{init}"
            ),
        )
        .expect("recipe");
        train_recipe(&t.0, &p, &t.0.join("runs/second"))
    };
    let o = second(Some(&first), model);
    assert!(o.status.success(), "{}", text(&o));
    let got = final_json(&t.0.join("runs/second"))["test_accuracy"].as_f64();
    assert_eq!(
        got,
        Some(acc),
        "the finished run's weights, unchanged by lr 1e-12"
    );
    let o = second(None, model);
    assert!(o.status.success(), "{}", text(&o));
    let fresh = final_json(&t.0.join("runs/second"))["test_accuracy"]
        .as_f64()
        .expect("acc");
    assert!(
        fresh < acc,
        "a fresh start at lr 1e-12 learns nothing ({fresh} vs {acc})"
    );

    let o = second(Some(&t.0.join("runs/nowhere")), model);
    let m = text(&o);
    assert!(
        !o.status.success() && m.contains("train.init_from") && m.contains("nowhere"),
        "{m}"
    );
    let o = second(
        Some(&first),
        "kind = \"textcnn\"\nd_embed = 8\nn_filters = 8",
    );
    let m = text(&o);
    assert!(
        !o.status.success() && m.contains("train.init_from") && m.contains("[model]"),
        "{m}"
    );
}

/// `mixup eval` reports macro-F1, per-class scores and the confusion matrix, and draws the
/// matrix with `--plot`.
#[test]
fn eval_reports_macro_f1_and_the_confusion_matrix() {
    let t = tmp("eval-confusion");
    toy_dataset(&t.0);
    let out = t.0.join("run");
    let o = train(&t.0, "none", &out, 0);
    assert!(o.status.success(), "{}", text(&o));
    let png = t.0.join("confusion.png");
    let o = run(bin()
        .args(["eval", "--run"])
        .arg(&out)
        .arg("--data")
        .arg(t.0.join("toy/test.tsv"))
        .arg("--plot")
        .arg(&png));
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let labels: Vec<&str> = v["confusion"]["labels"]
        .as_array()
        .expect("labels")
        .iter()
        .map(|l| l.as_str().expect("label"))
        .collect();
    assert_eq!(labels, ["FRUIT", "MACHINE", "WATER"]);
    let matrix: Vec<Vec<u64>> =
        serde_json::from_value(v["confusion"]["matrix"].clone()).expect("a matrix");
    assert_eq!(
        matrix.iter().flatten().sum::<u64>(),
        30,
        "every example once"
    );
    let diagonal: u64 = (0..3).map(|i| matrix[i][i]).sum();
    let acc = v["accuracy"].as_f64().expect("accuracy");
    assert!(
        (diagonal as f64 / 30.0 - acc).abs() < 1e-9,
        "diagonal = accuracy"
    );
    for (i, name) in labels.iter().enumerate() {
        let support: u64 = matrix[i].iter().sum();
        assert_eq!(v["per_class"][name]["support"].as_u64(), Some(support));
    }
    let f1 = v["macro_f1"].as_f64().expect("macro_f1");
    assert!((0.0..=1.0).contains(&f1), "{f1}");
    assert_eq!(&std::fs::read(&png).expect("png")[..4], b"\x89PNG");
    // A path that is not a .png is refused by name.
    let o = run(bin()
        .args(["eval", "--run"])
        .arg(&out)
        .arg("--data")
        .arg(t.0.join("toy/test.tsv"))
        .arg("--plot")
        .arg(t.0.join("confusion.jpg")));
    assert!(
        !o.status.success() && text(&o).contains("confusion.jpg"),
        "{}",
        text(&o)
    );
}

/// `data.dev_from_train` carves a dev split and `train.select = "best-dev"` reports the epoch
/// of the best dev accuracy; a dataset with its own dev split refuses the carve, and
/// best-dev without any dev split is an error naming the key.
#[test]
fn best_dev_selection_on_a_carved_dev_split() {
    let t = tmp("best-dev");
    toy_dataset(&t.0);
    let write = |name: &str, extra_data: &str, extra_train: &str| -> PathBuf {
        let p = t.0.join(format!("{name}.toml"));
        std::fs::write(
            &p,
            format!(
                "name = \"{name}\"\n[data]\ndataset = \"toy\"\nmax_len = 12\n{extra_data}\n\
                 [model]\nkind = \"textcnn\"\nd_embed = 16\nn_filters = 8\n\
                 [train]\nepochs = 4\nbatch_size = 16\nlr = 0.003\n{extra_train}\n"
            ),
        )
        .expect("recipe");
        p
    };
    let r = write("sel", "dev_from_train = 0.25", "select = \"best-dev\"");
    let out = t.0.join("runs/sel");
    let o = train_recipe(&t.0, &r, &out);
    assert!(o.status.success(), "{}", text(&o));
    let report = final_json(&out);
    let metrics: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).expect("metrics"))
            .expect("json");
    let dev: Vec<f64> = metrics
        .iter()
        .map(|m| m["dev_acc"].as_f64().expect("a dev accuracy each epoch"))
        .collect();
    let best = dev.iter().copied().fold(f64::MIN, f64::max);
    let chosen = report["selected_epoch"].as_u64().expect("selected_epoch") as usize;
    assert_eq!(
        chosen,
        dev.iter().position(|&d| d == best).expect("best") + 1
    );
    assert_eq!(
        report["test_accuracy"].as_f64(),
        metrics[chosen - 1]["test_acc"].as_f64()
    );
    assert_eq!(
        report["train_size"].as_u64(),
        Some(72),
        "96 less the 24 carved out"
    );

    std::fs::copy(t.0.join("toy/test.tsv"), t.0.join("toy/dev.tsv")).expect("a dev split");
    let o = train_recipe(&t.0, &r, &t.0.join("runs/sel2"));
    let m = text(&o);
    assert!(
        !o.status.success() && m.contains("dev.tsv") && m.contains("own dev split"),
        "{m}"
    );
    std::fs::remove_file(t.0.join("toy/dev.tsv")).expect("remove");
    let r = write("nodev", "", "select = \"best-dev\"");
    let o = train_recipe(&t.0, &r, &t.0.join("runs/nodev"));
    let m = text(&o);
    assert!(!o.status.success() && m.contains("train.select"), "{m}");
}

/// MixText from the CLI: `data.labelled_per_class` with the rest as unlabelled text (built-in
/// augmentations), a folder's own `unlabelled.txt` with `unlabelled.aug1.txt`, a run killed
/// mid-way that resumes to the uninterrupted result, and the errors of bad settings and files.
#[test]
fn mixtext_trains_on_unlabelled_text_and_resumes() {
    use std::time::{Duration, Instant};
    let t = tmp("mixtext");
    toy_dataset(&t.0);
    let recipe = |name: &str, dataset: &str, extra: &str| {
        let p = t.0.join(format!("{name}.toml"));
        std::fs::write(
            &p,
            format!(
                "name = \"{name}\"\n[data]\ndataset = \"{dataset}\"\nmax_len = 12\n{extra}\n\
                 [model]\nkind = \"transformer\"\nd_model = 16\nn_heads = 2\nn_layers = 2\n\
                 d_ff = 32\n[method]\nkind = \"mixtext\"\nalpha = 2.0\n[mixtext]\nk = 2\n\
                 batch_size_u = 8\n[train]\nepochs = 6\nbatch_size = 4\nlr = 0.003\n"
            ),
        )
        .expect("recipe");
        p
    };
    let low = recipe(
        "mt-low",
        "toy",
        "labelled_per_class = 3\nrest_as_unlabelled = true",
    );
    let out = t.0.join("run-low");
    let o = train_recipe(&t.0, &low, &out);
    assert!(o.status.success(), "{}", text(&o));
    let said = text(&o);
    assert!(said.contains("9 train"), "3 labelled per class: {said}");
    assert!(
        said.contains("87 unlabelled texts, each with 2 augmentations"),
        "{said}"
    );
    let fin: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("final.json")).expect("final"))
            .expect("json");
    assert!(fin["test_accuracy"].as_f64().is_some(), "{fin}");

    // The folder's own unlabelled texts and one augmentation file: K = 1.
    let own = t.0.join("toyu");
    std::fs::create_dir_all(&own).expect("dir");
    for f in ["train.tsv", "test.tsv"] {
        std::fs::copy(t.0.join("toy").join(f), own.join(f)).expect("copy");
    }
    let texts: Vec<String> = (0..20)
        .map(|i| format!("{} the of {}", ["apple", "river", "engine"][i % 3], i))
        .collect();
    std::fs::write(own.join("unlabelled.txt"), texts.join("\n") + "\n").expect("w");
    let augs: Vec<String> = texts.iter().map(|t| t.replace(" the", "")).collect();
    std::fs::write(own.join("unlabelled.aug1.txt"), augs.join("\n") + "\n").expect("w");
    let r = recipe("mt-own", "toyu", "");
    let o = train_recipe(&t.0, &r, &t.0.join("run-own"));
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("20 unlabelled texts, each with 1 augmentations"),
        "{}",
        text(&o)
    );

    // Killed after its first checkpoints, resumed: the uninterrupted run's metrics.
    let start = Instant::now();
    let whole = t.0.join("run-whole");
    assert!(train_recipe(&t.0, &low, &whole).status.success());
    let full = start.elapsed();
    let cut = t.0.join("run-cut");
    let mut child = bin()
        .args(["train", "--recipe"])
        .arg(&low)
        .arg("--data-dir")
        .arg(&t.0)
        .arg("--out")
        .arg(&cut)
        .args(["--checkpoint-every", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(full.mul_f64(0.5).max(Duration::from_millis(30)));
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert!(
        !cut.join("final.json").exists(),
        "the run finished before the kill; the test did not interrupt it"
    );
    let o = run(bin()
        .arg("train")
        .arg("--resume")
        .arg(&cut)
        .arg("--data-dir")
        .arg(&t.0));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("resum"), "{}", text(&o));
    let metrics = |d: &Path| -> Vec<(f64, f64)> {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("metrics.json")).expect("metrics"))
                .expect("json");
        v.as_array()
            .expect("epochs")
            .iter()
            .map(|e| {
                (
                    e["train_loss"].as_f64().expect("loss"),
                    e["test_acc"].as_f64().expect("acc"),
                )
            })
            .collect()
    };
    assert_eq!(
        metrics(&whole),
        metrics(&cut),
        "resumed MixText = uninterrupted"
    );

    // Errors, one line each, naming the key or file.
    let check = |r: &Path, needles: &[&str]| {
        let o = train_recipe(&t.0, r, &t.0.join("run-bad"));
        let e = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!o.status.success() && !e.contains("panicked"), "{e}");
        for n in needles {
            assert!(e.contains(n), "expected {n:?} in {e}");
        }
    };
    check(&recipe("mt-none", "toy", ""), &["mixtext", "unlabelled"]);
    check(
        &recipe("mt-rest", "toy", "rest_as_unlabelled = true"),
        &["data.rest_as_unlabelled", "labelled_per_class"],
    );
    let p = t.0.join("mt-section.toml");
    std::fs::write(
        &p,
        "name = \"x\"\n[data]\ndataset = \"toy\"\n[model]\nkind = \"textcnn\"\n[mixtext]\nk = 2\n",
    )
    .expect("w");
    check(&p, &["mixtext", "method.kind"]);
    std::fs::write(own.join("unlabelled.aug1.txt"), "just one line\n").expect("w");
    check(&r, &["unlabelled.aug1.txt", "20 texts"]);
}
