//! [`TrainError`]: everything the library's training can fail with.

use std::path::PathBuf;

/// An error of the training library. Each names what went wrong (a config key, a file, a
/// step); none carries a CLI flag or a recipe section, which are the caller's to add.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A setting is invalid (`key` as in the config types).
    #[error("{key}: {reason}")]
    Config {
        /// The config field.
        key: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The method cannot run on this model (a mixing point it lacks, SSMix without a sequence
    /// embedding, mismatched shards).
    #[error("{0}")]
    Method(String),
    /// Building or loading the model failed (the caller's builder, or a record that does not
    /// fit the model).
    #[error("{0}")]
    Model(String),
    /// The data cannot be trained on (no examples, a label out of range, a bad item).
    #[error(transparent)]
    Data(#[from] mixup_data::DataError),
    /// The loss turned NaN or infinite; training stopped.
    #[error(
        "training diverged: the loss is {loss} by epoch {epoch} step {step} (of {steps}); \
         stopped, {}. Lower the learning rate (now {lr}) or check the data.",
        match last_checkpoint {
            Some(p) => format!("the last good checkpoint is {}", p.display()),
            None => "no checkpoint was written".to_string(),
        }
    )]
    Diverged {
        /// The running loss.
        loss: f64,
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step within the epoch.
        step: usize,
        /// Steps in the epoch.
        steps: usize,
        /// The peak learning rate.
        lr: f64,
        /// The last checkpoint written before, if any.
        last_checkpoint: Option<PathBuf>,
    },
    /// A checkpoint does not belong to this run or does not load.
    #[error("{0}")]
    Checkpoint(String),
    /// A tensor could not be read back or serialised by the backend.
    #[error("{0}")]
    Backend(String),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl TrainError {
    /// A [`TrainError::Config`].
    pub fn config(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Config {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// A [`TrainError::Io`] on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// The library's result type.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
