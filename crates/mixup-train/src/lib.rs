//! # mixup-train
//!
//! The training library of the mixup zoo, for Burn projects: typed configurations
//! ([`StepConfig`], [`OptimConfig`], [`TrainConfig`]), one training step for every
//! classification method of the zoo ([`step::train_step`], and its data-parallel form), the
//! training loop with exact-resume checkpoints ([`train::train`], [`checkpoint`]), the
//! optimiser, schedule and global-norm clipping ([`optim`]), sequence-labelling training and
//! entity F1 ([`ner`]), semi-supervised MixText ([`mixtext`]), step benchmarks ([`mod@bench`]) and, with the `learner` feature, an
//! adapter that runs the step under burn-train's `Learner` ([`learner`]).
//!
//! The library reads no environment variables, prints nothing (progress is a
//! [`train::Event`] callback), picks no backend (the [`burn::tensor::Device`] is the caller's)
//! and writes files only where it is told to (checkpoints). Errors are [`TrainError`]. The
//! `mixup` command-line tool (crate `mixup-cli`) is one user of it.

#![deny(missing_docs)]

pub mod atomic;
pub mod bench;
pub mod checkpoint;
pub mod config;
mod error;
#[cfg(feature = "learner")]
pub mod learner;
pub mod metrics;
pub mod mixtext;
pub mod ner;
pub mod optim;
pub mod step;
pub mod train;

pub use atomic::{commit, write_atomic};
pub use config::{
    CleanWeighting, LossForm, OptimConfig, OptimizerKind, Schedule, Selection, StepConfig,
    TrainConfig,
};
pub use error::{Result, TrainError};
pub use step::{StepBatch, StepPlan, StepReport, train_step};
pub use train::{
    Event, TextData, TrainSetup, Trained, seed_device, seeded_init, seeded_try_init, train,
    train_step_split,
};

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
