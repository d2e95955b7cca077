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
use burn::{
    module::Module,
    optim::GradientsParams,
    tensor::{Bool, Device, Int, Tensor, TensorData, activation::softmax},
};
use mixup_core::soft_cross_entropy;
use mixup_data::{
    ConllOptions, EntityScores, LabelSet, TagScheme, TaggedSentence, WordPieceTokenizer,
    WordTokenizer, WordTokenizerConfig, batch_indices, entity_scores, read_conll,
};
use mixup_models::{
    BiLstmClassifierConfig, MixingPoints, SequenceTagger, SequenceTaggerConfig, TaggerKind,
    TransformerClassifierConfig,
};
use rand::{SeedableRng, rngs::StdRng};
use serde::Serialize;

use crate::{
    optim::{LrSchedule, build_optimizer, clip_grad_norm},
    recipe::{ModelSection, Recipe},
    train::derive_seed,
};

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
        scheme: if recipe.data.tag_scheme == "iob1" {
            TagScheme::Iob1
        } else {
            TagScheme::Bio
        },
        ..ConllOptions::default()
    }
}

/// One sentence ready for a tagger.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedSentence {
    /// Model input ids: one per word, or WordPiece sub-tokens with `[CLS]`/`[SEP]`.
    pub ids: Vec<u32>,
    /// Tag index per word.
    pub tags: Vec<usize>,
    /// Per word, the position in `ids` whose prediction is the word's (its first sub-token);
    /// `None` when the word was cut off by `max_len`.
    pub first: Vec<Option<usize>>,
}

/// The encoded sentences of a split.
pub type EncodedSplit = Vec<EncodedSentence>;

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

/// Word vocabulary and tag set of a tagging run.
#[derive(Clone, Debug)]
pub struct NerVocab {
    /// Words (from train).
    pub tokenizer: WordTokenizer,
    /// The WordPiece tokenizer of a BERT-family tagger (then the model reads sub-tokens).
    pub wordpiece: Option<WordPieceTokenizer>,
    /// Longest model input (sub-tokens for WordPiece).
    pub max_len: usize,
    /// Tags (from train, sorted).
    pub tags: LabelSet,
    /// Index of `O`.
    pub outside: usize,
}

impl NerVocab {
    /// Builds the vocabulary and tag set from training sentences.
    ///
    /// # Errors
    ///
    /// Training data without an `O` tag.
    pub fn build(
        train: &[TaggedSentence],
        recipe: &Recipe,
        wordpiece: Option<WordPieceTokenizer>,
    ) -> anyhow::Result<Self> {
        let joined: Vec<String> = train.iter().map(|s| s.tokens.join(" ")).collect();
        let tokenizer = WordTokenizerConfig {
            lowercase: recipe.data.lowercase,
            min_freq: recipe.data.min_freq,
            max_vocab: recipe.data.max_vocab,
        }
        .build(joined.iter().map(String::as_str));
        let tags = LabelSet::from(
            train
                .iter()
                .flat_map(|s| s.tags.iter().cloned())
                .collect::<Vec<_>>(),
        );
        let outside = tags
            .get("O")
            .ok_or_else(|| anyhow::anyhow!("the training data has no O tag"))?;
        Ok(Self {
            tokenizer,
            wordpiece,
            max_len: recipe.data.max_len,
            tags,
            outside,
        })
    }

    /// Rows of the model's embedding table.
    pub fn vocab_size(&self) -> usize {
        match &self.wordpiece {
            Some(wp) => wp.vocab_size(),
            None => self.tokenizer.vocab_size(),
        }
    }

    /// One sentence as ids and tag indices (all of it, not cut).
    ///
    /// # Errors
    ///
    /// A tag that training never had, naming `path` and the sentence's line.
    pub fn encode(&self, s: &TaggedSentence, path: &Path) -> anyhow::Result<EncodedSentence> {
        let (ids, first) = match &self.wordpiece {
            None => (
                s.tokens
                    .iter()
                    .map(|t| self.tokenizer.encode(t, 1)[0])
                    .collect::<Vec<u32>>(),
                (0..s.tokens.len()).map(Some).collect::<Vec<_>>(),
            ),
            Some(wp) => {
                let words: Vec<&str> = s.tokens.iter().map(String::as_str).collect();
                let (ids, word_of) = wp
                    .encode_words(&words, self.max_len)
                    .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), s.line))?;
                let mut first = vec![None; words.len()];
                for (p, w) in word_of.iter().enumerate() {
                    if let Some(w) = *w
                        && w < first.len()
                        && first[w].is_none()
                    {
                        first[w] = Some(p);
                    }
                }
                (ids, first)
            }
        };
        let tags = s
            .tags
            .iter()
            .enumerate()
            .map(|(i, t)| {
                self.tags.get(t).ok_or_else(|| {
                    anyhow::anyhow!(
                        "{}:{}: tag {t:?} does not occur in the training data (known: {})",
                        path.display(),
                        s.line + i,
                        self.tags.names().join(", ")
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(EncodedSentence { ids, tags, first })
    }
}

/// One training sentence: ids and a label distribution per token.
#[derive(Clone, Debug, PartialEq)]
pub struct NerItem {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Per token, `(tag, weight)` pairs summing to 1; empty for positions the loss ignores
    /// (`[CLS]`, `[SEP]`, sub-tokens after a word's first).
    pub labels: Vec<Vec<(usize, f32)>>,
}

impl NerItem {
    /// A gold sentence: one-hot labels at each word's first sub-token, none (ignored by the
    /// loss) at the other positions.
    pub fn hard(s: &EncodedSentence) -> Self {
        let mut labels = vec![Vec::new(); s.ids.len()];
        for (w, p) in s.first.iter().enumerate() {
            if let Some(p) = *p {
                labels[p] = vec![(s.tags[w], 1.0)];
            }
        }
        Self {
            ids: s.ids.clone(),
            labels,
        }
    }
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
            device,
        ));
    }
    let kind = match &recipe.model {
        ModelSection::Bilstm(m) => TaggerKind::BiLstm(
            BiLstmClassifierConfig::new(vocab, 1)
                .with_d_embed(m.d_embed)
                .with_d_hidden(m.d_hidden)
                .with_n_layers(m.n_layers)
                .with_dropout(m.dropout),
        ),
        ModelSection::Transformer(m) => TaggerKind::Transformer(
            TransformerClassifierConfig::new(vocab, 1)
                .with_d_model(m.d_model)
                .with_n_heads(m.n_heads)
                .with_n_layers(m.n_layers)
                .with_d_ff(m.d_ff)
                .with_dropout(m.dropout)
                .with_max_positions(recipe.data.max_len)
                .with_pre_norm(m.norm == "pre")
                .with_activation(if m.activation == "gelu" {
                    burn::nn::activation::ActivationConfig::Gelu
                } else {
                    burn::nn::activation::ActivationConfig::Relu
                }),
        ),
        other => anyhow::bail!(
            "model.kind = {:?} is not a tagger (use bilstm or transformer)",
            other.kind_name()
        ),
    };
    let dropout = match &recipe.model {
        ModelSection::Bilstm(m) => m.dropout,
        ModelSection::Transformer(m) => m.dropout,
        _ => 0.0,
    };
    Ok(SequenceTaggerConfig::new(kind, num_tags)
        .with_dropout(dropout)
        .init(device))
}

/// Ids `[n, L]` and mask of sentences cut to `max_len`.
fn id_batch(rows: &[&[u32]], max_len: usize, device: &Device) -> (Tensor<2, Int>, Tensor<2, Bool>) {
    let l = rows
        .iter()
        .map(|r| r.len().min(max_len))
        .max()
        .unwrap_or(1)
        .max(1);
    let mut ids = vec![0i64; rows.len() * l];
    let mut mask = vec![false; rows.len() * l];
    for (i, r) in rows.iter().enumerate() {
        for (j, &id) in r.iter().take(l).enumerate() {
            ids[i * l + j] = id as i64;
            mask[i * l + j] = true;
        }
    }
    (
        Tensor::from_data(TensorData::new(ids, [rows.len(), l]), device),
        Tensor::from_data(TensorData::new(mask, [rows.len(), l]), device),
    )
}

/// The optimiser and learning-rate schedule of a tagging run, kept across epochs.
pub struct TaggerTrainer {
    optim: burn::optim::ModuleOptimizer,
    schedule: LrSchedule,
    step: usize,
    seed: u64,
    num_tags: usize,
}

impl TaggerTrainer {
    /// A trainer for `model` over `epochs` epochs of `n_items` sentences.
    pub fn new(
        recipe: &Recipe,
        model: &SequenceTagger,
        n_items: usize,
        epochs: usize,
        num_tags: usize,
        seed: u64,
    ) -> Self {
        let t = &recipe.train;
        let steps = n_items.div_ceil(t.batch_size.max(1));
        Self {
            optim: build_optimizer(t, model),
            schedule: LrSchedule::new(t, steps * epochs),
            step: 0,
            seed,
            num_tags,
        }
    }

    /// Trains one epoch (1-based `epoch`) on `items` and returns the model and the epoch's
    /// mean loss. `device` is the autodiff device the model lives on.
    ///
    /// # Errors
    ///
    /// A loss that turns NaN or infinite.
    pub fn epoch(
        &mut self,
        mut model: SequenceTagger,
        items: &[NerItem],
        recipe: &Recipe,
        epoch: usize,
        device: &Device,
    ) -> anyhow::Result<(SequenceTagger, f64)> {
        let t = &recipe.train;
        let max_len = recipe.data.max_len;
        let num_tags = self.num_tags;
        let mut order = StdRng::seed_from_u64(derive_seed(self.seed, 11, epoch as u64, 0));
        let mut loss_acc: Option<Tensor<1>> = None;
        for (step, idx) in batch_indices(items.len(), t.batch_size, Some(&mut order))
            .iter()
            .enumerate()
        {
            crate::train::seed_device(
                &device,
                derive_seed(self.seed, 12, epoch as u64, step as u64),
            );
            let rows: Vec<&[u32]> = idx.iter().map(|&i| items[i].ids.as_slice()).collect();
            let (ids, mask) = id_batch(&rows, max_len, device);
            let [n, l] = ids.dims();
            let mut targets = vec![0f32; n * l * num_tags];
            let mut keep = vec![false; n * l];
            for (r, &i) in idx.iter().enumerate() {
                for (j, labels) in items[i].labels.iter().take(l).enumerate() {
                    keep[r * l + j] = !labels.is_empty();
                    for &(tag, w) in labels {
                        targets[(r * l + j) * num_tags + tag] += w;
                    }
                }
            }
            let targets =
                Tensor::<2>::from_data(TensorData::new(targets, [n * l, num_tags]), device);
            let keep = Tensor::<1, Bool>::from_data(TensorData::new(keep, [n * l]), device);
            let logits = model.forward(ids, mask);
            let loss = soft_cross_entropy(logits, targets, Some(keep));
            let logged = loss.clone().detach().mul_scalar(n as f32);
            loss_acc = Some(match loss_acc {
                Some(a) => a.add(logged),
                None => logged,
            });
            let mut grads = GradientsParams::from_grads(loss.backward(), &model);
            if let Some(max_norm) = t.clip_grad_norm {
                grads = clip_grad_norm(&model, grads, max_norm);
            }
            model = self.optim.step(self.schedule.lr(self.step), model, grads);
            self.step += 1;
        }
        let mean = loss_acc.map_or(0.0, |l| l.into_scalar::<f64>()) / items.len().max(1) as f64;
        if !mean.is_finite() {
            anyhow::bail!(
                "training diverged: the loss is {mean} in epoch {epoch}; lower train.lr (now {})",
                t.lr
            );
        }
        Ok((model, mean))
    }
}

/// Per-token tag probabilities `[len, tags]` of each sentence (whole sentences; positions past
/// `max_len` get all their mass on `outside`).
///
/// # Errors
///
/// Probabilities that cannot be read back from the device.
pub fn predict_proba(
    model: &SequenceTagger,
    sentences: &[&[u32]],
    max_len: usize,
    batch_size: usize,
    num_tags: usize,
    outside: usize,
    device: &Device,
) -> anyhow::Result<Vec<Vec<Vec<f32>>>> {
    let mut out = Vec::with_capacity(sentences.len());
    for chunk in sentences.chunks(batch_size.max(1)) {
        let (ids, mask) = id_batch(chunk, max_len, device);
        let l = ids.dims()[1];
        let probs = softmax(model.forward(ids, mask), 1);
        let values: Vec<f32> = probs
            .into_data()
            .try_to_vec()
            .map_err(|e| anyhow::anyhow!("reading tag probabilities back: {e:?}"))?;
        for (r, s) in chunk.iter().enumerate() {
            let rows = (0..s.len())
                .map(|j| {
                    if j < l {
                        values[(r * l + j) * num_tags..(r * l + j + 1) * num_tags].to_vec()
                    } else {
                        let mut v = vec![0.0; num_tags];
                        v[outside] = 1.0;
                        v
                    }
                })
                .collect();
            out.push(rows);
        }
    }
    Ok(out)
}

fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// Entity scores of `model` on encoded sentences.
///
/// # Errors
///
/// See [`predict_proba`].
pub fn evaluate_ner(
    model: &SequenceTagger,
    data: &[EncodedSentence],
    vocab: &NerVocab,
    max_len: usize,
    batch_size: usize,
    device: &Device,
) -> anyhow::Result<EntityScores> {
    let ids: Vec<&[u32]> = data.iter().map(|d| d.ids.as_slice()).collect();
    let probs = predict_proba(
        model,
        &ids,
        max_len,
        batch_size,
        vocab.tags.len(),
        vocab.outside,
        device,
    )?;
    let name = |i: usize| vocab.tags.name(i).unwrap_or("O").to_string();
    let gold: Vec<Vec<String>> = data
        .iter()
        .map(|d| d.tags.iter().map(|&t| name(t)).collect())
        .collect();
    // Each word takes the prediction at its first sub-token; a word cut off is `O`.
    let pred: Vec<Vec<String>> = probs
        .iter()
        .zip(data)
        .map(|(p, d)| {
            d.first
                .iter()
                .map(|f| {
                    name(
                        f.and_then(|i| p.get(i))
                            .map_or(vocab.outside, |q| argmax(q)),
                    )
                })
                .collect()
        })
        .collect();
    Ok(entity_scores(&gold, &pred))
}

/// Encodes every sentence of a split (see [`NerVocab::encode`]).
///
/// # Errors
///
/// An unknown tag, naming the file and line.
pub fn encode_split(
    vocab: &NerVocab,
    sentences: &[TaggedSentence],
    path: &Path,
) -> anyhow::Result<EncodedSplit> {
    sentences.iter().map(|s| vocab.encode(s, path)).collect()
}

/// One epoch's metrics of a tagging run.
#[derive(Clone, Debug, Serialize)]
pub struct NerEpoch {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Dev entity F1 (micro), when there is a dev split.
    pub dev_f1: Option<f64>,
    /// Test entity F1 (micro).
    pub test_f1: f64,
}

/// What a finished tagging run reports.
#[derive(Clone, Debug, Serialize)]
pub struct NerFinal {
    /// Recipe name.
    pub recipe: String,
    /// Model kind.
    pub model: String,
    /// Seed.
    pub seed: u64,
    /// Backend.
    pub device: String,
    /// Epochs.
    pub epochs: usize,
    /// Test entity scores of the final model (per type and micro).
    pub test: EntityScores,
    /// Dev entity scores, when there is a dev split.
    pub dev: Option<EntityScores>,
    /// Training sentences per second (training phase only).
    pub train_sentences_per_s: f64,
    /// Wall-clock seconds of the whole run.
    pub total_seconds: f64,
}

/// Trains a `ner` recipe on its full training set, one evaluation per epoch, and writes the
/// run folder (`recipe.toml`, `tokenizer.json` for word-level taggers, `tags.json`,
/// `model.bpk`, `metrics.json`, `final.json`).
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
    let vocab = NerVocab::build(
        &data.train,
        recipe,
        bert.as_ref().map(|b| b.tokenizer.clone()),
    )?;
    let (train, dev, test) = data.encode(&vocab)?;
    say(&format!(
        "training {} ({} tagger, seed {}) on {device_name}: {} train / {} test sentences, vocab \
         {}, {} tags, data {}",
        recipe.name,
        recipe.model.kind_name(),
        recipe.train.seed,
        train.len(),
        test.len(),
        vocab.tokenizer.vocab_size(),
        vocab.tags.len(),
        data.dir.display()
    ));
    let items: Vec<NerItem> = train.iter().map(NerItem::hard).collect();
    let ad = device.clone().autodiff();
    crate::train::seed_device(&ad, recipe.train.seed);
    let num_tags = vocab.tags.len();
    let mut model = build_tagger(
        recipe,
        vocab.vocab_size(),
        num_tags,
        bert.as_ref().map(|b| b.dir.as_path()),
        &ad,
    )?;
    let (max_len, eb) = (recipe.data.max_len, recipe.train.eval_batch_size);
    let mut epochs = Vec::new();
    let mut train_seconds = 0.0;
    let mut trainer = TaggerTrainer::new(
        recipe,
        &model,
        items.len(),
        recipe.train.epochs,
        num_tags,
        recipe.train.seed,
    );
    for epoch in 1..=recipe.train.epochs {
        let t0 = std::time::Instant::now();
        let (next, loss) = trainer.epoch(model, &items, recipe, epoch, &ad)?;
        train_seconds += t0.elapsed().as_secs_f64();
        model = next;
        let eval = model.valid();
        let dev_scores = dev
            .as_ref()
            .map(|d| evaluate_ner(&eval, d, &vocab, max_len, eb, device))
            .transpose()?;
        let test_scores = evaluate_ner(&eval, &test, &vocab, max_len, eb, device)?;
        let e = NerEpoch {
            epoch,
            train_loss: loss,
            dev_f1: dev_scores.as_ref().map(|s| s.micro.f1),
            test_f1: test_scores.micro.f1,
        };
        say(&format!(
            "epoch {epoch} done: train loss {:.4}{} test F1 {:.4} ({:.1} s)",
            e.train_loss,
            e.dev_f1
                .map(|f| format!(" dev F1 {f:.4}"))
                .unwrap_or_default(),
            e.test_f1,
            t0.elapsed().as_secs_f64()
        ));
        epochs.push(e);
    }
    let eval = model.valid();
    let test_scores = evaluate_ner(&eval, &test, &vocab, max_len, eb, device)?;
    let dev_scores = dev
        .as_ref()
        .map(|d| evaluate_ner(&eval, d, &vocab, max_len, eb, device))
        .transpose()?;
    let report = NerFinal {
        recipe: recipe.name.clone(),
        model: recipe.model.kind_name().into(),
        seed: recipe.train.seed,
        device: device_name.into(),
        epochs: recipe.train.epochs,
        test: test_scores,
        dev: dev_scores,
        train_sentences_per_s: (items.len() * recipe.train.epochs) as f64 / train_seconds.max(1e-9),
        total_seconds: started.elapsed().as_secs_f64(),
    };
    let mut resolved = recipe.clone();
    resolved.results = None;
    crate::run::write_atomic(&out.join("recipe.toml"), resolved.to_toml()?.as_bytes())?;
    // A BERT-family tagger reads WordPiece ids from its checkpoint's tokenizer; the word
    // vocabulary belongs to word-level taggers only.
    if vocab.wordpiece.is_none() {
        crate::run::write_atomic(
            &out.join("tokenizer.json"),
            &serde_json::to_vec(&vocab.tokenizer)?,
        )?;
    }
    crate::run::write_atomic(
        &out.join("tags.json"),
        &serde_json::to_vec_pretty(vocab.tags.names())?,
    )?;
    let tmp = out.join("model.bpk.tmp");
    eval.into_record()
        .save(&tmp)
        .map_err(|e| anyhow::anyhow!("writing {}: {e:?}", tmp.display()))?;
    std::fs::rename(&tmp, out.join("model.bpk"))
        .with_context(|| format!("renaming {}", tmp.display()))?;
    crate::run::write_atomic(
        &out.join("metrics.json"),
        &serde_json::to_vec_pretty(&epochs)?,
    )?;
    crate::run::write_atomic(
        &out.join("final.json"),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    Ok(report)
}
