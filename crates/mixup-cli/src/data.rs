//! Finding a dataset on disk (or fetching it), and encoding it for a run.

use std::path::{Path, PathBuf};

use mixup_data::{
    DataError, EncodedExample, Example, LabelSet, Splits, WordPieceTokenizer, WordTokenizer,
    WordTokenizerConfig,
};

use mixup_core::Layout;

use crate::{
    fetch,
    recipe::{DataSection, Recipe},
};

/// Where a dataset was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// In this folder.
    At(PathBuf),
    /// Nowhere; these folders were tried.
    Missing(Vec<PathBuf>),
}

/// Looks for `name` under `--data-dir`, then `$MIXUP_DATA_DIR`, then the cache folder. A
/// folder counts when it has a train file (`train.tsv`, `.csv`, `.jsonl`, or a CoNLL
/// `train.txt`).
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
        if ["train.tsv", "train.csv", "train.jsonl", "train.txt"]
            .iter()
            .any(|f| dir.join(f).is_file())
        {
            return Found::At(dir);
        }
        tried.push(dir);
    }
    Found::Missing(tried)
}

/// Looks for a pretrained checkpoint folder: `name` under `--data-dir`, then
/// `$MIXUP_DATA_DIR`, then the cache folder, then `name` as a path (absolute, or relative to
/// the working folder). A folder counts when it has a `config.json`.
pub fn find_pretrained(name: &str, data_dir: Option<&Path>, cache_dir: &Path) -> Found {
    let mut tried = Vec::new();
    let as_path = PathBuf::from(name);
    let env = std::env::var_os("MIXUP_DATA_DIR").map(PathBuf::from);
    let roots: Vec<PathBuf> = if as_path.is_absolute() {
        Vec::new()
    } else {
        data_dir
            .map(Path::to_path_buf)
            .into_iter()
            .chain(env)
            .chain([cache_dir.into()])
            .collect()
    };
    for dir in roots
        .iter()
        .map(|root| root.join(name))
        .chain([as_path.clone()])
    {
        if dir.join("config.json").is_file() {
            return Found::At(dir);
        }
        if !tried.contains(&dir) {
            tried.push(dir);
        }
    }
    Found::Missing(tried)
}

/// [`find_pretrained`], as an error listing the folders tried when nothing is found.
///
/// # Errors
///
/// A message naming the recipe key, the value and every folder tried.
pub fn resolve_pretrained(
    name: &str,
    data_dir: Option<&Path>,
    cache_dir: &Path,
) -> anyhow::Result<PathBuf> {
    match find_pretrained(name, data_dir, cache_dir) {
        Found::At(dir) => Ok(dir),
        Found::Missing(tried) => {
            let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
            anyhow::bail!(
                "model.pretrained = {name:?}: no checkpoint folder (with config.json) found; \
                 looked in {}. Point --data-dir or MIXUP_DATA_DIR at the folder that holds \
                 {name}/, or give the checkpoint folder's path",
                tried.join(", ")
            )
        }
    }
}

/// How a run turns text into ids: a word vocabulary built from the training set (TextCNN,
/// BiLSTM, Transformer), or a pretrained encoder's WordPiece tokenizer (`kind = "bert"`).
#[derive(Clone, Debug)]
pub enum TextTokenizer {
    /// Words, `<pad>` = 0, `<unk>` = 1; rows have no special tokens.
    Word(WordTokenizer),
    /// WordPiece; every row is `[CLS] ... [SEP]`, `[PAD]` = 0.
    WordPiece(Box<WordPieceTokenizer>),
}

impl TextTokenizer {
    /// The ids of `text`, at most `max_len` of them (special tokens included).
    ///
    /// # Errors
    ///
    /// [`DataError::Tokenizer`] if the WordPiece tokenizer fails on the text.
    pub fn encode(&self, text: &str, max_len: usize) -> Result<Vec<u32>, DataError> {
        match self {
            Self::Word(t) => Ok(t.encode(text, max_len)),
            Self::WordPiece(t) => t.encode(text, max_len),
        }
    }

    /// The ids of a text or, with `text_b`, of a pair (`a <sep> b` for a word vocabulary,
    /// `[CLS] a [SEP] b [SEP]` for WordPiece), at most `max_len` of them. `path` and `line`
    /// name the input in errors.
    ///
    /// # Errors
    ///
    /// A pair for a word vocabulary without `<sep>` (a run trained on single texts), or a
    /// [`DataError::Tokenizer`] failure.
    pub fn encode_text(
        &self,
        text: &str,
        text_b: Option<&str>,
        max_len: usize,
        path: &Path,
        line: usize,
    ) -> Result<Vec<u32>, DataError> {
        let Some(b) = text_b else {
            return self.encode(text, max_len);
        };
        match self {
            Self::Word(t) => t.encode_pair(text, b, max_len).ok_or_else(|| {
                DataError::line(
                    path,
                    line,
                    "a text pair, but this vocabulary has no <sep> token: the run was \
                     trained on single texts",
                )
            }),
            Self::WordPiece(t) => t.encode_pair(text, b, max_len),
        }
    }

    /// The `[SEP]` id of a WordPiece tokenizer (`None` for word vocabularies).
    pub fn bert_sep_id(&self) -> Option<u32> {
        match self {
            Self::Word(_) => None,
            Self::WordPiece(t) => Some(t.sep_id()),
        }
    }

    /// Number of ids (rows of the embedding table it needs).
    pub fn vocab_size(&self) -> usize {
        match self {
            Self::Word(t) => t.vocab_size(),
            Self::WordPiece(t) => t.vocab_size(),
        }
    }

    /// Where the special tokens of its rows are, and the separator of pairs.
    pub fn layout(&self) -> Layout {
        match self {
            Self::Word(t) => match t.sep_id() {
                Some(sep) => Layout::PLAIN.with_sep(sep),
                None => Layout::PLAIN,
            },
            Self::WordPiece(t) => Layout::BERT.with_sep(t.sep_id()),
        }
    }
}

impl Encoded {
    /// The splits as the training library takes them.
    pub fn text_data(&self) -> mixup_train::TextData<'_> {
        mixup_train::TextData {
            train: &self.train,
            dev: self.dev.as_deref(),
            test: &self.test,
            num_classes: self.labels.len(),
            vocab_size: self.tokenizer.vocab_size(),
            layout: self.layout,
            unlabelled: &self.unlabelled,
        }
    }
}

/// A dataset encoded for training: vocabulary and labels from train, every split encoded.
pub struct Encoded {
    /// The tokenizer: a word vocabulary built from the training texts, or a pretrained
    /// encoder's WordPiece tokenizer.
    pub tokenizer: TextTokenizer,
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
    /// MixText's unlabelled texts, each with its augmentations (empty for other methods).
    pub unlabelled: Vec<mixup_train::mixtext::UnlabelledExample>,
    /// Unlabelled texts the data holds (whatever the method; their words are in a word
    /// vocabulary).
    pub unlabelled_texts: usize,
}

/// Encodes `examples` from `path` with a run's tokenizer and labels.
///
/// # Errors
///
/// [`DataError::UnknownLabel`] for a label the run does not know, naming file and line;
/// [`DataError::Tokenizer`] if the tokenizer fails on a text.
pub fn encode(
    examples: &[Example],
    path: &Path,
    tokenizer: &TextTokenizer,
    labels: &LabelSet,
    max_len: usize,
) -> Result<Vec<EncodedExample>, DataError> {
    examples
        .iter()
        .map(|e| {
            Ok(EncodedExample {
                ids: tokenizer.encode_text(&e.text, e.text_b.as_deref(), max_len, path, e.line)?,
                label: labels.encode(e, path)?,
            })
        })
        .collect()
}

/// Reads and encodes the splits in `dir` as the recipe says: with `wordpiece` when given
/// (a pretrained encoder's tokenizer), else with a word vocabulary built from the training
/// texts (`data.lowercase`, `data.min_freq`, `data.max_vocab`; with `<sep>` when the
/// training set holds text pairs).
///
/// # Errors
///
/// The first [`DataError`] of any file; splits that are not all single texts or all pairs.
pub fn load_encoded(
    dir: &Path,
    recipe: &Recipe,
    wordpiece: Option<WordPieceTokenizer>,
) -> Result<Encoded, DataError> {
    let d = &recipe.data;
    let (splits, rest) = load_splits(dir, d)?;
    let unlabelled = unlabelled_texts(dir, recipe, &splits, rest)?;
    let train = &splits.train.1;
    let tokenizer = match wordpiece {
        Some(t) => TextTokenizer::WordPiece(Box::new(t)),
        None => {
            let config = WordTokenizerConfig {
                lowercase: d.lowercase,
                min_freq: d.min_freq,
                max_vocab: d.max_vocab,
                zero_digits: d.zero_digits,
            };
            // Unlabelled texts are training text too (their words, never labels).
            let texts = train
                .iter()
                .flat_map(|e| std::iter::once(e.text.as_str()).chain(e.text_b.as_deref()))
                .chain(unlabelled.iter().map(|u| u.text.as_str()));
            let words = config.build(texts);
            // Pairs join their texts with <sep>.
            TextTokenizer::Word(if is_pairs(train) {
                words.with_separator()
            } else {
                words
            })
        }
    };
    let labels = LabelSet::from_examples(train);
    let mut encoded = encode_splits(&splits, tokenizer, labels, d.max_len)?;
    encoded.attach_unlabelled(recipe, unlabelled)?;
    Ok(encoded)
}

/// The unlabelled texts of a run: the folder's unlabelled file and, with
/// `data.rest_as_unlabelled`, the training examples `labelled_per_class` did not keep. For
/// MixText each gets its augmentations: the folder's `unlabelled.augN.txt` lines, else
/// `mixtext.k` built-in ones (seeded by `data.split_seed` and the text's index, so every
/// training seed and method sees the same).
fn unlabelled_texts(
    dir: &Path,
    recipe: &Recipe,
    splits: &Splits,
    rest: Vec<Example>,
) -> Result<Vec<mixup_data::UnlabelledText>, DataError> {
    use rand::SeedableRng;
    let mut texts = mixup_data::read_unlabelled(dir)?.unwrap_or_default();
    if recipe.data.rest_as_unlabelled {
        texts.extend(rest.into_iter().map(|e| mixup_data::UnlabelledText {
            text: e.text,
            augmentations: Vec::new(),
            path: splits.train.0.clone(),
            line: e.line,
        }));
    }
    let mixtext = recipe.method.kind == mixup_core::MixMethod::MixText;
    if !mixtext {
        return Ok(texts);
    }
    if texts.is_empty() {
        return Err(DataError::line(
            &splits.train.0,
            1,
            format!(
                "method.kind = \"mixtext\" needs unlabelled texts: put unlabelled.txt (one \
                 text per line) in {}, or set data.labelled_per_class with \
                 data.rest_as_unlabelled = true",
                dir.display()
            ),
        ));
    }
    if is_pairs(&splits.train.1) {
        return Err(DataError::line(
            &splits.train.0,
            1,
            "method.kind = \"mixtext\" is for single texts; this training set holds pairs",
        ));
    }
    let m = recipe.mixtext_section();
    let k = texts
        .iter()
        .map(|t| t.augmentations.len())
        .max()
        .filter(|&k| k > 0)
        .unwrap_or(m.k);
    let (drop, swap) = match m.augment {
        crate::recipe::Augmentation::DropSwap => (true, true),
        crate::recipe::Augmentation::Drop => (true, false),
        crate::recipe::Augmentation::Swap => (false, true),
        crate::recipe::Augmentation::None => (false, false),
    };
    for (i, t) in texts.iter_mut().enumerate() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(mixup_train::train::derive_seed(
            recipe.data.split_seed,
            41,
            i as u64,
            0,
        ));
        while t.augmentations.len() < k {
            let a = mixup_data::augment_words(&t.text, drop, swap, m.augment_rate, &mut rng);
            t.augmentations.push(a);
        }
    }
    Ok(texts)
}

impl Encoded {
    /// Encodes MixText's unlabelled texts with the run's tokenizer (other methods keep only
    /// their count).
    fn attach_unlabelled(
        &mut self,
        recipe: &Recipe,
        texts: Vec<mixup_data::UnlabelledText>,
    ) -> Result<(), DataError> {
        self.unlabelled_texts = texts.len();
        if recipe.method.kind != mixup_core::MixMethod::MixText {
            return Ok(());
        }
        let max_len = recipe.data.max_len;
        self.unlabelled = texts
            .iter()
            .map(|t| {
                let views = std::iter::once(&t.text)
                    .chain(&t.augmentations)
                    .map(|v| {
                        Ok(EncodedExample {
                            ids: self
                                .tokenizer
                                .encode_text(v, None, max_len, &t.path, t.line)?,
                            label: 0,
                        })
                    })
                    .collect::<Result<Vec<_>, DataError>>()?;
                Ok(mixup_train::mixtext::UnlabelledExample { views })
            })
            .collect::<Result<_, DataError>>()?;
        Ok(())
    }
}

/// Keeps `n` examples of each label (all of a label with fewer), drawn by a generator seeded
/// with `seed`; returns (kept, rest), both in file order.
pub fn keep_per_class(train: &[Example], n: usize, seed: u64) -> (Vec<Example>, Vec<Example>) {
    use rand::{SeedableRng, seq::SliceRandom};
    let mut by_label: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (i, e) in train.iter().enumerate() {
        by_label.entry(e.label.as_str()).or_default().push(i);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut keep = vec![false; train.len()];
    for idx in by_label.values_mut() {
        idx.shuffle(&mut rng);
        for &i in idx.iter().take(n) {
            keep[i] = true;
        }
    }
    split_marked(train, &keep)
}

/// The examples marked true and the others, both in file order.
fn split_marked(examples: &[Example], marked: &[bool]) -> (Vec<Example>, Vec<Example>) {
    let (a, b): (Vec<_>, Vec<_>) = examples.iter().zip(marked).partition(|(_, m)| **m);
    (
        a.into_iter().map(|(e, _)| e.clone()).collect(),
        b.into_iter().map(|(e, _)| e.clone()).collect(),
    )
}

/// Reads and encodes the splits in `dir` with a given tokenizer and label set (a finished
/// run's, for `train.init_from`).
///
/// # Errors
///
/// As [`load_encoded`]; a label the label set lacks, naming file and line.
pub fn load_encoded_with(
    dir: &Path,
    data: &DataSection,
    tokenizer: TextTokenizer,
    labels: LabelSet,
) -> Result<Encoded, DataError> {
    encode_splits(&load_splits(dir, data)?.0, tokenizer, labels, data.max_len)
}

fn is_pairs(ex: &[Example]) -> bool {
    ex.first().is_some_and(|e| e.text_b.is_some())
}

/// The splits of `dir`, all of single texts or all of pairs, with a dev split carved from
/// train when `data.dev_from_train` asks, and train cut to `data.labelled_per_class` per
/// label (the examples not kept are returned beside the splits).
fn load_splits(dir: &Path, data: &DataSection) -> Result<(Splits, Vec<Example>), DataError> {
    let mut splits = Splits::load(dir)?;
    if let Some(share) = data.dev_from_train {
        if let Some((path, _)) = &splits.dev {
            return Err(DataError::line(
                path,
                1,
                format!(
                    "data.dev_from_train = {share}: this dataset has its own dev split; \
                     leave dev_from_train out to use it"
                ),
            ));
        }
        let (train, dev) = carve_dev(&splits.train.1, share, data.split_seed);
        let path = splits.train.0.clone();
        splits.train.1 = train;
        splits.dev = Some((path, dev));
    }
    let mut rest = Vec::new();
    if let Some(n) = data.labelled_per_class {
        let (kept, left) = keep_per_class(&splits.train.1, n, data.split_seed);
        splits.train.1 = kept;
        rest = left;
    }
    let train = &splits.train.1;
    for (path, ex) in splits.dev.iter().chain([&splits.test]) {
        if is_pairs(ex) != is_pairs(train) {
            let what = |p: bool| if p { "text pairs" } else { "single texts" };
            return Err(DataError::line(
                path,
                ex.first().map_or(1, |e| e.line),
                format!(
                    "{}, but {} holds {}: every split must have the same shape",
                    what(is_pairs(ex)),
                    splits.train.0.display(),
                    what(is_pairs(train))
                ),
            ));
        }
    }
    Ok((splits, rest))
}

/// Splits `train` into (train, dev): `share` of each label's examples (rounded, at least one
/// when the label has two or more, never all of them) drawn by a generator seeded with `seed`;
/// both keep the file order.
pub fn carve_dev(train: &[Example], share: f64, seed: u64) -> (Vec<Example>, Vec<Example>) {
    use rand::{SeedableRng, seq::SliceRandom};
    let mut by_label: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (i, e) in train.iter().enumerate() {
        by_label.entry(e.label.as_str()).or_default().push(i);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut to_dev = vec![false; train.len()];
    for idx in by_label.values_mut() {
        idx.shuffle(&mut rng);
        let n = idx.len();
        let k = ((n as f64 * share).round() as usize)
            .max(usize::from(n >= 2))
            .min(n.saturating_sub(1));
        for &i in &idx[..k] {
            to_dev[i] = true;
        }
    }
    let (dev, kept) = split_marked(train, &to_dev);
    (kept, dev)
}

fn encode_splits(
    splits: &Splits,
    tokenizer: TextTokenizer,
    labels: LabelSet,
    max_len: usize,
) -> Result<Encoded, DataError> {
    let enc = |(path, ex): &(PathBuf, Vec<Example>)| encode(ex, path, &tokenizer, &labels, max_len);
    let train = enc(&splits.train)?;
    let dev = splits.dev.as_ref().map(enc).transpose()?;
    let test = enc(&splits.test)?;
    let layout = tokenizer.layout();
    Ok(Encoded {
        tokenizer,
        labels,
        train,
        dev,
        test,
        layout,
        unlabelled: Vec::new(),
        unlabelled_texts: 0,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(label: &str, line: usize) -> Example {
        Example {
            text: format!("text {line}"),
            text_b: None,
            label: label.into(),
            line,
        }
    }

    /// The carved dev split is stratified, disjoint from train, the same for the same seed,
    /// keeps file order and never takes a whole class.
    #[test]
    fn carved_dev_is_stratified_seeded_and_disjoint() {
        let mut train: Vec<Example> = (0..50).map(|i| ex("A", i + 1)).collect();
        train.extend((0..20).map(|i| ex("B", 51 + i)));
        train.push(ex("C", 71));
        let (kept, dev) = carve_dev(&train, 0.2, 7);
        let count = |v: &[Example], l: &str| v.iter().filter(|e| e.label == l).count();
        assert_eq!(
            (count(&dev, "A"), count(&dev, "B"), count(&dev, "C")),
            (10, 4, 0)
        );
        assert_eq!(kept.len() + dev.len(), train.len());
        let lines = |v: &[Example]| v.iter().map(|e| e.line).collect::<Vec<_>>();
        assert!(
            lines(&dev).iter().all(|l| !lines(&kept).contains(l)),
            "disjoint"
        );
        assert!(lines(&dev).windows(2).all(|w| w[0] < w[1]), "file order");
        assert_eq!(carve_dev(&train, 0.2, 7).1, dev, "same seed, same split");
        assert_ne!(
            lines(&carve_dev(&train, 0.2, 8).1),
            lines(&dev),
            "another seed"
        );
    }

    /// `labelled_per_class` keeps exactly N of each label (all of a smaller one), the same
    /// examples for the same seed, others for another, in file order, and the rest is the
    /// complement.
    #[test]
    fn labelled_per_class_is_stratified_and_deterministic() {
        let mut train: Vec<Example> = (0..30).map(|i| ex("A", i + 1)).collect();
        train.extend((0..12).map(|i| ex("B", 31 + i)));
        train.extend((0..2).map(|i| ex("C", 43 + i)));
        let (kept, rest) = keep_per_class(&train, 5, 3);
        let count = |v: &[Example], l: &str| v.iter().filter(|e| e.label == l).count();
        assert_eq!(
            (count(&kept, "A"), count(&kept, "B"), count(&kept, "C")),
            (5, 5, 2)
        );
        assert_eq!(kept.len() + rest.len(), train.len());
        assert!(kept.iter().all(|k| !rest.iter().any(|r| r.line == k.line)));
        assert!(kept.windows(2).all(|w| w[0].line < w[1].line), "file order");
        assert_eq!(
            keep_per_class(&train, 5, 3).0,
            kept,
            "same seed, same examples"
        );
        assert_ne!(keep_per_class(&train, 5, 4).0, kept, "another seed, others");
    }
}
