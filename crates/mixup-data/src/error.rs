//! [`DataError`]: what went wrong with a data file, and where.

use std::path::PathBuf;

/// A data file that could not be used. Every variant names the file; line numbers are 1-based.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no examples.
    #[error("{path}: the file is empty (no examples)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// One line is malformed.
    #[error("{path}:{line}: {message}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A dev/test (or eval) label that the training set does not have.
    #[error("{path}:{line}: label {label:?} does not occur in the training data (known: {known})")]
    UnknownLabel {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The label.
        label: String,
        /// The known labels, comma-separated.
        known: String,
    },
    /// A dataset folder lacks a split.
    #[error("{dir}: no {split} file (looked for {split}.tsv, {split}.csv, {split}.jsonl)")]
    MissingSplit {
        /// The folder.
        dir: PathBuf,
        /// `train`, `dev` or `test`.
        split: String,
    },
    /// A file whose format is not known from its extension.
    #[error(
        "{path}: unknown data format (expected .tsv, .csv, .jsonl or TREC's .label/.train/.test)"
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// A tokenizer file that cannot be used (malformed `tokenizer.json`, a vocabulary without
    /// the special tokens), or text the tokenizer loaded from it fails on.
    #[error("{path}: {message}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl DataError {
    pub(crate) fn tokenizer(path: &std::path::Path, message: impl Into<String>) -> Self {
        Self::Tokenizer {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    /// A [`DataError::Line`] at `path`:`line`.
    pub fn line(path: &std::path::Path, line: usize, message: impl Into<String>) -> Self {
        Self::Line {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}
