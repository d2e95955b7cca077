//! Helpers shared by the integration tests that drive the `mixup` binary.

use std::{path::PathBuf, process::Command};

/// The `mixup` binary, with the environment that picks devices and data cleared.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mixup"));
    c.env_remove("BURN_DEVICE").env_remove("MIXUP_DATA_DIR");
    c
}

/// A temporary folder removed on drop.
pub struct Tmp(pub PathBuf);

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh temporary folder named after the test binary's `name` and the process.
pub fn tmp(name: &str) -> Tmp {
    let d = std::env::temp_dir().join(format!("mixup-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    Tmp(d)
}
