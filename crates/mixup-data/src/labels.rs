//! [`LabelSet`]: the classes of a run, fixed by its training data.

use std::{collections::HashMap, path::Path};

use serde::{Deserialize, Serialize};

use crate::{error::DataError, read::Example};

/// The label vocabulary, built from the training split and sorted, so that the same training
/// file always gives the same class indices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<String>", into = "Vec<String>")]
pub struct LabelSet {
    labels: Vec<String>,
    index: HashMap<String, usize>,
}

impl From<Vec<String>> for LabelSet {
    fn from(mut labels: Vec<String>) -> Self {
        labels.sort();
        labels.dedup();
        let index = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), i))
            .collect();
        Self { labels, index }
    }
}

impl From<LabelSet> for Vec<String> {
    fn from(set: LabelSet) -> Self {
        set.labels
    }
}

impl LabelSet {
    /// The sorted set of labels of `train`.
    pub fn from_examples(train: &[Example]) -> Self {
        Self::from(train.iter().map(|e| e.label.clone()).collect::<Vec<_>>())
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no classes.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The label names, by class index.
    pub fn names(&self) -> &[String] {
        &self.labels
    }

    /// The name of class `i`.
    pub fn name(&self, i: usize) -> Option<&str> {
        self.labels.get(i).map(String::as_str)
    }

    /// The class index of `label`.
    pub fn get(&self, label: &str) -> Option<usize> {
        self.index.get(label).copied()
    }

    /// The class index of `example`'s label.
    ///
    /// # Errors
    ///
    /// [`DataError::UnknownLabel`] naming `path`, the example's line and the known labels.
    pub fn encode(&self, example: &Example, path: &Path) -> Result<usize, DataError> {
        self.get(&example.label)
            .ok_or_else(|| DataError::UnknownLabel {
                path: path.to_path_buf(),
                line: example.line,
                label: example.label.clone(),
                known: self.labels.join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(label: &str, line: usize) -> Example {
        Example {
            text: "t".into(),
            text_b: None,
            label: label.into(),
            line,
        }
    }

    #[test]
    fn sorted_and_unknown_label_names_file_and_line() {
        let set = LabelSet::from_examples(&[ex("NUM", 1), ex("DESC", 2), ex("NUM", 3)]);
        assert_eq!(set.names(), ["DESC", "NUM"]);
        assert_eq!(
            set.encode(&ex("NUM", 1), Path::new("train.tsv"))
                .expect("known"),
            1
        );
        let e = set
            .encode(&ex("LOC", 17), Path::new("test.tsv"))
            .expect_err("unknown");
        let m = e.to_string();
        assert!(m.contains("test.tsv:17") && m.contains("\"LOC\"") && m.contains("DESC, NUM"));
        let json = serde_json::to_string(&set).expect("json");
        assert_eq!(json, r#"["DESC","NUM"]"#);
        let back: LabelSet = serde_json::from_str(&json).expect("back");
        assert_eq!(back, set);
    }
}
