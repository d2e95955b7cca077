//! Sequence labelling: a word vocabulary and tag set ([`NerVocab`]), encoded sentences with
//! per-token label distributions ([`NerItem`]: one-hot for gold sentences, soft for SeqMix
//! sentences, both trained through the same loss), the epoch of a tagger ([`TaggerTrainer`]),
//! and entity-level F1 with `conlleval` semantics ([`evaluate_ner`]).
//!
//! Sentences longer than `max_len` are cut for training; evaluation scores whole sentences
//! (positions past `max_len` are predicted `O`). Reading CoNLL folders and building a
//! recipe's tagger belong to the CLI.

use std::path::Path;

use burn::{
    optim::GradientsParams,
    tensor::{Bool, Device, Int, Tensor, TensorData, activation::softmax},
};
use mixup_core::soft_cross_entropy;
use mixup_data::{
    EntityScores, LabelSet, TaggedSentence, WordPieceTokenizer, WordTokenizer, WordTokenizerConfig,
    batch_indices, entity_scores,
};
use mixup_models::SequenceTagger;
use rand::{SeedableRng, rngs::StdRng};
use serde::Serialize;

use crate::{
    TrainError,
    config::TrainConfig,
    error::Result,
    optim::{LrSchedule, build_optimizer, clip_grad_norm},
    train::derive_seed,
};

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
    /// Per word, its byte ids ([`mixup_models::chars::byte_ids`]) when the vocabulary has
    /// [`NerVocab::char_features`]; empty otherwise.
    pub bytes: Vec<Vec<u32>>,
}

/// The encoded sentences of a split.
pub type EncodedSplit = Vec<EncodedSentence>;

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
    /// Whether sentences carry their words' byte ids (a tagger with character features);
    /// word-level taggers only.
    pub char_features: bool,
}

impl NerVocab {
    /// Builds the word vocabulary (`words`) and tag set from training sentences; model inputs
    /// hold at most `max_len` ids.
    ///
    /// # Errors
    ///
    /// Training data without an `O` tag.
    pub fn build(
        train: &[TaggedSentence],
        words: &WordTokenizerConfig,
        max_len: usize,
        wordpiece: Option<WordPieceTokenizer>,
    ) -> Result<Self> {
        let joined: Vec<String> = train.iter().map(|s| s.tokens.join(" ")).collect();
        let tokenizer = words.build(joined.iter().map(String::as_str));
        let tags = LabelSet::from(
            train
                .iter()
                .flat_map(|s| s.tags.iter().cloned())
                .collect::<Vec<_>>(),
        );
        let outside = tags
            .get("O")
            .ok_or_else(|| TrainError::config("data", "the training data has no O tag"))?;
        Ok(Self {
            tokenizer,
            wordpiece,
            max_len,
            tags,
            outside,
            char_features: false,
        })
    }

    /// The byte ids of each word a sentence's ids spell (a SeqMix sentence has ids, not
    /// text); empty when the vocabulary has no character features.
    pub fn bytes_of_ids(&self, ids: &[u32]) -> Vec<Vec<u32>> {
        if !self.char_features || self.wordpiece.is_some() {
            return Vec::new();
        }
        ids.iter()
            .map(|&id| mixup_models::chars::byte_ids(self.tokenizer.token(id).unwrap_or("<unk>")))
            .collect()
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
    pub fn encode(&self, s: &TaggedSentence, path: &Path) -> Result<EncodedSentence> {
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
                let (ids, word_of) = wp.encode_words(&words, self.max_len).map_err(|e| {
                    TrainError::config("data", format!("{}:{}: {e}", path.display(), s.line))
                })?;
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
                    TrainError::config(
                        "data",
                        format!(
                            "{}:{}: tag {t:?} does not occur in the training data (known: {})",
                            path.display(),
                            s.line + i,
                            self.tags.names().join(", ")
                        ),
                    )
                })
            })
            .collect::<Result<_>>()?;
        let bytes = if self.char_features && self.wordpiece.is_none() {
            s.tokens
                .iter()
                .map(|t| mixup_models::chars::byte_ids(t))
                .collect()
        } else {
            Vec::new()
        };
        Ok(EncodedSentence {
            ids,
            tags,
            first,
            bytes,
        })
    }
}

/// One training sentence: ids and a label distribution per token.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct NerItem {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Per token, `(tag, weight)` pairs summing to 1; empty for positions the loss ignores
    /// (`[CLS]`, `[SEP]`, sub-tokens after a word's first).
    pub labels: Vec<Vec<(usize, f32)>>,
    /// Per token, its byte ids for a tagger with character features (else empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bytes: Vec<Vec<u32>>,
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
            bytes: s.bytes.clone(),
        }
    }
}

/// Byte ids `[n, L, W]` of the tokens of `rows` (cut to `l` tokens), or `None` when no row has
/// any (a tagger without character features).
fn byte_batch(rows: &[&[Vec<u32>]], l: usize, device: &Device) -> Option<Tensor<3, Int>> {
    if rows.iter().all(|r| r.is_empty()) {
        return None;
    }
    let w = rows
        .iter()
        .flat_map(|r| r.iter().take(l).map(Vec::len))
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out = vec![0i64; rows.len() * l * w];
    for (i, r) in rows.iter().enumerate() {
        for (j, word) in r.iter().take(l).enumerate() {
            for (k, &b) in word.iter().take(w).enumerate() {
                out[(i * l + j) * w + k] = i64::from(b);
            }
        }
    }
    Some(Tensor::from_data(
        TensorData::new(out, [rows.len(), l, w]),
        device,
    ))
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

/// Singleton replacement (Lample et al. 2016): while training, each occurrence of a word
/// that training has only once becomes `<unk>` with probability `p`, so the singletons keep
/// vectors of their own and `<unk>` is trained on the same kind of rare word it stands for
/// at test time. Character features still see the word.
#[derive(Clone, Debug)]
pub struct SingletonUnk {
    singleton: Vec<bool>,
    p: f64,
}

impl SingletonUnk {
    /// The words of `train` seen exactly once there (ids counted over every sentence), each
    /// replaced with probability `p` (clamped to `[0, 1]`).
    pub fn from_train(train: &[EncodedSentence], vocab_size: usize, p: f64) -> Self {
        let mut counts = vec![0u32; vocab_size];
        for id in train.iter().flat_map(|s| s.ids.iter()) {
            if let Some(c) = counts.get_mut(*id as usize) {
                *c = c.saturating_add(1);
            }
        }
        Self {
            singleton: counts.iter().map(|&c| c == 1).collect(),
            p: p.clamp(0.0, 1.0),
        }
    }

    /// How many word ids are singletons.
    pub fn count(&self) -> usize {
        self.singleton.iter().filter(|&&s| s).count()
    }

    /// `ids` with each singleton replaced by `<unk>` with probability `p` (draws from `rng`,
    /// one per singleton occurrence).
    pub fn apply(&self, ids: &[u32], rng: &mut impl rand::RngExt) -> Vec<u32> {
        ids.iter()
            .map(|&id| {
                let single = self.singleton.get(id as usize).copied().unwrap_or(false);
                if single && rng.random_bool(self.p) {
                    mixup_data::UNK_ID
                } else {
                    id
                }
            })
            .collect()
    }
}

/// The optimiser and learning-rate schedule of a tagging run, kept across epochs.
pub struct TaggerTrainer {
    optim: burn::optim::ModuleOptimizer,
    schedule: LrSchedule,
    step: usize,
    seed: u64,
    num_tags: usize,
    singletons: Option<SingletonUnk>,
}

impl TaggerTrainer {
    /// A trainer for `model` over `epochs` epochs of `n_items` sentences, with the
    /// optimiser, batch size and clipping of `config` (its method is not used: SeqMix
    /// sentences come in as soft-labelled [`NerItem`]s).
    pub fn new(
        config: &TrainConfig,
        model: &SequenceTagger,
        n_items: usize,
        epochs: usize,
        num_tags: usize,
        seed: u64,
    ) -> Self {
        let steps = n_items.div_ceil(config.batch_size.max(1));
        Self {
            optim: build_optimizer(&config.optim, model),
            schedule: LrSchedule::new(&config.optim, steps * epochs),
            step: 0,
            seed,
            num_tags,
            singletons: None,
        }
    }

    /// Trains with singleton replacement (see [`SingletonUnk`]); the draws are seeded by the
    /// run's seed, epoch and step.
    pub fn with_singleton_unk(mut self, singletons: SingletonUnk) -> Self {
        self.singletons = Some(singletons);
        self
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
        config: &TrainConfig,
        epoch: usize,
        device: &Device,
    ) -> Result<(SequenceTagger, f64)> {
        let t = config;
        let max_len = t.step.max_len;
        let num_tags = self.num_tags;
        let mut order = StdRng::seed_from_u64(derive_seed(self.seed, 11, epoch as u64, 0));
        let mut loss_acc: Option<Tensor<1>> = None;
        for (step, idx) in batch_indices(items.len(), t.batch_size, Some(&mut order))
            .iter()
            .enumerate()
        {
            crate::train::seed_device(
                device,
                derive_seed(self.seed, 12, epoch as u64, step as u64),
            );
            // Singleton replacement, from a stream keyed by seed, epoch and step.
            let replaced: Option<Vec<Vec<u32>>> = self.singletons.as_ref().map(|su| {
                let mut draws =
                    StdRng::seed_from_u64(derive_seed(self.seed, 28, epoch as u64, step as u64));
                idx.iter()
                    .map(|&i| su.apply(&items[i].ids, &mut draws))
                    .collect()
            });
            let rows: Vec<&[u32]> = match &replaced {
                Some(r) => r.iter().map(Vec::as_slice).collect(),
                None => idx.iter().map(|&i| items[i].ids.as_slice()).collect(),
            };
            let (ids, mask) = id_batch(&rows, max_len, device);
            let [n, l] = ids.dims();
            let byte_rows: Vec<&[Vec<u32>]> =
                idx.iter().map(|&i| items[i].bytes.as_slice()).collect();
            let bytes = byte_batch(&byte_rows, l, device);
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
            let loss = match &model.crf {
                Some(crf) => {
                    // The CRF's chain is the labelled positions of each row, in order: every
                    // real token for word-level taggers, each word's first sub-token for
                    // WordPiece ones.
                    let chains: Vec<Vec<usize>> = (0..n)
                        .map(|r| (0..l).filter(|&j| keep[r * l + j]).collect())
                        .collect();
                    let lw = chains.iter().map(Vec::len).max().unwrap_or(1).max(1);
                    let mut index = vec![0i64; n * lw];
                    let mut chain_mask = vec![false; n * lw];
                    let mut chain_targets = vec![0f32; n * lw * num_tags];
                    for (r, chain) in chains.iter().enumerate() {
                        for (k, &j) in chain.iter().enumerate() {
                            index[r * lw + k] = j as i64;
                            chain_mask[r * lw + k] = true;
                            chain_targets[(r * lw + k) * num_tags..(r * lw + k + 1) * num_tags]
                                .copy_from_slice(
                                    &targets[(r * l + j) * num_tags..(r * l + j + 1) * num_tags],
                                );
                        }
                    }
                    let logits = model.token_logits(ids, bytes, mask);
                    let emissions = if lw == l
                        && chains
                            .iter()
                            .all(|c| c.len() == c.last().map_or(0, |&j| j + 1))
                    {
                        // Every chain is a prefix (word-level taggers): no gather needed.
                        logits
                    } else {
                        let index =
                            Tensor::<2, Int>::from_data(TensorData::new(index, [n, lw]), device);
                        logits.gather(1, index.unsqueeze_dim::<3>(2).expand([n, lw, num_tags]))
                    };
                    crf.nll(
                        emissions,
                        Tensor::<3>::from_data(
                            TensorData::new(chain_targets, [n, lw, num_tags]),
                            device,
                        ),
                        Tensor::<2, Bool>::from_data(TensorData::new(chain_mask, [n, lw]), device),
                    )
                }
                None => {
                    let targets =
                        Tensor::<2>::from_data(TensorData::new(targets, [n * l, num_tags]), device);
                    let keep = Tensor::<1, Bool>::from_data(TensorData::new(keep, [n * l]), device);
                    soft_cross_entropy(model.forward_tokens(ids, bytes, mask), targets, Some(keep))
                }
            };
            let logged = loss.clone().detach().mul_scalar(n as f32);
            loss_acc = Some(match loss_acc {
                Some(a) => a.add(logged),
                None => logged,
            });
            let mut grads = GradientsParams::from_grads(loss.backward(), &model);
            if let Some(max_norm) = t.step.clip_grad_norm {
                grads = clip_grad_norm(&model, grads, max_norm);
            }
            model = self.optim.step(self.schedule.lr(self.step), model, grads);
            self.step += 1;
        }
        let mean = loss_acc.map_or(0.0, |l| l.into_scalar::<f64>()) / items.len().max(1) as f64;
        if !mean.is_finite() {
            let steps = items.len().div_ceil(t.batch_size.max(1));
            return Err(TrainError::Diverged {
                loss: mean,
                epoch,
                step: steps,
                steps,
                lr: t.optim.lr,
                last_checkpoint: None,
            });
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
    sentences: &[&EncodedSentence],
    max_len: usize,
    batch_size: usize,
    num_tags: usize,
    outside: usize,
    device: &Device,
) -> Result<Vec<Vec<Vec<f32>>>> {
    token_outputs(
        model, sentences, max_len, batch_size, num_tags, outside, device, true,
    )
}

/// The per-token head outputs of each sentence: probabilities (`probs`) or raw scores (the
/// CRF's emissions; past `max_len`, `outside` scores 0 and the rest `-inf`).
#[allow(clippy::too_many_arguments)]
fn token_outputs(
    model: &SequenceTagger,
    sentences: &[&EncodedSentence],
    max_len: usize,
    batch_size: usize,
    num_tags: usize,
    outside: usize,
    device: &Device,
    probs: bool,
) -> Result<Vec<Vec<Vec<f32>>>> {
    let (on, off) = if probs {
        (1.0, 0.0)
    } else {
        (0.0, f32::NEG_INFINITY)
    };
    let mut out = Vec::with_capacity(sentences.len());
    for chunk in sentences.chunks(batch_size.max(1)) {
        let rows: Vec<&[u32]> = chunk.iter().map(|s| s.ids.as_slice()).collect();
        let (ids, mask) = id_batch(&rows, max_len, device);
        let l = ids.dims()[1];
        let byte_rows: Vec<&[Vec<u32>]> = chunk.iter().map(|s| s.bytes.as_slice()).collect();
        let bytes = byte_batch(&byte_rows, l, device);
        let logits = model.forward_tokens(ids, bytes, mask);
        let probs = if probs { softmax(logits, 1) } else { logits };
        let values: Vec<f32> = probs
            .into_data()
            .try_to_vec()
            .map_err(|e| TrainError::Backend(format!("reading tag probabilities back: {e:?}")))?;
        for (r, s) in chunk.iter().enumerate() {
            let rows = (0..s.ids.len())
                .map(|j| {
                    if j < l {
                        values[(r * l + j) * num_tags..(r * l + j + 1) * num_tags].to_vec()
                    } else {
                        let mut v = vec![off; num_tags];
                        v[outside] = on;
                        v
                    }
                })
                .collect();
            out.push(rows);
        }
    }
    Ok(out)
}

/// The word-level tags of one sentence from its sub-token probabilities `probs` (`first[w]`:
/// the sub-token of word `w`, `None` when the word was cut off, which is `O`): the most
/// likely tag sequence that is valid BIO (no `I-X` first or after anything but `B-X` / `I-X`),
/// by Viterbi over the log-probabilities ([`mixup_models::crf::bio_allowed`]).
pub fn decode_bio(probs: &[Vec<f32>], first: &[Option<usize>], vocab: &NerVocab) -> Vec<usize> {
    let log: Vec<Vec<f32>> = probs
        .iter()
        .map(|p| p.iter().map(|&q| q.max(1e-12).ln()).collect())
        .collect();
    decode_scores(&log, first, vocab, None)
}

/// Viterbi over the word-level `scores` (the sub-token `first[w]` of each word) with BIO's
/// constraints, plus a CRF's `(transitions, start, end)` when given.
fn decode_scores(
    scores: &[Vec<f32>],
    first: &[Option<usize>],
    vocab: &NerVocab,
    crf: Option<&(Vec<f32>, Vec<f32>, Vec<f32>)>,
) -> Vec<usize> {
    let names = vocab.tags.names();
    let t = names.len();
    let (mut transitions, mut start) = mixup_models::crf::bio_allowed(names);
    let mut end = vec![0.0; t];
    if let Some((a, s, e)) = crf {
        for (x, y) in transitions.iter_mut().zip(a) {
            *x += y;
        }
        for (x, y) in start.iter_mut().zip(s) {
            *x += y;
        }
        end.clone_from(e);
    }
    let mut emissions = Vec::with_capacity(first.len() * t);
    for f in first {
        match f.and_then(|i| scores.get(i)) {
            Some(p) => emissions.extend_from_slice(p),
            None => emissions.extend((0..t).map(|j| {
                if j == vocab.outside {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })),
        }
    }
    mixup_models::crf::viterbi(&emissions, t, &transitions, &start, &end)
}

/// The tags of encoded sentences, word by word: BIO-valid ([`decode_bio`]), by the CRF's
/// Viterbi when the tagger has one.
///
/// # Errors
///
/// See [`predict_proba`].
pub fn predict_tags(
    model: &SequenceTagger,
    data: &[EncodedSentence],
    vocab: &NerVocab,
    max_len: usize,
    batch_size: usize,
    device: &Device,
) -> Result<Vec<Vec<usize>>> {
    let ids: Vec<&EncodedSentence> = data.iter().collect();
    let (t, o) = (vocab.tags.len(), vocab.outside);
    if let Some(crf) = &model.crf {
        let scores = crf.host_scores();
        let emissions = token_outputs(model, &ids, max_len, batch_size, t, o, device, false)?;
        return Ok(emissions
            .iter()
            .zip(data)
            .map(|(e, d)| decode_scores(e, &d.first, vocab, Some(&scores)))
            .collect());
    }
    let probs = predict_proba(model, &ids, max_len, batch_size, t, o, device)?;
    Ok(probs
        .iter()
        .zip(data)
        .map(|(p, d)| decode_bio(p, &d.first, vocab))
        .collect())
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
) -> Result<EntityScores> {
    let name = |i: usize| vocab.tags.name(i).unwrap_or("O").to_string();
    let gold: Vec<Vec<String>> = data
        .iter()
        .map(|d| d.tags.iter().map(|&t| name(t)).collect())
        .collect();
    // Each word is scored at its first sub-token; a word cut off is `O`.
    let pred: Vec<Vec<String>> = predict_tags(model, data, vocab, max_len, batch_size, device)?
        .into_iter()
        .map(|tags| tags.into_iter().map(name).collect())
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
) -> Result<EncodedSplit> {
    sentences.iter().map(|s| vocab.encode(s, path)).collect()
}

/// One epoch's metrics of a tagging run.
#[derive(Clone, Debug, Serialize)]
pub struct NerEpoch {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Dev entity F1 (micro), when there is a dev split and the epoch was evaluated.
    pub dev_f1: Option<f64>,
    /// Test entity F1 (micro); none when the epoch was not evaluated (`eval_every`).
    pub test_f1: Option<f64>,
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
    /// With `train.select = "best-dev"`: the epoch whose model was kept (and whose scores
    /// these are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected_epoch: Option<usize>,
    /// Training sentences per second (training phase only).
    pub train_sentences_per_s: f64,
    /// Wall-clock seconds of the whole run.
    pub total_seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Singleton replacement finds the words seen once, replaces only those, all of them at
    /// p = 1, none at p = 0, about half at p = 0.5, and the same draws give the same ids.
    #[test]
    fn singleton_unk_replaces_only_singletons() {
        let sentence = |ids: &[u32]| EncodedSentence {
            ids: ids.to_vec(),
            tags: vec![0; ids.len()],
            first: (0..ids.len()).map(Some).collect(),
            bytes: Vec::new(),
        };
        // Ids 2 and 3 occur twice, 4 and 5 once, 6 never.
        let train = [sentence(&[2, 3, 4]), sentence(&[2, 3, 5])];
        let su = SingletonUnk::from_train(&train, 7, 1.0);
        assert_eq!(su.count(), 2);
        let mut rng = StdRng::seed_from_u64(0);
        let unk = mixup_data::UNK_ID;
        assert_eq!(
            su.apply(&[2, 4, 3, 5, 6], &mut rng),
            vec![2, unk, 3, unk, 6]
        );
        let none = SingletonUnk::from_train(&train, 7, 0.0);
        assert_eq!(none.apply(&[2, 4, 5], &mut rng), vec![2, 4, 5]);
        let half = SingletonUnk::from_train(&train, 7, 0.5);
        let long: Vec<u32> = std::iter::repeat_n([4, 2], 1000).flatten().collect();
        let out = half.apply(&long, &mut rng);
        let replaced = out.iter().filter(|&&id| id == unk).count();
        assert!((400..600).contains(&replaced), "{replaced} of 1000");
        assert!(out.iter().skip(1).step_by(2).all(|&id| id == 2));
        let again = |seed| half.apply(&long, &mut StdRng::seed_from_u64(seed));
        assert_eq!(again(7), again(7));
        assert_ne!(again(7), again(8));
    }

    /// Decoding never opens an entity with `I-X` (the argmax would: `O I-PER`), keeps a valid
    /// `B-PER I-PER`, and tags a word cut off by `max_len` `O`.
    #[test]
    fn decoding_is_valid_bio() {
        let train = [TaggedSentence {
            tokens: vec!["Ann".into(), "Lee".into(), "ran".into()],
            tags: vec!["B-PER".into(), "I-PER".into(), "O".into()],
            line: 1,
        }];
        let vocab =
            NerVocab::build(&train, &WordTokenizerConfig::default(), 8, None).expect("vocab");
        let id = |t: &str| vocab.tags.get(t).expect("tag");
        let (o, b, i) = (id("O"), id("B-PER"), id("I-PER"));
        let dist = |pairs: &[(usize, f32)]| {
            let mut p = vec![0.01f32; vocab.tags.len()];
            for &(k, v) in pairs {
                p[k] = v;
            }
            p
        };
        // Word 1: O; word 2: I-PER slightly over O and B-PER.
        let probs = vec![dist(&[(o, 0.9)]), dist(&[(i, 0.4), (o, 0.35), (b, 0.23)])];
        let first = [Some(0), Some(1)];
        assert_eq!(decode_bio(&probs, &first, &vocab), vec![o, o]);
        let probs = vec![dist(&[(b, 0.8)]), dist(&[(i, 0.6), (o, 0.3)])];
        assert_eq!(decode_bio(&probs, &first, &vocab), vec![b, i]);
        assert_eq!(
            decode_bio(&probs, &[Some(0), None], &vocab),
            vec![b, o],
            "a word cut off is O"
        );
    }
}
