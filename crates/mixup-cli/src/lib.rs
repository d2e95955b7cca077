//! # mixup-cli
//!
//! The `mixup` command-line tool over the [`mixup_train`] library: TOML recipes ([`recipe`],
//! serde enums for every choice, converted into the library's typed configs), finding or
//! fetching data ([`data`], [`fetch`]), run folders ([`run`]), sequence-labelling runs
//! ([`ner`]) and SeqMix active learning ([`ner_al`]), step benchmarks ([`mod@bench`]), plots
//! ([`plot`]), sweeps over recipes and seeds with their results table ([`sweep`]) and backend
//! selection ([`device`], the only module that names backends). Only this crate picks
//! backends, reads the environment, prints, or writes run folders. The binary
//! (`src/main.rs`) parses the command line and renders progress.

#![deny(missing_docs)]

pub mod bench;
pub mod claim;
pub mod data;
pub mod device;
pub mod fetch;
pub mod ner;
pub mod ner_al;
pub mod paired;
pub mod plot;
pub mod recipe;
pub mod run;
pub mod sweep;

#[cfg(test)]
pub(crate) mod test_util {
    use std::path::PathBuf;

    /// A temporary folder removed on drop.
    pub(crate) struct TmpDir(pub(crate) PathBuf);

    impl Drop for TmpDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A fresh temporary folder for one test.
    pub(crate) fn tmp_dir(name: &str) -> TmpDir {
        let dir = std::env::temp_dir().join(format!("mixup-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TmpDir(dir)
    }
}
