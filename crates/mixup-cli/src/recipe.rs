//! Recipes: one TOML file per zoo entry (data + model + method + training), read into
//! project-owned serde structs whose every field but the name, dataset and model kind has a
//! default.

use std::path::{Path, PathBuf};

use mixup_core::{LambdaMode, MixMethod, Pairing, ProjectionMetric, SeqMixVariant, SpanMode};
pub use mixup_train::{CleanWeighting, LossForm, OptimizerKind, Schedule};
use mixup_train::{OptimConfig, Selection, StepConfig, TrainConfig};
use serde::{Deserialize, Serialize};

/// What a recipe trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Sentence classification.
    #[default]
    Classify,
    /// Sequence labelling on CoNLL column files.
    Ner,
}

/// The tag scheme of `ner` data files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TagSchemeName {
    /// BIO (IOB2): every entity starts with `B-`.
    #[default]
    Bio,
    /// IOB1 (CoNLL-2003's original files): `B-` only between two entities of one type;
    /// converted to BIO on reading.
    Iob1,
}

/// Pooling of the BiLSTM's states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LstmPooling {
    /// Max over valid positions.
    #[default]
    Max,
    /// Mean over valid positions.
    Mean,
}

/// Pooling of the Transformer's states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncoderPooling {
    /// Masked mean over valid positions.
    #[default]
    Mean,
    /// A learned `[CLS]` vector in front.
    Cls,
}

/// Where a Transformer layer normalises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// LayerNorm before each sub-layer.
    #[default]
    Pre,
    /// LayerNorm after the residual sum (the original Transformer).
    Post,
}

/// The feed-forward activation of a Transformer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// ReLU.
    #[default]
    Relu,
    /// GELU.
    Gelu,
}

/// A recipe that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The recipe file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown or mistyped fields.
    #[error("{path}: {message}")]
    Parse {
        /// The recipe file.
        path: PathBuf,
        /// What the TOML parser said (with line and column).
        message: String,
    },
    /// A value is out of range.
    #[error("{path}: {field} = {value}: {reason}")]
    Invalid {
        /// The recipe file.
        path: PathBuf,
        /// The offending field, as `section.key`.
        field: String,
        /// Its value.
        value: String,
        /// Why it is refused.
        reason: String,
    },
}

/// A zoo recipe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Name of the entry (also the default run folder name).
    pub name: String,
    /// One line on what the entry is.
    #[serde(default)]
    pub description: String,
    /// `classify` (sentence classification, the default) or `ner` (sequence labelling on
    /// CoNLL column files, with a BiLSTM or Transformer tagger).
    #[serde(default)]
    pub task: Task,
    /// Where the data comes from and how it is tokenized.
    pub data: DataSection,
    /// The model.
    pub model: ModelSection,
    /// The mixing method.
    #[serde(default)]
    pub method: MethodSection,
    /// Optimisation.
    #[serde(default)]
    pub train: TrainSection,
    /// SeqMix augmentation of `ner` recipes (used by `mixup ner-al`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seqmix: Option<SeqMixSection>,
    /// MixText's settings (`method.kind = "mixtext"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mixtext: Option<MixTextSection>,
    /// Measured results (written by people after measuring; never read by training).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<toml::Table>,
}

/// Built-in augmentations of unlabelled texts (used when the dataset has no
/// `unlabelled.augN.txt` files).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Augmentation {
    /// Delete each word with probability `augment_rate` (never every word), then swap each
    /// adjacent pair with the same probability (EDA's random deletion and swap).
    #[default]
    DropSwap,
    /// Word deletion only.
    Drop,
    /// Adjacent swaps only.
    Swap,
    /// No change (the K views are copies of the text: guessing then averages dropout only).
    None,
}

/// The `[mixtext]` section (see `mixup_train::mixtext`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MixTextSection {
    /// Sharpening temperature T of the guessed targets.
    pub temperature: f64,
    /// Augmentations per unlabelled text when the dataset brings none (its
    /// `unlabelled.augN.txt` files, when present, are used instead, all of them).
    pub k: usize,
    /// The built-in augmentation.
    pub augment: Augmentation,
    /// Its per-word probability.
    pub augment_rate: f64,
    /// Weight of the unlabelled term once ramped up.
    pub lambda_u: f64,
    /// Epochs over which that weight rises linearly from 0 (default: all of `train.epochs`,
    /// as the official code).
    pub rampup_epochs: Option<f64>,
    /// The entropy margin gamma of the paper's optional term (none: no term).
    pub margin: Option<f64>,
    /// Weight of the margin term.
    pub margin_weight: f64,
    /// Unlabelled texts per step (default: `train.batch_size`).
    pub batch_size_u: Option<usize>,
}

impl Default for MixTextSection {
    fn default() -> Self {
        Self {
            temperature: 0.5,
            k: 2,
            augment: Augmentation::DropSwap,
            augment_rate: 0.1,
            lambda_u: 1.0,
            rampup_epochs: None,
            margin: None,
            margin_weight: 0.0,
            batch_size_u: None,
        }
    }
}

/// The `[seqmix]` section: how `mixup ner-al` augments each round's queried sentences.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeqMixSection {
    /// `whole`, `sub` or `label-constrained`: the variant `mixup ner-al` compares with no
    /// augmentation when no `--augment` list is given.
    pub variant: SeqMixVariant,
    /// Lambda ~ Beta(alpha, alpha).
    pub alpha: f64,
    /// Window length of the sub-sequence variants.
    pub window: usize,
    /// Non-`O` tags a window (or, for `whole`, a sentence) must hold.
    pub min_labelled: usize,
    /// Sentences generated per queried sentence (the paper's augment rate).
    pub rate: f64,
    /// Keep generated sentences whose perplexity under a Kneser-Ney n-gram model of the
    /// labelled sentences is below this; no filter when absent.
    pub max_perplexity: Option<f64>,
    /// Order of that n-gram model.
    pub lm_order: usize,
    /// How a mixed embedding becomes a token: `cosine` (the nearest by cosine similarity) or
    /// `squared-l2` (the official code's distance).
    pub projection: ProjectionMetric,
    /// Take the first non-source token among the `top_k` nearest (the official code: 7);
    /// none: the nearest non-source token.
    pub top_k: Option<usize>,
    /// Never produce a word the tagger has not trained: only ids of the round's labelled
    /// sentences are candidates (the others' embedding rows are still random).
    pub exclude_untrained: bool,
    /// `mixup train`: after each epoch, this many SeqMix sentences per training sentence
    /// (variant `variant`, over the tagger's current embeddings) join the next epoch,
    /// replacing the previous epoch's. 0: no augmentation in `mixup train`.
    pub train_rate: f64,
}

impl Default for SeqMixSection {
    fn default() -> Self {
        Self {
            variant: SeqMixVariant::Sub,
            alpha: 8.0,
            window: 5,
            min_labelled: 3,
            rate: 0.2,
            max_perplexity: None,
            lm_order: 3,
            projection: ProjectionMetric::Cosine,
            top_k: None,
            exclude_untrained: true,
            train_rate: 0.0,
        }
    }
}

/// The `[data]` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSection {
    /// Dataset folder name, looked up under `--data-dir`, `$MIXUP_DATA_DIR`, then the cache.
    pub dataset: String,
    /// Longest sequence in tokens; longer texts are cut.
    pub max_len: usize,
    /// Lowercase before tokenizing.
    pub lowercase: bool,
    /// Words seen fewer times in training become `<unk>`.
    pub min_freq: usize,
    /// Largest vocabulary, `<pad>` and `<unk>` included.
    pub max_vocab: Option<usize>,
    /// Word-level vocabularies: every ASCII digit becomes `0` before a word is looked up
    /// (Lample et al. 2016), so numbers share entries; character features still see the
    /// digits. Ignored by WordPiece models.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub zero_digits: bool,
    /// Word-level taggers (`task = "ner"`): while training, each occurrence of a word seen
    /// once in train becomes `<unk>` with this probability (Lample et al. 2016: 0.5), so
    /// singletons keep their own vectors and `<unk>` still trains; pair with `min_freq = 1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub singleton_unk: Option<f64>,
    /// Tag scheme of `ner` data: `bio` or `iob1` (converted to BIO on reading).
    pub tag_scheme: TagSchemeName,
    /// Carve a dev split of this share of the training set when the dataset has none
    /// (stratified by label, chosen by `split_seed`); classification only.
    pub dev_from_train: Option<f64>,
    /// Seeds the carved dev split and the `labelled_per_class` draw: the same for every
    /// training seed and method, so that their comparisons are paired.
    pub split_seed: u64,
    /// Keep this many labelled training examples per class (stratified, drawn by
    /// `split_seed`) for low-resource studies; the rest is dropped, or used as unlabelled text
    /// with `rest_as_unlabelled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labelled_per_class: Option<usize>,
    /// With `labelled_per_class`: the training examples not kept become unlabelled texts
    /// (their labels are never read).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rest_as_unlabelled: bool,
}

impl Default for DataSection {
    fn default() -> Self {
        Self {
            dataset: String::new(),
            max_len: 40,
            lowercase: true,
            min_freq: 1,
            max_vocab: None,
            zero_digits: false,
            singleton_unk: None,
            tag_scheme: TagSchemeName::Bio,
            dev_from_train: None,
            split_seed: 0,
            labelled_per_class: None,
            rest_as_unlabelled: false,
        }
    }
}

/// The `[model]` section, tagged by `kind`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ModelSection {
    /// Kim's TextCNN.
    Textcnn(TextCnnSection),
    /// A BiLSTM classifier.
    Bilstm(BiLstmSection),
    /// A Transformer encoder classifier.
    Transformer(TransformerSection),
    /// A pretrained BERT-family encoder (Hugging Face checkpoint folder) with a linear head.
    Bert(BertSection),
}

impl ModelSection {
    /// The model's `kind` as written in recipes (`textcnn`, `bilstm`, ...).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::Textcnn(_) => "textcnn",
            Self::Bilstm(_) => "bilstm",
            Self::Transformer(_) => "transformer",
            Self::Bert(_) => "bert",
        }
    }
}

/// The settings of `[model]` a tagger reads ([`Recipe::tagger_options`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TaggerOptions {
    /// Dropout before the token head.
    pub dropout: f64,
    /// A CRF output layer.
    pub crf: bool,
    /// Character CNN filters (0: no character features).
    pub char_filters: usize,
    /// Dropout on the encoder's input.
    pub input_dropout: f64,
}

/// BiLSTM hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BiLstmSection {
    /// Embedding width.
    pub d_embed: usize,
    /// Hidden size of each direction.
    pub d_hidden: usize,
    /// Number of bidirectional layers.
    pub n_layers: usize,
    /// `max` or `mean` pooling over the valid positions.
    pub pooling: LstmPooling,
    /// Dropout before the output layer.
    pub dropout: f64,
    /// `task = "ner"`: a CRF output layer (transition scores, forward-algorithm loss,
    /// Viterbi decoding).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub crf: bool,
    /// `task = "ner"`: character features, a character CNN with this many filters over each
    /// word's bytes, concatenated to its word embedding (0: none).
    #[serde(skip_serializing_if = "is_zero")]
    pub char_filters: usize,
    /// `task = "ner"`: dropout on the encoder's input (word embedding and character
    /// features).
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub input_dropout: f64,
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

fn is_zero_f64(v: &f64) -> bool {
    *v == 0.0
}

impl Default for BiLstmSection {
    fn default() -> Self {
        Self {
            d_embed: 128,
            d_hidden: 128,
            n_layers: 1,
            pooling: LstmPooling::Max,
            dropout: 0.5,
            crf: false,
            char_filters: 0,
            input_dropout: 0.0,
        }
    }
}

/// Transformer encoder hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransformerSection {
    /// Model width.
    pub d_model: usize,
    /// Attention heads (must divide `d_model`).
    pub n_heads: usize,
    /// Encoder layers.
    pub n_layers: usize,
    /// Inner width of the feed-forward blocks.
    pub d_ff: usize,
    /// Dropout (embeddings, attention, residual branches, before the head).
    pub dropout: f64,
    /// `pre` or `post`: LayerNorm before each sub-layer or after the residual sum.
    pub norm: Norm,
    /// `mean` (masked mean over valid positions) or `cls` (a learned `[CLS]` vector).
    pub pooling: EncoderPooling,
    /// `relu` or `gelu` in the feed-forward blocks.
    pub activation: Activation,
    /// `task = "ner"`: a CRF output layer (as for `bilstm`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub crf: bool,
    /// `task = "ner"`: character features (as for `bilstm`; projected to `d_model` and added
    /// to the token embedding).
    #[serde(skip_serializing_if = "is_zero")]
    pub char_filters: usize,
    /// `task = "ner"`: dropout on the encoder's input (as for `bilstm`).
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub input_dropout: f64,
}

impl Default for TransformerSection {
    fn default() -> Self {
        Self {
            d_model: 128,
            n_heads: 4,
            n_layers: 2,
            d_ff: 512,
            dropout: 0.1,
            norm: Norm::Pre,
            pooling: EncoderPooling::Mean,
            activation: Activation::Relu,
            crf: false,
            char_filters: 0,
            input_dropout: 0.0,
        }
    }
}

/// Settings of a pretrained BERT-family encoder (`kind = "bert"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BertSection {
    /// The checkpoint folder (`config.json`, safetensors weights, `tokenizer.json` or
    /// `vocab.txt`): a folder name looked up like datasets (`--data-dir`, `$MIXUP_DATA_DIR`,
    /// the cache), or a path to an existing folder.
    pub pretrained: String,
    /// Dropout before the output layer (the encoder keeps its checkpoint's own dropout).
    pub dropout: f64,
    /// Classify from the checkpoint's pooler (dense + tanh on `[CLS]`) instead of the final
    /// `[CLS]` state.
    pub pooler: bool,
    /// Freeze the embeddings and the first N encoder layers (0: train everything).
    pub freeze_layers: usize,
    /// `task = "ner"`: a CRF over the words' first sub-tokens (as for `bilstm`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub crf: bool,
}

impl Default for BertSection {
    fn default() -> Self {
        Self {
            pretrained: String::new(),
            dropout: 0.1,
            pooler: false,
            freeze_layers: 0,
            crf: false,
        }
    }
}

/// TextCNN hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TextCnnSection {
    /// Embedding width.
    pub d_embed: usize,
    /// Feature maps per filter width.
    pub n_filters: usize,
    /// Filter widths.
    pub widths: Vec<usize>,
    /// Dropout before the output layer.
    pub dropout: f64,
}

impl Default for TextCnnSection {
    fn default() -> Self {
        Self {
            d_embed: 128,
            n_filters: 100,
            widths: vec![3, 4, 5],
            dropout: 0.5,
        }
    }
}

/// The `[method]` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MethodSection {
    /// `none`, `input`, `word`, `sen`, `manifold`, `tmix`, `mixup-transformer` or `ssmix`.
    pub kind: MixMethod,
    /// Beta(alpha, alpha); 0 disables mixing.
    pub alpha: f64,
    /// Probability that a batch (or row) is mixed.
    pub prob: f64,
    /// `batch`, `pair` or `elem`: one lambda per batch, pair or row.
    pub mode: LambdaMode,
    /// Use max(lambda, 1 - lambda).
    pub lambda_ge_half: bool,
    /// `permutation`, `split-halves` or `flip`.
    pub pairing: Pairing,
    /// Label smoothing of the targets.
    pub label_smoothing: f64,
    /// `soft` or `interpolated`.
    pub loss: LossForm,
    /// Mix in the first N epochs only, as timm's `mixup_off_epoch = N`: epochs 1..=N mix,
    /// later ones train clean; none = every epoch.
    pub off_epoch: Option<usize>,
    /// Also train on the clean (unmixed) batch, as in the SSMix paper's baselines (one more
    /// forward and backward per step); SSMix always does.
    pub clean_loss: bool,
    /// How the clean loss joins the mixed one: `mean` ((mixed + clean) / 2, the official
    /// SSMix code) or `sum` (mixed + clean, twice the gradient scale).
    pub clean_weighting: CleanWeighting,
    /// The eligible mixing points of `manifold` and `tmix` (indices into the model's points:
    /// 0 = embedding output, k = output of layer k, last = pooled); one is drawn uniformly per
    /// batch. None = the method's default (manifold: all; tmix: the upper layers).
    #[serde(alias = "manifold_points")]
    pub points: Option<Vec<usize>>,
    /// SSMix: the span's share of a row's non-special length (at least one token).
    pub span_share: f64,
    /// SSMix: `saliency` (the method), `random-span` or `random-tokens` (the paper's ablations
    /// without saliency, and without a contiguous span).
    pub span: SpanMode,
}

impl Default for MethodSection {
    fn default() -> Self {
        Self {
            kind: MixMethod::None,
            alpha: 1.0,
            prob: 1.0,
            mode: LambdaMode::Batch,
            lambda_ge_half: false,
            pairing: Pairing::Permutation,
            label_smoothing: 0.0,
            loss: LossForm::Soft,
            off_epoch: None,
            clean_weighting: CleanWeighting::Mean,
            clean_loss: false,
            points: None,
            span_share: 0.1,
            span: SpanMode::Saliency,
        }
    }
}

/// The `[train]` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// Passes over the training set.
    pub epochs: usize,
    /// Training batch size.
    pub batch_size: usize,
    /// Peak learning rate (the rate throughout with `schedule = "constant"` and no warm-up).
    pub lr: f64,
    /// Seed of initialisation, dropout, shuffling and mixing.
    pub seed: u64,
    /// Batch size for evaluation.
    pub eval_batch_size: usize,
    /// Adam's epsilon (PyTorch's default 1e-8; Burn's own default is 1e-5).
    pub adam_epsilon: f64,
    /// `adam` or `adamw` (decoupled weight decay, Loshchilov and Hutter 2019).
    pub optimizer: OptimizerKind,
    /// Weight decay: decoupled with `adamw`, an L2 term in the gradient with `adam` (as
    /// PyTorch's `Adam`). Never applied to one-dimensional parameters (biases, LayerNorm
    /// scales and shifts).
    pub weight_decay: f64,
    /// Share of the total steps over which the learning rate rises linearly from 0.
    pub warmup: f64,
    /// `constant` (after warm-up) or `linear` (decay to 0 at the end of training).
    pub schedule: Schedule,
    /// Clip the global L2 norm of all gradients to this value after the backward pass (as
    /// PyTorch's `clip_grad_norm_`); none = no clipping.
    pub clip_grad_norm: Option<f64>,
    /// Optimiser steps between checkpoints within an epoch (0: only at the end of each
    /// epoch). Checkpoints let `mixup train --resume` continue a killed run exactly; they are
    /// removed when the run finishes.
    pub checkpoint_every: usize,
    /// Start from a finished run's weights (its folder, relative to the working folder), as
    /// SSMix's protocol does (a plain fine-tune, then mixup from its model at a lower rate).
    /// The run's vocabulary and labels are reused, its `[model]` must equal this recipe's;
    /// the optimiser, schedule and epochs start afresh. Classification only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
    /// Which epoch's model the run keeps and reports: `last`, or `best-dev` (the highest dev
    /// accuracy; needs a dev split, or `data.dev_from_train`). Test data never chooses.
    pub select: Selection,
    /// The peak learning rate of the classifier head (its output layer), on the same
    /// schedule as `lr` (MixText's protocol: encoder 1e-5, head 1e-3); none: `lr` for all.
    /// Classification only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_lr: Option<f64>,
    /// Evaluate on dev and test after every this many epochs and after the last (1: every
    /// epoch). Saves time when evaluation costs more than training (a pretrained encoder
    /// with few labelled examples); skipped epochs report no dev or test figures and
    /// `best-dev` chooses among the evaluated ones.
    #[serde(skip_serializing_if = "is_one")]
    pub eval_every: usize,
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 64,
            lr: 1e-3,
            seed: 0,
            eval_batch_size: 256,
            adam_epsilon: 1e-8,
            optimizer: OptimizerKind::Adam,
            weight_decay: 0.0,
            warmup: 0.0,
            schedule: Schedule::Constant,
            clip_grad_norm: None,
            checkpoint_every: 500,
            init_from: None,
            select: Selection::Last,
            head_lr: None,
            eval_every: 1,
        }
    }
}

/// A TOML error on one line: `line L, column C: message` (the parser's own rendering spans
/// several lines with a source excerpt).
fn one_line_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
    match e.span() {
        Some(span) => {
            // A tagged table ([model]) reports its errors at the header: point at the line
            // holding the refused value instead.
            let start = variant_line(text, span.start, &message).unwrap_or(span.start);
            let span = start..span.end;
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            match key_at(text, span.start) {
                Some(key) => format!("line {line}, column {column} ({key}): {message}"),
                None => format!("line {line}, column {column}: {message}"),
            }
        }
        None => message,
    }
}

/// For an "unknown variant `v`" error reported at byte `at`, the byte offset of the first
/// line at or after `at`, in the same table, that sets a key to `"v"`.
fn variant_line(text: &str, at: usize, message: &str) -> Option<usize> {
    let value = message
        .split("unknown variant `")
        .nth(1)?
        .split('`')
        .next()?;
    let wanted = format!("\"{value}\"");
    let mut offset = text[..at.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    for (i, line) in text[offset..].split_inclusive('\n').enumerate() {
        let trimmed = line.trim();
        if i > 0 && trimmed.starts_with('[') {
            return None;
        }
        if let Some((key, v)) = line.split_once('=')
            && v.trim() == wanted
        {
            return Some(offset + key.len() + 1 + (v.len() - v.trim_start().len()));
        }
        offset += line.len();
    }
    None
}

/// Makes the [`RecipeError::Invalid`] of a field, its value and the reason.
type Bad<'a> = &'a dyn Fn(&str, String, &str) -> RecipeError;

/// The `section.key` whose value sits at byte `at` of recipe text (the last `[section]` header
/// above it and the key of its line), when the line is a plain `key = value`.
fn key_at(text: &str, at: usize) -> Option<String> {
    let at = at.min(text.len());
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let (key, _) = text[start..end].split_once('=')?;
    let key = key.trim();
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return None;
    }
    let section = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(['[', ']']).trim());
    Some(match section {
        Some(s) => format!("{s}.{key}"),
        None => key.to_string(),
    })
}

impl Recipe {
    /// Reads and validates a recipe file.
    ///
    /// # Errors
    ///
    /// [`RecipeError`] naming the file and the field or TOML line at fault.
    pub fn load(path: &Path) -> Result<Self, RecipeError> {
        let text = std::fs::read_to_string(path).map_err(|source| RecipeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates recipe text; `path` is only used in error messages.
    ///
    /// # Errors
    ///
    /// [`RecipeError::Parse`] or [`RecipeError::Invalid`].
    pub fn parse(text: &str, path: &Path) -> Result<Self, RecipeError> {
        let recipe: Recipe = toml::from_str(text).map_err(|e| RecipeError::Parse {
            path: path.to_path_buf(),
            message: one_line_toml_error(text, &e),
        })?;
        recipe.validate(path)?;
        Ok(recipe)
    }

    /// Checks every value's range.
    ///
    /// # Errors
    ///
    /// The first [`RecipeError::Invalid`] field.
    pub fn validate(&self, path: &Path) -> Result<(), RecipeError> {
        let bad = |field: &str, value: String, reason: &str| RecipeError::Invalid {
            path: path.to_path_buf(),
            field: field.into(),
            value,
            reason: reason.into(),
        };
        self.validate_task(&bad)?;
        self.validate_mixtext(&bad)?;
        self.validate_model(&bad)?;
        self.validate_method(&bad)?;
        self.validate_train(&bad)
    }

    /// `[mixtext]` and the low-resource data keys.
    fn validate_mixtext(&self, bad: Bad<'_>) -> Result<(), RecipeError> {
        if self.data.labelled_per_class == Some(0) {
            return Err(bad(
                "data.labelled_per_class",
                "0".into(),
                "must be at least 1",
            ));
        }
        if self.data.rest_as_unlabelled && self.data.labelled_per_class.is_none() {
            return Err(bad(
                "data.rest_as_unlabelled",
                "true".into(),
                "needs data.labelled_per_class (the rest of what?)",
            ));
        }
        if self.task == Task::Ner
            && (self.data.labelled_per_class.is_some() || self.method.kind == MixMethod::MixText)
        {
            return Err(bad(
                "data.labelled_per_class",
                format!("{:?}", self.data.labelled_per_class),
                "low-resource splits and MixText are for task = \"classify\"",
            ));
        }
        if self.mixtext.is_some() && self.method.kind != MixMethod::MixText {
            return Err(bad(
                "mixtext",
                "[mixtext]".into(),
                "is read only with method.kind = \"mixtext\"",
            ));
        }
        if let Some(h) = self.train.head_lr
            && !(h > 0.0 && h.is_finite())
        {
            return Err(bad("train.head_lr", h.to_string(), "must be above 0"));
        }
        if self.train.head_lr.is_some() && self.task == Task::Ner {
            return Err(bad(
                "train.head_lr",
                format!("{:?}", self.train.head_lr),
                "is for task = \"classify\"",
            ));
        }
        if self.method.kind == MixMethod::MixText && self.train.init_from.is_some() {
            return Err(bad(
                "train.init_from",
                format!("{:?}", self.train.init_from),
                "is not supported with method.kind = \"mixtext\" (start MixText fresh)",
            ));
        }
        let m = self.mixtext_section();
        if !(m.temperature > 0.0 && m.temperature.is_finite()) {
            return Err(bad(
                "mixtext.temperature",
                m.temperature.to_string(),
                "must be above 0",
            ));
        }
        if !(0.0..1.0).contains(&m.augment_rate) {
            return Err(bad(
                "mixtext.augment_rate",
                m.augment_rate.to_string(),
                "must be in [0, 1)",
            ));
        }
        if m.k == 0 {
            return Err(bad("mixtext.k", "0".into(), "must be at least 1"));
        }
        if !(m.lambda_u >= 0.0 && m.lambda_u.is_finite()) {
            return Err(bad(
                "mixtext.lambda_u",
                m.lambda_u.to_string(),
                "must be 0 or more",
            ));
        }
        if m.rampup_epochs.is_some_and(|r| r.is_nan() || r < 0.0) {
            return Err(bad(
                "mixtext.rampup_epochs",
                format!("{:?}", m.rampup_epochs),
                "must be 0 or more",
            ));
        }
        if m.batch_size_u == Some(0) {
            return Err(bad(
                "mixtext.batch_size_u",
                "0".into(),
                "must be at least 1",
            ));
        }
        if m.margin.is_some_and(|g| !(g > 0.0 && g <= 1.0)) {
            return Err(bad(
                "mixtext.margin",
                format!("{:?}", m.margin),
                "is a bound on the squared norm of a distribution: in (0, 1]",
            ));
        }
        Ok(())
    }

    /// `data`, `task` and `[seqmix]`.
    fn validate_task(&self, bad: Bad<'_>) -> Result<(), RecipeError> {
        if self.data.dataset.trim().is_empty() {
            return Err(bad(
                "data.dataset",
                "\"\"".into(),
                "name a dataset folder, e.g. \"trec\"",
            ));
        }
        if self.data.max_len == 0 {
            return Err(bad("data.max_len", "0".into(), "must be at least 1"));
        }
        if let Some(p) = self.data.singleton_unk {
            if !(p > 0.0 && p <= 1.0) {
                return Err(bad(
                    "data.singleton_unk",
                    p.to_string(),
                    "is a probability: must be in (0, 1] (leave it out for none)",
                ));
            }
            if self.task != Task::Ner || matches!(self.model, ModelSection::Bert(_)) {
                return Err(bad(
                    "data.singleton_unk",
                    p.to_string(),
                    "applies to word-level taggers (task = \"ner\", kind \"bilstm\" or \
                     \"transformer\")",
                ));
            }
            if self.data.min_freq >= 2 {
                return Err(bad(
                    "data.singleton_unk",
                    p.to_string(),
                    &format!(
                        "finds no words to replace with data.min_freq = {}: words seen once are \
                         <unk> already; set data.min_freq = 1",
                        self.data.min_freq
                    ),
                ));
            }
        }
        if self.task == Task::Ner {
            if matches!(self.model, ModelSection::Textcnn(_)) {
                return Err(bad(
                    "model.kind",
                    format!("{:?}", self.model.kind_name()),
                    "a ner recipe needs a tagger: \"bilstm\", \"transformer\" or \"bert\"",
                ));
            }
            if self.method.kind != MixMethod::None {
                return Err(bad(
                    "method.kind",
                    format!("{:?}", self.method.kind.name()),
                    "ner recipes train with \"none\"; SeqMix augmentation is the [seqmix] \
                     section (seqmix.train_rate in mixup train, and mixup ner-al)",
                ));
            }
        } else if self.seqmix.is_some() {
            return Err(bad(
                "seqmix",
                "(section)".into(),
                "SeqMix is for task = \"ner\" recipes",
            ));
        }
        if let Some(sm) = &self.seqmix {
            if !(sm.alpha > 0.0 && sm.alpha.is_finite()) {
                return Err(bad("seqmix.alpha", sm.alpha.to_string(), "must be above 0"));
            }
            if sm.window == 0 || sm.lm_order == 0 {
                return Err(bad(
                    "seqmix.window",
                    format!("window {}, lm_order {}", sm.window, sm.lm_order),
                    "window and lm_order must be at least 1",
                ));
            }
            if !(sm.rate >= 0.0 && sm.rate.is_finite()) {
                return Err(bad("seqmix.rate", sm.rate.to_string(), "must be 0 or more"));
            }
            if sm.top_k == Some(0) {
                return Err(bad("seqmix.top_k", "0".into(), "must be at least 1"));
            }
            if !(sm.train_rate >= 0.0 && sm.train_rate.is_finite()) {
                return Err(bad(
                    "seqmix.train_rate",
                    sm.train_rate.to_string(),
                    "must be 0 or more",
                ));
            }
            if sm.max_perplexity.is_some_and(|p| p.is_nan() || p <= 0.0) {
                return Err(bad(
                    "seqmix.max_perplexity",
                    format!("{:?}", sm.max_perplexity),
                    "must be above 0",
                ));
            }
        }
        Ok(())
    }

    /// The tagger settings of `[model]` (defaults for kinds without them).
    pub fn tagger_options(&self) -> TaggerOptions {
        match &self.model {
            ModelSection::Bilstm(m) => TaggerOptions {
                dropout: m.dropout,
                crf: m.crf,
                char_filters: m.char_filters,
                input_dropout: m.input_dropout,
            },
            ModelSection::Transformer(m) => TaggerOptions {
                dropout: m.dropout,
                crf: m.crf,
                char_filters: m.char_filters,
                input_dropout: m.input_dropout,
            },
            ModelSection::Bert(m) => TaggerOptions {
                dropout: m.dropout,
                crf: m.crf,
                char_filters: 0,
                input_dropout: 0.0,
            },
            ModelSection::Textcnn(m) => TaggerOptions {
                dropout: m.dropout,
                crf: false,
                char_filters: 0,
                input_dropout: 0.0,
            },
        }
    }

    /// `[model]`: sizes, heads, dropout.
    fn validate_model(&self, bad: Bad<'_>) -> Result<(), RecipeError> {
        let t = self.tagger_options();
        if t.crf && self.task != Task::Ner {
            return Err(bad(
                "model.crf",
                "true".into(),
                "a CRF scores tag sequences: it is for task = \"ner\" taggers",
            ));
        }
        if t.char_filters > 0 && self.task != Task::Ner {
            return Err(bad(
                "model.char_filters",
                t.char_filters.to_string(),
                "character features are for task = \"ner\" taggers",
            ));
        }
        if t.input_dropout != 0.0 && self.task != Task::Ner {
            return Err(bad(
                "model.input_dropout",
                t.input_dropout.to_string(),
                "is for task = \"ner\" taggers (classifiers: dropout)",
            ));
        }
        if !(0.0..1.0).contains(&t.input_dropout) {
            return Err(bad(
                "model.input_dropout",
                t.input_dropout.to_string(),
                "must be in [0, 1)",
            ));
        }
        let dropout = match &self.model {
            ModelSection::Textcnn(m) => {
                if m.d_embed == 0 || m.n_filters == 0 {
                    return Err(bad("model", format!("{m:?}"), "sizes must be at least 1"));
                }
                if m.widths.is_empty() || m.widths.contains(&0) {
                    return Err(bad(
                        "model.widths",
                        format!("{:?}", m.widths),
                        "need positive widths",
                    ));
                }
                m.dropout
            }
            ModelSection::Bilstm(m) => {
                if m.d_embed == 0 || m.d_hidden == 0 || m.n_layers == 0 {
                    return Err(bad("model", format!("{m:?}"), "sizes must be at least 1"));
                }
                m.dropout
            }
            ModelSection::Transformer(m) => {
                if m.d_model == 0 || m.n_heads == 0 || m.n_layers == 0 || m.d_ff == 0 {
                    return Err(bad("model", format!("{m:?}"), "sizes must be at least 1"));
                }
                if !m.d_model.is_multiple_of(m.n_heads) {
                    return Err(bad(
                        "model.n_heads",
                        m.n_heads.to_string(),
                        &format!("must divide d_model = {}", m.d_model),
                    ));
                }
                m.dropout
            }
            ModelSection::Bert(m) => {
                if m.pretrained.trim().is_empty() {
                    return Err(bad(
                        "model.pretrained",
                        "\"\"".into(),
                        "name a checkpoint folder, e.g. \"all-minilm-l6-v2\"",
                    ));
                }
                m.dropout
            }
        };
        if !(0.0..1.0).contains(&dropout) {
            return Err(bad(
                "model.dropout",
                dropout.to_string(),
                "must be in [0, 1)",
            ));
        }
        Ok(())
    }

    /// `[method]`: mixing parameters, points, spans, loss.
    fn validate_method(&self, bad: Bad<'_>) -> Result<(), RecipeError> {
        self.step_config().mixup_config(2).map_err(|e| match e {
            mixup_train::TrainError::Config { key, reason } => {
                let value = match key.as_str() {
                    "alpha" => self.method.alpha.to_string(),
                    "prob" => self.method.prob.to_string(),
                    _ => self.method.label_smoothing.to_string(),
                };
                bad(&format!("method.{key}"), value, &reason)
            }
            other => bad("method", String::new(), &other.to_string()),
        })?;
        let method = self.method.kind;
        if self.method.points.is_some()
            && !matches!(
                method,
                MixMethod::Manifold | MixMethod::Tmix | MixMethod::MixText
            )
        {
            return Err(bad(
                "method.points",
                format!("{:?}", self.method.points),
                &format!(
                    "only manifold and tmix draw from a set of points; {method} mixes at a fixed one"
                ),
            ));
        }
        if self.method.points.as_ref().is_some_and(Vec::is_empty) {
            return Err(bad("method.points", "[]".into(), "name at least one point"));
        }
        if !(self.method.span_share > 0.0 && self.method.span_share <= 1.0) {
            return Err(bad(
                "method.span_share",
                self.method.span_share.to_string(),
                "must be in (0, 1]",
            ));
        }
        if self.method.off_epoch == Some(0) {
            return Err(bad(
                "method.off_epoch",
                "0".into(),
                "it is the number of epochs that mix (at least 1); for none, use kind = \"none\"",
            ));
        }
        if self.method.kind == MixMethod::Ssmix && self.method.prob == 0.0 {
            return Err(bad(
                "method.prob",
                "0".into(),
                "ssmix would never mix; use kind = \"none\" (ssmix draws no lambda, so alpha \
                 does not apply to it)",
            ));
        }
        if self.method.loss == LossForm::Interpolated && self.method.label_smoothing != 0.0 {
            return Err(bad(
                "method.label_smoothing",
                self.method.label_smoothing.to_string(),
                "the interpolated loss uses hard labels; use loss = \"soft\" for smoothing",
            ));
        }
        Ok(())
    }

    /// `[train]`: epochs, sizes, rates, schedule, clipping.
    fn validate_train(&self, bad: Bad<'_>) -> Result<(), RecipeError> {
        let t = &self.train;
        if t.epochs == 0 {
            return Err(bad("train.epochs", "0".into(), "must be at least 1"));
        }
        if t.eval_every == 0 {
            return Err(bad(
                "train.eval_every",
                "0".into(),
                "must be at least 1 (1: evaluate after every epoch)",
            ));
        }
        if t.batch_size == 0 || t.eval_batch_size == 0 {
            return Err(bad("train.batch_size", "0".into(), "must be at least 1"));
        }
        if !(t.adam_epsilon.is_finite() && t.adam_epsilon > 0.0) {
            return Err(bad(
                "train.adam_epsilon",
                t.adam_epsilon.to_string(),
                "must be positive",
            ));
        }
        if !(t.lr.is_finite() && t.lr > 0.0) {
            return Err(bad(
                "train.lr",
                t.lr.to_string(),
                "must be a positive number",
            ));
        }
        if !(t.weight_decay.is_finite() && t.weight_decay >= 0.0) {
            return Err(bad(
                "train.weight_decay",
                t.weight_decay.to_string(),
                "must be 0 or more",
            ));
        }
        if !(0.0..1.0).contains(&t.warmup) {
            return Err(bad(
                "train.warmup",
                t.warmup.to_string(),
                "is a share of the training steps: must be in [0, 1)",
            ));
        }
        if let Some(c) = t.clip_grad_norm
            && !(c.is_finite() && c > 0.0)
        {
            return Err(bad(
                "train.clip_grad_norm",
                c.to_string(),
                "must be a positive number (leave it out for no clipping)",
            ));
        }
        if let Some(share) = self.data.dev_from_train {
            if !(share > 0.0 && share < 1.0) {
                return Err(bad(
                    "data.dev_from_train",
                    share.to_string(),
                    "is a share of the training set: must be in (0, 1)",
                ));
            }
            if self.task == Task::Ner {
                return Err(bad(
                    "data.dev_from_train",
                    share.to_string(),
                    "carves dev splits for classification; ner datasets bring their dev.txt",
                ));
            }
        }
        if let Some(dir) = &t.init_from
            && self.task == Task::Ner
        {
            return Err(bad(
                "train.init_from",
                format!("{:?}", dir.display().to_string()),
                "starts classifiers only; ner recipes cannot use it yet",
            ));
        }
        Ok(())
    }

    /// The library's step settings of this recipe (`[method]`, `data.max_len`,
    /// `train.clip_grad_norm`).
    pub fn step_config(&self) -> StepConfig {
        let m = &self.method;
        StepConfig::new()
            .with_method(m.kind)
            .with_alpha(m.alpha)
            .with_prob(m.prob)
            .with_mode(m.mode)
            .with_lambda_ge_half(m.lambda_ge_half)
            .with_pairing(m.pairing)
            .with_label_smoothing(m.label_smoothing)
            .with_loss(m.loss)
            .with_clean_loss(m.clean_loss)
            .with_clean_weighting(m.clean_weighting)
            .with_points(m.points.clone())
            .with_span(m.span)
            .with_span_share(m.span_share)
            .with_clip_grad_norm(self.train.clip_grad_norm)
            .with_max_len(self.data.max_len)
            .with_mixtext_temperature(self.mixtext_section().temperature)
            .with_mixtext_lambda_u(self.mixtext_section().lambda_u)
            .with_mixtext_rampup(
                self.mixtext_section()
                    .rampup_epochs
                    .unwrap_or(self.train.epochs as f64),
            )
            .with_mixtext_margin(self.mixtext_section().margin)
            .with_mixtext_margin_weight(self.mixtext_section().margin_weight)
    }

    /// The `[mixtext]` section, or its defaults.
    pub fn mixtext_section(&self) -> MixTextSection {
        self.mixtext.clone().unwrap_or_default()
    }

    /// The library's optimiser settings of this recipe (`[train]`).
    pub fn optim_config(&self) -> OptimConfig {
        let t = &self.train;
        OptimConfig::new()
            .with_optimizer(t.optimizer)
            .with_lr(t.lr)
            .with_adam_epsilon(t.adam_epsilon)
            .with_weight_decay(t.weight_decay)
            .with_warmup(t.warmup)
            .with_schedule(t.schedule)
            .with_head_lr(t.head_lr)
    }

    /// The library's whole run configuration of this recipe, reporting every `log_every`
    /// steps.
    pub fn train_config(&self, log_every: usize) -> TrainConfig {
        let t = &self.train;
        TrainConfig::new()
            .with_step(self.step_config())
            .with_optim(self.optim_config())
            .with_epochs(t.epochs)
            .with_batch_size(t.batch_size)
            .with_eval_batch_size(t.eval_batch_size)
            .with_seed(t.seed)
            .with_off_epoch(self.method.off_epoch)
            .with_checkpoint_every(t.checkpoint_every)
            .with_log_every(log_every)
            .with_select(t.select)
            .with_eval_every(t.eval_every)
            .with_unlabelled_batch_size(self.mixtext_section().batch_size_u.unwrap_or(0))
    }

    /// The recipe key a library config key belongs to (`alpha` is `method.alpha`, `lr` is
    /// `train.lr`), for error messages.
    pub fn key_of(key: &str) -> String {
        match key {
            "max_len" => "data.max_len".into(),
            "clip_grad_norm" | "lr" | "warmup" | "epochs" | "batch_size" | "seed"
            | "adam_epsilon" | "weight_decay" | "optimizer" | "schedule" | "select" | "head_lr"
            | "eval_every" => {
                format!("train.{key}")
            }
            "data" | "seq" | "steps" | "batch" | "vocab" => key.into(),
            _ => format!("method.{key}"),
        }
    }

    /// The recipe as TOML (the resolved form saved in a run folder).
    ///
    /// # Errors
    ///
    /// If serialisation fails (it does not for recipes that parsed).
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "name = \"t\"\n[data]\ndataset = \"trec\"\n[model]\nkind = \"textcnn\"\n";

    fn parse(s: &str) -> Result<Recipe, RecipeError> {
        Recipe::parse(s, Path::new("r.toml"))
    }

    #[test]
    fn short_recipe_gets_defaults_and_round_trips() {
        let r = parse(MIN).expect("parses");
        assert_eq!(r.data.max_len, 40);
        assert_eq!(r.train.batch_size, 64);
        assert_eq!(r.method.kind, MixMethod::None);
        let ModelSection::Textcnn(m) = &r.model else {
            panic!("textcnn")
        };
        assert_eq!(m.widths, vec![3, 4, 5]);
        let b = parse("name = \"b\"\n[data]\ndataset = \"trec\"\n[model]\nkind = \"bilstm\"\n")
            .expect("bilstm parses");
        assert_eq!(b.model, ModelSection::Bilstm(BiLstmSection::default()));
        let e = parse("name = \"b\"\n[data]\ndataset = \"trec\"\n[model]\nkind = \"bilstm\"\npooling = \"sum\"\n")
            .expect_err("bad pooling");
        assert!(e.to_string().contains("model.pooling"), "{e}");
        let back = parse(&r.to_toml().expect("toml")).expect("reparses");
        assert_eq!(back, r);
    }

    #[test]
    fn every_zoo_recipe_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("models/") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let r = Recipe::load(&path).unwrap_or_else(|e| panic!("{e}"));
                let results = r
                    .results
                    .as_ref()
                    .unwrap_or_else(|| panic!("{}: no measured [results]", path.display()));
                // Classifiers report accuracy, taggers entity F1.
                let key = if r.task == Task::Ner {
                    "test_entity_f1_mean"
                } else {
                    "test_accuracy_mean"
                };
                let acc = results
                    .get(key)
                    .and_then(toml::Value::as_float)
                    .unwrap_or_else(|| panic!("{}: [results] has no {key}", path.display()));
                assert!(
                    (0.0..=1.0).contains(&acc) && results.contains_key("seeds"),
                    "{}: [results] needs an accuracy in [0, 1] and its number of seeds",
                    path.display()
                );
                n += 1;
            }
        }
        assert!(n >= 3, "only {n} recipes in {}", dir.display());
    }

    #[test]
    fn errors_name_file_and_field() {
        let e = parse(&format!("{MIN}[train]\nepochz = 3\n")).expect_err("unknown field");
        let m = e.to_string();
        assert!(m.starts_with("r.toml:") && m.contains("epochz"), "{m}");
        let e = parse(&format!("{MIN}[method]\nkind = \"cutmix\"\n")).expect_err("bad method");
        assert!(e.to_string().contains("method.kind") && e.to_string().contains("cutmix"));
        let e = parse(&format!("{MIN}[method]\nkind = \"word\"\nalpha = -1.0\n")).expect_err("a");
        assert!(e.to_string().contains("method.alpha = -1"), "{e}");
        let e = parse(&format!("{MIN}[method]\nprob = 2.0\n")).expect_err("prob");
        assert!(e.to_string().contains("method.prob = 2"), "{e}");
        let e = parse(&format!("{MIN}[method]\nmode = \"rows\"\n")).expect_err("mode");
        assert!(e.to_string().contains("method.mode"), "{e}");
        let e = parse(&format!("{MIN}[train]\nlr = 0.0\n")).expect_err("lr");
        assert!(e.to_string().contains("train.lr"), "{e}");
        let e = parse(&format!("{MIN}[train]\neval_every = 0\n")).expect_err("eval_every");
        assert!(e.to_string().contains("train.eval_every = 0"), "{e}");
        let r = parse(&format!("{MIN}[train]\neval_every = 3\n")).expect("eval_every");
        assert_eq!(r.train_config(1).eval_every, 3);
        assert_eq!(parse(&r.to_toml().expect("toml")).expect("reparses"), r);
        assert!(
            !parse(MIN)
                .expect("min")
                .to_toml()
                .expect("toml")
                .contains("eval_every")
        );
        let e = parse("name = \"t\"\n[data]\ndataset = \"trec\"\n[model]\nkind = \"rnn\"\n")
            .expect_err("model kind");
        assert!(e.to_string().contains("rnn"), "{e}");
        let e = parse("name = 3").expect_err("type");
        assert!(e.to_string().contains("r.toml"), "{e}");
    }

    const BERT: &str = "name = \"b\"\n[data]\ndataset = \"trec\"\n[model]\nkind = \"bert\"\n";

    #[test]
    fn bert_section_and_optimiser_keys_have_defaults_and_checks() {
        let r = parse(&format!("{BERT}pretrained = \"all-minilm-l6-v2\"\n")).expect("parses");
        let ModelSection::Bert(m) = &r.model else {
            panic!("bert")
        };
        assert_eq!(m.pretrained, "all-minilm-l6-v2");
        assert_eq!((m.dropout, m.pooler, m.freeze_layers), (0.1, false, 0));
        let t = &r.train;
        assert_eq!(
            (t.optimizer, t.weight_decay, t.warmup, t.schedule),
            (OptimizerKind::Adam, 0.0, 0.0, Schedule::Constant)
        );
        assert_eq!(t.clip_grad_norm, None);
        assert_eq!(parse(&r.to_toml().expect("toml")).expect("reparses"), r);
        let e = parse(BERT).expect_err("no pretrained");
        assert!(e.to_string().contains("model.pretrained"), "{e}");
        let e = parse(&format!("{BERT}pretrained = \"x\"\ndropout = 1.0\n")).expect_err("d");
        assert!(e.to_string().contains("model.dropout"), "{e}");
        let e = parse(&format!("{BERT}pretrained = \"x\"\nfreeze = 2\n")).expect_err("key");
        assert!(e.to_string().contains("freeze"), "{e}");
        for (train, field) in [
            ("optimizer = \"sgd\"", "train.optimizer"),
            ("schedule = \"cosine\"", "train.schedule"),
            ("weight_decay = -0.1", "train.weight_decay"),
            ("warmup = 1.0", "train.warmup"),
            ("clip_grad_norm = 0.0", "train.clip_grad_norm"),
        ] {
            let e = parse(&format!("{MIN}[train]\n{train}\n")).expect_err(field);
            assert!(e.to_string().contains(field), "{e}");
        }
    }

    #[test]
    fn the_minilm_test_recipe_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/minilm-trec.toml");
        let r = Recipe::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.model.kind_name(), "bert");
        assert_eq!(r.train.optimizer, OptimizerKind::AdamW);
        assert_eq!(r.train.clip_grad_norm, Some(1.0));
    }
}
