//! Sequence labelling (`task = "ner"` recipes): CoNLL data, a BiLSTM or Transformer
//! [`SequenceTagger`], a token-level soft-target cross-entropy (padding masked), and
//! entity-level F1 with `conlleval` semantics.
//!
//! A dataset folder holds `train.txt`, optionally `dev.txt`, and `test.txt` in CoNLL columns
//! (token first, tag last). The word vocabulary and the tag set come from train; a dev or test
//! tag that train never had is an error naming the file and line. Sentences longer than
//! `data.max_len` are cut for training; evaluation scores whole sentences (positions past
//! `max_len` are predicted `O`).
//!
//! Training items carry a label distribution per token, so SeqMix sentences (soft labels) and
//! ordinary ones (one-hot) train through the same loss, and its gradient reaches the model.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::{module::Module, tensor::Device};
use mixup_data::{ConllOptions, TagScheme, TaggedSentence, WordTokenizerConfig, read_conll};
use mixup_models::{SequenceTagger, SequenceTaggerConfig, TaggerKind};
use mixup_train::ner::{
    EncodedSplit, NerEpoch, NerFinal, NerItem, NerVocab, TaggerTrainer, encode_split, evaluate_ner,
};

use crate::recipe::{ModelSection, Recipe, SeqMixSection, TagSchemeName};

/// The splits of a CoNLL dataset folder.
pub struct NerData {
    /// The folder.
    pub dir: PathBuf,
    /// Training sentences (`train.txt`).
    pub train: Vec<TaggedSentence>,
    /// Development sentences (`dev.txt`), when present.
    pub dev: Option<Vec<TaggedSentence>>,
    /// Test sentences (`test.txt`).
    pub test: Vec<TaggedSentence>,
}

fn options(recipe: &Recipe) -> ConllOptions {
    ConllOptions {
        scheme: match recipe.data.tag_scheme {
            TagSchemeName::Iob1 => TagScheme::Iob1,
            TagSchemeName::Bio => TagScheme::Bio,
        },
        ..ConllOptions::default()
    }
}

impl NerData {
    /// Every split encoded with `vocab` (see [`NerVocab::encode`]): train, dev (if any), test.
    ///
    /// # Errors
    ///
    /// A dev or test tag that train never had, naming the file and line.
    pub fn encode(
        &self,
        vocab: &NerVocab,
    ) -> anyhow::Result<(EncodedSplit, Option<EncodedSplit>, EncodedSplit)> {
        let train = encode_split(vocab, &self.train, &self.dir.join("train.txt"))?;
        let dev = match &self.dev {
            Some(d) => Some(encode_split(vocab, d, &self.dir.join("dev.txt"))?),
            None => None,
        };
        let test = encode_split(vocab, &self.test, &self.dir.join("test.txt"))?;
        Ok((train, dev, test))
    }
}

/// Reads `train.txt`, `dev.txt` (if there) and `test.txt` of `dir`.
///
/// # Errors
///
/// A missing train or test file, or any reader error (naming file and line).
pub fn load_ner(dir: &Path, recipe: &Recipe) -> anyhow::Result<NerData> {
    let opts = options(recipe);
    let need = |name: &str| -> anyhow::Result<Vec<TaggedSentence>> {
        let path = dir.join(name);
        if !path.is_file() {
            anyhow::bail!(
                "{}: no {name} (a ner dataset folder holds train.txt, test.txt and optionally \
                 dev.txt in CoNLL columns)",
                dir.display()
            );
        }
        Ok(read_conll(&path, &opts)?)
    };
    let dev_path = dir.join("dev.txt");
    Ok(NerData {
        dir: dir.to_path_buf(),
        train: need("train.txt")?,
        dev: if dev_path.is_file() {
            Some(read_conll(&dev_path, &opts)?)
        } else {
            None
        },
        test: need("test.txt")?,
    })
}

/// Builds the tagger a `ner` recipe names.
///
/// # Errors
///
/// A model kind that is not a tagger.
pub fn build_tagger(
    recipe: &Recipe,
    vocab: usize,
    num_tags: usize,
    bert_dir: Option<&Path>,
    device: &Device,
) -> anyhow::Result<SequenceTagger> {
    if let ModelSection::Bert(m) = &recipe.model {
        let dir = bert_dir
            .ok_or_else(|| anyhow::anyhow!("model.kind = \"bert\" needs its checkpoint folder"))?;
        let (encoder, _) = mixup_models::BertEncoder::from_pretrained(dir, device)?;
        return Ok(SequenceTagger::on_bert(
            encoder.without_pooler(),
            num_tags,
            m.dropout,
            m.crf,
            device,
        ));
    }
    // The taggers' encoders are the classifiers' (pooling and head unused).
    let kind =
        match &recipe.model {
            ModelSection::Bilstm(m) => TaggerKind::BiLstm(crate::run::bilstm_config(m, vocab, 1)),
            ModelSection::Transformer(m) => TaggerKind::Transformer(
                crate::run::transformer_config(m, vocab, 1, recipe.data.max_len),
            ),
            other => anyhow::bail!(
                "model.kind = {:?} is not a tagger (use bilstm or transformer)",
                other.kind_name()
            ),
        };
    let t = recipe.tagger_options();
    Ok(SequenceTaggerConfig::new(kind, num_tags)
        .with_dropout(t.dropout)
        .with_crf(t.crf)
        .with_chars(
            (t.char_filters > 0)
                .then(|| mixup_models::CharCnnConfig::new().with_filters(t.char_filters)),
        )
        .with_input_dropout(t.input_dropout)
        .init(device))
}

/// Trains a `ner` recipe on its full training set, one evaluation per epoch, and writes the
/// run folder (`recipe.toml`, `tokenizer.json` for word-level taggers, the WordPiece
/// tokenizer and `bert-config.json` for BERT-family ones, `tags.json`, `model.bpk`,
/// `metrics.json`, `final.json`).
///
/// # Errors
///
/// Missing or malformed data, a model that is not a tagger, divergence, unwritable files.
#[allow(clippy::too_many_arguments)]
pub fn train_ner_recipe(
    recipe: &Recipe,
    data_dir: &Path,
    pretrained_root: Option<&Path>,
    device: &Device,
    device_name: &str,
    out: &Path,
    say: &mut dyn FnMut(&str),
) -> anyhow::Result<NerFinal> {
    let started = std::time::Instant::now();
    let data = load_ner(data_dir, recipe)?;
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the run folder {}", out.display()))?;
    let bert = match &recipe.model {
        ModelSection::Bert(m) => Some(crate::run::prepare_bert(
            m,
            recipe,
            pretrained_root,
            &crate::fetch::default_cache_dir(),
        )?),
        _ => None,
    };
    let mut vocab = NerVocab::build(
        &data.train,
        &word_config(recipe),
        recipe.data.max_len,
        bert.as_ref().map(|b| b.tokenizer.clone()),
    )?;
    vocab.char_features = recipe.tagger_options().char_filters > 0;
    let (train, dev, test) = data.encode(&vocab)?;
    say(&format!(
        "training {} ({} tagger, seed {}) on {device_name}: {} train / {} test sentences, vocab \
         {}, {} tags, data {}",
        recipe.name,
        recipe.model.kind_name(),
        recipe.train.seed,
        train.len(),
        test.len(),
        vocab.vocab_size(),
        vocab.tags.len(),
        data.dir.display()
    ));
    let ad = device.clone().autodiff();
    let model = mixup_train::seeded_try_init(&ad, recipe.train.seed, || {
        build_tagger(
            recipe,
            vocab.vocab_size(),
            vocab.tags.len(),
            bert.as_ref().map(|b| b.dir.as_path()),
            &ad,
        )
    })?;
    let splits = Splits {
        train: &train,
        dev: dev.as_deref(),
        test: &test,
    };
    let (model, fit) = fit_tagger(model, recipe, &vocab, splits, device, say)?;
    let report = NerFinal {
        recipe: recipe.name.clone(),
        model: recipe.model.kind_name().into(),
        seed: recipe.train.seed,
        device: device_name.into(),
        epochs: recipe.train.epochs,
        test: fit.test,
        dev: fit.dev,
        selected_epoch: fit.selected_epoch,
        train_sentences_per_s: (train.len() * recipe.train.epochs) as f64
            / fit.train_seconds.max(1e-9),
        total_seconds: started.elapsed().as_secs_f64(),
    };
    save_ner_run(
        out,
        recipe,
        &vocab,
        bert.as_ref(),
        model,
        &fit.epochs,
        &report,
    )?;
    Ok(report)
}

/// The word vocabulary settings of a recipe (`data.lowercase`, `min_freq`, `max_vocab`,
/// `zero_digits`).
pub fn word_config(recipe: &Recipe) -> WordTokenizerConfig {
    WordTokenizerConfig {
        lowercase: recipe.data.lowercase,
        min_freq: recipe.data.min_freq,
        max_vocab: recipe.data.max_vocab,
        zero_digits: recipe.data.zero_digits,
    }
}

/// The encoded splits of a tagging run.
#[derive(Clone, Copy)]
struct Splits<'a> {
    train: &'a [mixup_train::ner::EncodedSentence],
    dev: Option<&'a [mixup_train::ner::EncodedSentence]>,
    test: &'a [mixup_train::ner::EncodedSentence],
}

/// What [`fit_tagger`] measured: per-epoch metrics and the kept model's scores (those of the
/// last epoch, or with `train.select = "best-dev"` of the epoch with the best dev F1).
struct Fit {
    epochs: Vec<NerEpoch>,
    test: mixup_data::EntityScores,
    dev: Option<mixup_data::EntityScores>,
    /// The epoch whose model is kept, when chosen on dev.
    selected_epoch: Option<usize>,
    train_seconds: f64,
}

/// Trains `model` for the recipe's epochs on the gold training sentences, scoring dev and
/// test after each evaluated epoch (`train.eval_every`, and always the last); returns the
/// kept model (the last epoch's, or the best dev epoch's with `train.select = "best-dev"`:
/// the first of equal dev F1s) in evaluation mode. Nothing is chosen on test.
fn fit_tagger(
    mut model: SequenceTagger,
    recipe: &Recipe,
    vocab: &NerVocab,
    splits: Splits<'_>,
    device: &Device,
    say: &mut dyn FnMut(&str),
) -> anyhow::Result<(SequenceTagger, Fit)> {
    let config = recipe.train_config(usize::MAX);
    let ad = device.clone().autodiff();
    let items: Vec<NerItem> = splits.train.iter().map(NerItem::hard).collect();
    let (max_len, eb) = (recipe.data.max_len, recipe.train.eval_batch_size);
    let epochs_n = recipe.train.epochs;
    // SeqMix as a supervised augmentation (`seqmix.train_rate`): after each epoch, new SeqMix
    // sentences from the training set over the tagger's current embeddings replace the
    // previous ones.
    let sm = recipe.seqmix.clone().unwrap_or_default();
    let per_epoch = SeqMixSection {
        rate: sm.train_rate,
        ..sm.clone()
    };
    let mixer = match sm.train_rate > 0.0 {
        true => Some(crate::ner_al::SeqMixer {
            sm: &per_epoch,
            train: splits.train,
            vocab,
            beta: rand_distr::Beta::new(sm.alpha, sm.alpha)
                .map_err(|e| anyhow::anyhow!("seqmix.alpha: {e}"))?,
        }),
        false => None,
    };
    let all: Vec<usize> = (0..splits.train.len()).collect();
    let select_dev = recipe.train.select == mixup_train::Selection::BestDev;
    if select_dev && splits.dev.is_none() {
        anyhow::bail!(
            "train.select = \"best-dev\" chooses the epoch on dev, and the dataset {:?} has no \
             dev.txt (use select = \"last\")",
            recipe.data.dataset
        );
    }
    // With best-dev selection: the best dev epoch so far, its model and its scores.
    let dev_f1 =
        |d: &Option<mixup_data::EntityScores>| d.as_ref().map_or(f64::NEG_INFINITY, |d| d.micro.f1);
    let mut best: Option<(
        usize,
        SequenceTagger,
        mixup_data::EntityScores,
        Option<mixup_data::EntityScores>,
    )> = None;
    let expected = (items.len() as f64 * sm.train_rate).round() as usize;
    let mut augmented: Vec<NerItem> = Vec::new();
    let mut trainer = TaggerTrainer::new(
        &config,
        &model,
        items.len() + expected,
        epochs_n,
        vocab.tags.len(),
        recipe.train.seed,
    );
    if let Some(p) = recipe.data.singleton_unk {
        let su = mixup_train::ner::SingletonUnk::from_train(splits.train, vocab.vocab_size(), p);
        say(&format!(
            "singleton replacement: {} words seen once in train become <unk> with probability {p}",
            su.count()
        ));
        trainer = trainer.with_singleton_unk(su);
    }
    let mut epochs = Vec::with_capacity(epochs_n);
    let mut train_seconds = 0.0;
    let mut last = None;
    for epoch in 1..=epochs_n {
        let t0 = std::time::Instant::now();
        let epoch_items: std::borrow::Cow<'_, [NerItem]> = if augmented.is_empty() {
            std::borrow::Cow::Borrowed(&items)
        } else {
            std::borrow::Cow::Owned([items.as_slice(), augmented.as_slice()].concat())
        };
        let (next, loss) = trainer
            .epoch(model, &epoch_items, &config, epoch, &ad)
            .map_err(|e| crate::run::explain(e, Path::new(&recipe.name)))?;
        train_seconds += t0.elapsed().as_secs_f64();
        model = next;
        let eval = model.valid();
        if let Some(m) = &mixer
            && epoch < epochs_n
        {
            let mut draws = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(
                mixup_train::train::derive_seed(recipe.train.seed, 26, epoch as u64, 0),
            );
            let (made, tried) = m.augment(sm.variant, &eval, &all, &all, &mut draws);
            say(&format!(
                "epoch {epoch}: {} SeqMix sentences ({}) for the next epoch ({tried} generated)",
                made.len(),
                sm.variant.name()
            ));
            augmented = made;
        }
        if !config.evaluates(epoch) {
            say(&format!(
                "epoch {epoch} done: train loss {loss:.4} (not evaluated: train.eval_every) \
                 ({:.1} s)",
                t0.elapsed().as_secs_f64()
            ));
            epochs.push(NerEpoch {
                epoch,
                train_loss: loss,
                dev_f1: None,
                test_f1: None,
            });
            continue;
        }
        let dev_scores = splits
            .dev
            .map(|d| evaluate_ner(&eval, d, vocab, max_len, eb, device))
            .transpose()?;
        let test_scores = evaluate_ner(&eval, splits.test, vocab, max_len, eb, device)?;
        let e = NerEpoch {
            epoch,
            train_loss: loss,
            dev_f1: dev_scores.as_ref().map(|s| s.micro.f1),
            test_f1: Some(test_scores.micro.f1),
        };
        say(&format!(
            "epoch {epoch} done: train loss {:.4}{} test F1 {:.4} ({:.1} s)",
            e.train_loss,
            e.dev_f1
                .map(|f| format!(" dev F1 {f:.4}"))
                .unwrap_or_default(),
            test_scores.micro.f1,
            t0.elapsed().as_secs_f64()
        ));
        epochs.push(e);
        if select_dev
            && best
                .as_ref()
                .is_none_or(|b| dev_f1(&dev_scores) > dev_f1(&b.3))
        {
            best = Some((epoch, eval, test_scores.clone(), dev_scores.clone()));
        }
        last = Some((test_scores, dev_scores));
    }
    let (test, dev) = last.ok_or_else(|| anyhow::anyhow!("train.epochs is 0"))?;
    let (kept, test, dev, selected_epoch) = match best {
        Some((epoch, kept, test, dev)) => {
            say(&format!(
                "selected epoch {epoch} of {epochs_n} on dev (F1 {:.4}): test F1 {:.4}",
                dev_f1(&dev),
                test.micro.f1
            ));
            (kept, test, dev, Some(epoch))
        }
        None => (model.valid(), test, dev, None),
    };
    Ok((
        kept,
        Fit {
            epochs,
            test,
            dev,
            selected_epoch,
            train_seconds,
        },
    ))
}

/// Writes a finished tagging run's folder.
fn save_ner_run(
    out: &Path,
    recipe: &Recipe,
    vocab: &NerVocab,
    bert: Option<&crate::run::PreparedBert>,
    model: SequenceTagger,
    epochs: &[NerEpoch],
    report: &NerFinal,
) -> anyhow::Result<()> {
    use crate::run::write_atomic;
    let mut resolved = recipe.clone();
    resolved.results = None;
    write_atomic(&out.join("recipe.toml"), resolved.to_toml()?.as_bytes())?;
    match bert {
        // A BERT-family tagger reads WordPiece ids from its checkpoint's tokenizer, and is
        // rebuilt from its config when the run is loaded.
        Some(b) => crate::run::save_wordpiece(out, &b.tokenizer, Some(&b.config))?,
        None => write_atomic(
            &out.join("tokenizer.json"),
            &serde_json::to_vec(&vocab.tokenizer)?,
        )?,
    }
    write_atomic(
        &out.join(TAGS_FILE),
        &serde_json::to_vec_pretty(vocab.tags.names())?,
    )?;
    crate::run::save_record(model, &out.join("model.bpk"))?;
    write_atomic(
        &out.join("metrics.json"),
        &serde_json::to_vec_pretty(epochs)?,
    )?;
    write_atomic(&out.join("final.json"), &serde_json::to_vec_pretty(report)?)?;
    Ok(())
}

/// The run-folder file of a tagging run's tag names (in index order).
pub const TAGS_FILE: &str = "tags.json";

/// A finished tagging run loaded back for `mixup eval` and `mixup predict`.
pub struct LoadedTagger {
    /// The run folder.
    pub dir: PathBuf,
    /// Its resolved recipe.
    pub recipe: Recipe,
    /// Its vocabulary and tags.
    pub vocab: NerVocab,
    /// The trained tagger, in evaluation mode.
    pub model: SequenceTagger,
}

/// Loads a tagging run folder (`tags.json`, `model.bpk` and the tokenizer) onto `device`.
///
/// # Errors
///
/// A missing or malformed file, or a model that does not fit the recipe, named.
pub fn load_tagger_run(
    dir: &Path,
    recipe: Recipe,
    device: &Device,
) -> anyhow::Result<LoadedTagger> {
    let read = |name: &str| -> anyhow::Result<Vec<u8>> {
        let p = dir.join(name);
        std::fs::read(&p).with_context(|| format!("reading {}", p.display()))
    };
    let tags_path = dir.join(TAGS_FILE);
    let names: Vec<String> = serde_json::from_slice(&read(TAGS_FILE)?)
        .with_context(|| format!("{}: malformed tag list", tags_path.display()))?;
    let tags = mixup_data::LabelSet::from(names.clone());
    if tags.names() != names.as_slice() {
        anyhow::bail!(
            "{}: the tags must be distinct and sorted, as training writes them",
            tags_path.display()
        );
    }
    let outside = tags
        .get("O")
        .ok_or_else(|| anyhow::anyhow!("{}: no O tag", tags_path.display()))?;
    let max_len = recipe.data.max_len;
    let (vocab, model) = match &recipe.model {
        ModelSection::Bert(m) => {
            let sub = dir.join(crate::run::WORDPIECE_DIR);
            let wordpiece = mixup_data::WordPieceTokenizer::from_dir(&sub)
                .with_context(|| format!("{}: the run's WordPiece tokenizer", sub.display()))?;
            let config =
                mixup_models::BertConfig::from_json_file(dir.join(crate::run::BERT_CONFIG))?;
            let encoder = config.init(device).without_pooler();
            let vocab = NerVocab {
                tokenizer: word_config(&recipe).build(std::iter::empty()),
                wordpiece: Some(wordpiece),
                max_len,
                tags,
                outside,
                char_features: false,
            };
            let model =
                SequenceTagger::on_bert(encoder, vocab.tags.len(), m.dropout, m.crf, device);
            (vocab, model)
        }
        _ => {
            let tokenizer: mixup_data::WordTokenizer =
                serde_json::from_slice(&read("tokenizer.json")?).with_context(|| {
                    format!(
                        "{}: malformed tokenizer",
                        dir.join("tokenizer.json").display()
                    )
                })?;
            let vocab = NerVocab {
                tokenizer,
                wordpiece: None,
                max_len,
                tags,
                outside,
                char_features: recipe.tagger_options().char_filters > 0,
            };
            let model = build_tagger(&recipe, vocab.vocab_size(), vocab.tags.len(), None, device)?;
            (vocab, model)
        }
    };
    let model_path = dir.join("model.bpk");
    let record = burn::store::ModuleRecord::load(&model_path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read the model: {e:?}", model_path.display()))?;
    let model = model
        .try_load_record(record)
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: the model does not match {} ({} tags, vocab {}): {e:?}",
                model_path.display(),
                dir.join("recipe.toml").display(),
                vocab.tags.len(),
                vocab.vocab_size()
            )
        })?
        .valid();
    Ok(LoadedTagger {
        dir: dir.to_path_buf(),
        recipe,
        vocab,
        model,
    })
}

impl LoadedTagger {
    /// Entity scores on a CoNLL file (read with the recipe's tag scheme).
    ///
    /// # Errors
    ///
    /// A malformed file, or a tag the run does not know (file and line).
    pub fn evaluate(
        &self,
        path: &Path,
        device: &Device,
    ) -> anyhow::Result<(usize, mixup_data::EntityScores)> {
        let sentences = read_conll(path, &options(&self.recipe))?;
        let encoded = encode_split(&self.vocab, &sentences, path)?;
        let scores = evaluate_ner(
            &self.model,
            &encoded,
            &self.vocab,
            self.recipe.data.max_len,
            self.recipe.train.eval_batch_size,
            device,
        )?;
        Ok((sentences.len(), scores))
    }

    /// The tag of every token of each sentence (tokens as given, e.g. split on whitespace).
    ///
    /// # Errors
    ///
    /// A tokenizer failure, or probabilities that cannot be read back.
    pub fn tag(
        &self,
        sentences: &[Vec<String>],
        device: &Device,
    ) -> anyhow::Result<Vec<Vec<String>>> {
        let outside = self
            .vocab
            .tags
            .name(self.vocab.outside)
            .unwrap_or("O")
            .to_string();
        let encoded = sentences
            .iter()
            .enumerate()
            .map(|(i, tokens)| {
                let s = TaggedSentence {
                    tags: vec![outside.clone(); tokens.len()],
                    tokens: tokens.clone(),
                    line: i + 1,
                };
                self.vocab.encode(&s, Path::new("(input)"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tags = mixup_train::ner::predict_tags(
            &self.model,
            &encoded,
            &self.vocab,
            self.recipe.data.max_len,
            self.recipe.train.eval_batch_size,
            device,
        )?;
        Ok(tags
            .into_iter()
            .map(|t| {
                t.into_iter()
                    .map(|i| self.vocab.tags.name(i).unwrap_or("O").to_string())
                    .collect()
            })
            .collect())
    }
}
