//! Finding a dataset on disk (or fetching it), and encoding it for a run.

use std::path::{Path, PathBuf};

use mixup_data::{
    DataError, EncodedExample, Example, LabelSet, Splits, WordTokenizer, WordTokenizerConfig,
};

use mixup_core::Layout;

use crate::{fetch, recipe::Recipe};

/// Where a dataset was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// In this folder.
    At(PathBuf),
    /// Nowhere; these folders were tried.
    Missing(Vec<PathBuf>),
}

/// Looks for `name` under `--data-dir`, then `$MIXUP_DATA_DIR`, then the cache folder. A
/// folder counts when it has a train file.
pub fn find_dataset(name: &str, data_dir: Option<&Path>, cache_dir: &Path) -> Found {
    let mut tried = Vec::new();
    let env = std::env::var_os("MIXUP_DATA_DIR").map(PathBuf::from);
    for root in data_dir
        .map(Path::to_path_buf)
        .into_iter()
        .chain(env)
        .chain([cache_dir.into()])
    {
        let dir = root.join(name);
        if ["train.tsv", "train.csv", "train.jsonl"]
            .iter()
            .any(|f| dir.join(f).is_file())
        {
            return Found::At(dir);
        }
        tried.push(dir);
    }
    Found::Missing(tried)
}

/// A dataset encoded for training: vocabulary and labels from train, every split encoded.
pub struct Encoded {
    /// The word tokenizer built from the training texts.
    pub tokenizer: WordTokenizer,
    /// The labels of the training set.
    pub labels: LabelSet,
    /// Training examples.
    pub train: Vec<EncodedExample>,
    /// Development examples, when the dataset has a dev split.
    pub dev: Option<Vec<EncodedExample>>,
    /// Test examples.
    pub test: Vec<EncodedExample>,
    /// Where the special tokens of an encoded row are (none for the word tokenizer); SSMix
    /// never replaces them.
    pub layout: Layout,
}

/// Encodes `examples` from `path` with a run's tokenizer and labels.
///
/// # Errors
///
/// [`DataError::UnknownLabel`] for a label the run does not know, naming file and line.
pub fn encode(
    examples: &[Example],
    path: &Path,
    tokenizer: &WordTokenizer,
    labels: &LabelSet,
    max_len: usize,
) -> Result<Vec<EncodedExample>, DataError> {
    examples
        .iter()
        .map(|e| {
            Ok(EncodedExample {
                ids: tokenizer.encode(&e.text, max_len),
                label: labels.encode(e, path)?,
            })
        })
        .collect()
}

/// Reads and encodes the splits in `dir` as the recipe says.
///
/// # Errors
///
/// The first [`DataError`] of any file.
pub fn load_encoded(dir: &Path, recipe: &Recipe) -> Result<Encoded, DataError> {
    let splits = Splits::load(dir)?;
    let d = &recipe.data;
    let config = WordTokenizerConfig {
        lowercase: d.lowercase,
        min_freq: d.min_freq,
        max_vocab: d.max_vocab,
    };
    let train = &splits.train.1;
    let tokenizer = config.build(train.iter().map(|e| e.text.as_str()));
    let labels = LabelSet::from_examples(train);
    let enc =
        |(path, ex): &(PathBuf, Vec<Example>)| encode(ex, path, &tokenizer, &labels, d.max_len);
    let train = enc(&splits.train)?;
    let dev = splits.dev.as_ref().map(enc).transpose()?;
    let test = enc(&splits.test)?;
    Ok(Encoded {
        tokenizer,
        labels,
        train,
        dev,
        test,
        layout: Layout::PLAIN,
    })
}

/// Finds the recipe's dataset; when it is missing and fetchable, downloads it into the cache
/// (calling `on_fetch` first so the caller can say so).
///
/// # Errors
///
/// A message listing the folders tried and how to get the data.
pub fn resolve_dataset(
    name: &str,
    data_dir: Option<&Path>,
    cache_dir: &Path,
    on_fetch: impl FnOnce(&str, &Path),
) -> anyhow::Result<PathBuf> {
    match find_dataset(name, data_dir, cache_dir) {
        Found::At(dir) => Ok(dir),
        Found::Missing(tried) => {
            let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
            if fetch::KNOWN_DATASETS.contains(&name) {
                on_fetch(name, cache_dir);
                fetch::fetch_dataset(name, fetch::TREC_BASE_URL, cache_dir).map_err(|e| {
                    anyhow::anyhow!(
                        "dataset {name:?} not found (looked in {}) and fetching it failed: {e}. \
                         Point --data-dir or MIXUP_DATA_DIR at a folder holding {name}/, or \
                         run `mixup data fetch {name}` where there is internet.",
                        tried.join(", ")
                    )
                })
            } else {
                anyhow::bail!(
                    "dataset {name:?} not found: looked in {}. Point --data-dir or \
                     MIXUP_DATA_DIR at the folder that holds {name}/ (with train.tsv and \
                     test.tsv); `mixup data fetch` can download: {}",
                    tried.join(", "),
                    fetch::KNOWN_DATASETS.join(", ")
                )
            }
        }
    }
}
