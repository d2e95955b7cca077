//! The example trains through burn-train's Learner on a small part of TREC and beats the
//! majority class (28% of TREC's test set) by a wide margin.

use std::path::PathBuf;

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("MIXUP_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    if dir.join("trec").is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{}: no trec/ (CI needs the shared datasets)", dir.display());
    }
    eprintln!("skipped: no {}/trec (set MIXUP_DATA_DIR)", dir.display());
    None
}

#[test]
fn trains_textcnn_with_word_mixup_through_the_learner() {
    let Some(data) = data_dir() else { return };
    let out = std::env::temp_dir().join(format!("learner-example-{}", std::process::id()));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_learner"))
        .args(["--epochs", "2", "--limit", "1000", "--out"])
        .arg(&out)
        .env("MIXUP_DATA_DIR", &data)
        .output()
        .expect("run the example");
    let _ = std::fs::remove_dir_all(&out);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("Learner Summary"), "{stdout}");
    let acc: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("test accuracy "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no test accuracy in:\n{stdout}"));
    assert!(acc > 0.45, "test accuracy {acc}:\n{stdout}");
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_learner"))
        .args(["--epochs", "x"])
        .output()
        .expect("run the example");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--epochs x"));
}
