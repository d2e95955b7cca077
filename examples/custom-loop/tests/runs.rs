//! The example's three loops all learn the synthetic task (chance is 1/3).

#[test]
fn every_loop_learns_the_task() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_custom-loop"))
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for what in [
        "manifold, own loop",
        "tmix, library step",
        "ssmix, library step",
    ] {
        let prefix = format!("held-out accuracy ({what}): ");
        let acc: f64 = stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} line in:\n{stdout}"));
        assert!(acc > 0.6, "{what}: accuracy {acc}:\n{stdout}");
    }
}
