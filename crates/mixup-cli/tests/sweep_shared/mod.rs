//! Sweeps shared between processes: concurrent processes over one sweep folder, a killed
//! process's run taken over, and shards from the flag and from a Slurm array's environment
//! (a module of the `cli` test binary: one binary less to link).

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use crate::common::{bin, tmp, toy_dataset};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A toy TextCNN recipe `name` with `method`, on `dataset`, `epochs` epochs.
fn recipe(root: &Path, name: &str, method: &str, dataset: &str, epochs: usize) -> PathBuf {
    let p = root.join(format!("{name}.toml"));
    std::fs::write(
        &p,
        format!(
            "name = \"{name}\"\n[data]\ndataset = \"{dataset}\"\nmax_len = 12\n[model]\n\
             kind = \"textcnn\"\nd_embed = 16\nn_filters = 8\n[method]\nkind = \"{method}\"\n\
             [train]\nepochs = {epochs}\nbatch_size = 8\nlr = 0.003\ncheckpoint_every = 1\n"
        ),
    )
    .expect("recipe");
    p
}

/// A copy of the toy dataset with its training set `times` over, so runs last longer.
fn bigger_toy(root: &Path, name: &str, times: usize) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("dir");
    let train = std::fs::read_to_string(root.join("toy/train.tsv")).expect("train");
    std::fs::write(dir.join("train.tsv"), train.repeat(times)).expect("train");
    std::fs::copy(root.join("toy/test.tsv"), dir.join("test.tsv")).expect("test");
}

fn sweep_cmd(root: &Path, recipes: &[&Path], seeds: u64, out: &Path) -> Command {
    let mut c = bin();
    c.args(["sweep", "--recipes"])
        .args(recipes)
        .args(["--seeds", &seeds.to_string(), "--data-dir"])
        .arg(root)
        .arg("--out")
        .arg(out);
    c
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// Three processes started together over one sweep folder: every run is trained by exactly
/// one of them, and all of them are finished.
#[test]
fn three_processes_share_one_sweep_and_train_each_run_once() {
    let t = tmp("shared-sweep");
    toy_dataset(&t.0);
    bigger_toy(&t.0, "toy3", 3);
    let a = recipe(&t.0, "shared-none", "none", "toy3", 2);
    let b = recipe(&t.0, "shared-word", "word", "toy3", 2);
    let out = t.0.join("sweep");
    let children: Vec<_> = (0..3)
        .map(|_| {
            sweep_cmd(&t.0, &[&a, &b], 3, &out)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let logs: Vec<String> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().expect("sweep");
            assert!(o.status.success(), "{}", text(&o));
            text(&o)
        })
        .collect();
    let all = logs.join("\n");
    assert_eq!(
        count(&all, ": training"),
        6,
        "6 runs, each trained once over the 3 processes:\n{all}"
    );
    assert_eq!(count(&all, "taking over"), 0, "{all}");
    for name in ["shared-none", "shared-word"] {
        for seed in 0..3 {
            let run = out.join(name).join(format!("seed{seed}"));
            assert!(run.join("final.json").is_file(), "{}", run.display());
            assert!(!run.join(".claim").exists(), "claims are released");
        }
    }
    // A fourth process finds everything finished.
    let o = sweep_cmd(&t.0, &[&a, &b], 3, &out).output().expect("sweep");
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    assert_eq!(count(&log, ": skipped (finished)"), 6, "{log}");
    assert!(log.contains("results (6 of 6 runs finished)"), "{log}");
}

/// A sweep process SIGKILLed in the middle of a run leaves a claim that stops beating; the
/// next process takes it over after the timeout and finishes the run.
#[test]
fn a_killed_sweep_process_has_its_run_taken_over() {
    let t = tmp("takeover");
    toy_dataset(&t.0);
    bigger_toy(&t.0, "toy10", 10);
    let r = recipe(&t.0, "slow", "manifold", "toy10", 6);
    let out = t.0.join("sweep");
    let run = out.join("slow/seed0");
    let mut first = sweep_cmd(&t.0, &[&r], 1, &out)
        .args(["--claim-timeout", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // Kill it once it holds the claim and has written a checkpoint.
    let start = Instant::now();
    while !(run.join(".claim").exists() && run.join("checkpoints").is_dir()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no claim and checkpoint after 60 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    first.kill().expect("SIGKILL");
    let _ = first.wait();
    assert!(
        !run.join("final.json").exists(),
        "the run finished before the kill; the test did not interrupt it"
    );
    assert!(
        run.join(".claim").exists(),
        "a killed process leaves its claim"
    );
    // Its heartbeat has stopped: after the timeout, the claim is taken over.
    std::thread::sleep(Duration::from_millis(1500));
    let o = sweep_cmd(&t.0, &[&r], 1, &out)
        .args(["--claim-timeout", "1"])
        .output()
        .expect("sweep");
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    assert!(log.contains("taking over from"), "{log}");
    assert!(
        log.contains("resuming from"),
        "continues from its checkpoint: {log}"
    );
    assert!(run.join("final.json").is_file(), "{log}");
    assert!(!run.join(".claim").exists(), "released after the run");
}

/// `--shard K/N` and a Slurm array's environment split the plan; together the shards train
/// every run once.
#[test]
fn shards_from_the_flag_and_from_slurm_split_the_runs() {
    let t = tmp("shards");
    toy_dataset(&t.0);
    let r = recipe(&t.0, "sharded", "none", "toy", 1);
    let out = t.0.join("sweep");
    let o = sweep_cmd(&t.0, &[&r], 4, &out)
        .args(["--shard", "0/2"])
        .output()
        .expect("sweep");
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    for (line, trained) in [
        ("[1/4] sharded seed 0: training", true),
        ("[2/4] sharded seed 1", false),
        ("[3/4] sharded seed 2: training", true),
        ("[4/4] sharded seed 3", false),
    ] {
        assert_eq!(log.contains(line), trained, "{line:?} in {log}");
    }
    assert!(log.contains("results (2 of 4 runs finished)"), "{log}");
    let o = sweep_cmd(&t.0, &[&r], 4, &out)
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "2")
        .output()
        .expect("sweep");
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    assert!(
        log.contains("shard 1/2 (from the Slurm array task index)"),
        "{log}"
    );
    assert_eq!(count(&log, ": training"), 2, "{log}");
    assert!(log.contains("results (4 of 4 runs finished)"), "{log}");
    let o = sweep_cmd(&t.0, &[&r], 4, &out)
        .args(["--shard", "2/2"])
        .output()
        .expect("sweep");
    assert!(!o.status.success());
    assert!(text(&o).contains("--shard \"2/2\""), "{}", text(&o));
}
