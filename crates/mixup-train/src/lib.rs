//! # mixup-train
//!
//! The training side of the mixup zoo: recipes ([`recipe`]), finding or fetching data
//! ([`data`], [`fetch`]), the training loop ([`train`]) with its checkpoints ([`checkpoint`]) with its optimiser, learning-rate
//! schedule and gradient clipping ([`optim`]), step benchmarks on synthetic batches ([`bench`]), run folders ([`run`]), plots ([`plot`]),
//! sweeps over recipes and seeds with their results table ([`sweep`]) and backend selection
//! ([`device`], the only module that names backends). The `mixup` binary (`src/main.rs`) is a
//! thin command-line layer over these.

#![deny(missing_docs)]

pub mod bench;
pub mod checkpoint;
pub mod data;
pub mod device;
pub mod fetch;
pub mod ner;
pub mod ner_al;
pub mod optim;
pub mod plot;
pub mod recipe;
pub mod run;
pub mod step;
pub mod sweep;
pub mod train;

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
        let dir = std::env::temp_dir().join(format!("mixup-train-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TmpDir(dir)
    }
}
