//! [`Splits`]: a dataset folder's train / dev / test files.

use std::path::{Path, PathBuf};

use crate::{
    error::DataError,
    read::{Example, existing, read_examples},
};

/// A dataset's splits, each with the file it was read from.
#[derive(Clone, Debug)]
pub struct Splits {
    /// Training examples and their file.
    pub train: (PathBuf, Vec<Example>),
    /// Development examples, when the folder has a dev file.
    pub dev: Option<(PathBuf, Vec<Example>)>,
    /// Test examples.
    pub test: (PathBuf, Vec<Example>),
}

impl Splits {
    /// Reads `train`, optional `dev` and `test` from `dir`, each as `.tsv`, `.csv` (columns
    /// `text`, `label`) or `.jsonl`.
    ///
    /// # Errors
    ///
    /// [`DataError::MissingSplit`] when train or test is absent, or the first error of a file.
    pub fn load(dir: &Path) -> Result<Self, DataError> {
        let read = |stem: &str| -> Result<Option<(PathBuf, Vec<Example>)>, DataError> {
            match existing(dir, stem) {
                Some((path, format)) => {
                    let examples = read_examples(&path, &format)?;
                    Ok(Some((path, examples)))
                }
                None => Ok(None),
            }
        };
        let missing = |split: &str| DataError::MissingSplit {
            dir: dir.to_path_buf(),
            split: split.into(),
        };
        let train = read("train")?.ok_or_else(|| missing("train"))?;
        let dev = read("dev")?;
        let test = read("test")?.ok_or_else(|| missing("test"))?;
        Ok(Self { train, dev, test })
    }
}
