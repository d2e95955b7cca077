//! BERT encoder (Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional Transformers
//! for Language Understanding", <https://arxiv.org/abs/1810.04805>), loadable from a Hugging
//! Face checkpoint folder (`config.json` + `model.safetensors`, or shards listed in
//! `model.safetensors.index.json`), and two heads on it: [`BertClassifier`] (sentence
//! classification, with mixing points) and [`BertTokenClassifier`] (one label per position).
//!
//! The architecture is Hugging Face's `BertModel`: word + learned position + token-type
//! embeddings, LayerNorm, dropout; then N post-LN encoder layers (multi-head self-attention
//! with a padding mask, then an exact (erf) GELU feed-forward block, each sub-layer followed by
//! dropout, a residual sum and a LayerNorm); then an optional pooler (dense + tanh on the
//! first position). Attention is written here with four plain [`Linear`]s (query, key, value,
//! output), one per checkpoint tensor pair, so that the key remap ([`HF_TO_BURN`]) stays one
//! line per tensor family.
//!
//! # Checkpoint keys
//!
//! Weights are read with burn-store's [`SafetensorsStore`] and its [`PyTorchToBurnAdapter`]
//! (which transposes Linear weights from PyTorch's `[out, in]` to Burn's `[in, out]` and maps
//! LayerNorm `weight`/`bias` to `gamma`/`beta`). Hugging Face names are renamed to this
//! module's field paths by the regex table [`HF_TO_BURN`] (one row per tensor family).
//!
//! Before anything is loaded, the safetensors headers of all shards are checked against the
//! tensors the config implies (in Hugging Face names and layouts): a missing tensor, an extra
//! one (except the `embeddings.position_ids` buffer) or a tensor of the wrong shape is a
//! [`BertLoadError`] naming the key (and both shapes). The pooler is loaded when the checkpoint
//! has `pooler.dense.*` and left out otherwise. Each shard is then applied with partial
//! loading, and the union of what the shards applied must cover every parameter.
//!
//! # Padding
//!
//! Attention fills the scores of padded keys with `-1e4` before the softmax, so their weight
//! underflows to exactly 0 in `f32`; every other operation is position-wise. Padded positions
//! therefore never change valid ones (their own outputs are meaningless). [`BertClassifier`]
//! also zeroes the embedding output at padded positions, so that nothing downstream depends on
//! the padding ids.
//!
//! The mixing points of [`BertClassifier`] are listed on its page.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fs::File,
    io::Read,
    path::{Path, PathBuf},
};

use burn::{
    module::Module,
    nn::{
        Dropout, DropoutConfig, Embedding, EmbeddingConfig, Initializer, LayerNorm,
        LayerNormConfig, Linear, LinearConfig,
    },
    store::{
        ChainAdapter, FloatCastAdapter, KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter,
        SafetensorsStore,
    },
    tensor::{Bool, Device, Int, Tensor},
};
use mixup_core::{MixState, PointKind, zero_padding};
use serde::{Deserialize, Serialize};

use crate::mixing::MixingPoints;

/// Score given to padded keys before the softmax: its weight underflows to exactly 0 in `f32`.
const MASK_FILL: f32 = -1.0e4;

/// The checkpoint tensor that is not a parameter (an index buffer) and is ignored.
const POSITION_IDS: &str = "embeddings.position_ids";

/// Hugging Face checkpoint key (regex) → Burn parameter path, applied in order:
///
/// | Hugging Face key | Burn path |
/// |---|---|
/// | `embeddings.word_embeddings.*` | `embeddings.word.*` |
/// | `embeddings.position_embeddings.*` | `embeddings.position.*` |
/// | `embeddings.token_type_embeddings.*` | `embeddings.token_type.*` |
/// | `embeddings.LayerNorm.*` | `embeddings.norm.*` |
/// | `encoder.layer.{i}.attention.self.{query,key,value}.*` | `layers.{i}.attention.{query,key,value}.*` |
/// | `encoder.layer.{i}.attention.output.dense.*` | `layers.{i}.attention.output.*` |
/// | `encoder.layer.{i}.attention.output.LayerNorm.*` | `layers.{i}.attention_norm.*` |
/// | `encoder.layer.{i}.intermediate.dense.*` | `layers.{i}.intermediate.*` |
/// | `encoder.layer.{i}.output.dense.*` | `layers.{i}.output.*` |
/// | `encoder.layer.{i}.output.LayerNorm.*` | `layers.{i}.output_norm.*` |
/// | `pooler.dense.*` | `pooler.*` |
pub const HF_TO_BURN: &[(&str, &str)] = &[
    (r"^embeddings\.word_embeddings\.", "embeddings.word."),
    (
        r"^embeddings\.position_embeddings\.",
        "embeddings.position.",
    ),
    (
        r"^embeddings\.token_type_embeddings\.",
        "embeddings.token_type.",
    ),
    (r"^embeddings\.LayerNorm\.", "embeddings.norm."),
    (
        r"^encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.",
        "layers.$1.attention.$2.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.",
        "layers.$1.attention.output.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.",
        "layers.$1.attention_norm.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.intermediate\.dense\.",
        "layers.$1.intermediate.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.output\.dense\.",
        "layers.$1.output.",
    ),
    (
        r"^encoder\.layer\.(\d+)\.output\.LayerNorm\.",
        "layers.$1.output_norm.",
    ),
    (r"^pooler\.dense\.", "pooler."),
];

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a BERT config or checkpoint could not be loaded. Every variant names the file or folder
/// and, where there is one, the field or tensor key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BertLoadError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file is malformed or lacks a required field (serde's message names the field).
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A config field has a value this encoder does not support.
    #[error("{path}: field `{field}`: {message}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// The field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The folder has neither `model.safetensors` nor `model.safetensors.index.json`.
    #[error("{dir}: no model.safetensors or model.safetensors.index.json")]
    NoCheckpoint {
        /// The folder.
        dir: PathBuf,
    },
    /// A safetensors file or the shard index is malformed or inconsistent.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A tensor the config requires is in no shard.
    #[error(
        "{dir}: missing tensor `{key}` (expected shape {expected:?}); {count} tensor(s) missing in all"
    )]
    MissingTensor {
        /// The checkpoint folder.
        dir: PathBuf,
        /// The Hugging Face key.
        key: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// How many tensors are missing.
        count: usize,
    },
    /// A tensor that the model has no parameter for.
    #[error("{path}: unexpected tensor `{key}` with shape {shape:?} (not a BertModel parameter)")]
    UnexpectedTensor {
        /// The shard holding it.
        path: PathBuf,
        /// The key.
        key: String,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// A tensor whose shape disagrees with the config.
    #[error("{path}: tensor `{key}` has shape {found:?}, the config implies {expected:?}")]
    ShapeMismatch {
        /// The shard holding it.
        path: PathBuf,
        /// The key.
        key: String,
        /// The shape the config implies (Hugging Face layout, Linear weights `[out, in]`).
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor that is not floating point.
    #[error(
        "{path}: tensor `{key}` has dtype {dtype}, expected a float dtype (F32, F16, BF16, F64)"
    )]
    DType {
        /// The shard holding it.
        path: PathBuf,
        /// The key.
        key: String,
        /// Its dtype as written in the header.
        dtype: String,
    },
    /// burn-store could not read or apply a shard.
    #[error("{path}: {message}")]
    Store {
        /// The shard.
        path: PathBuf,
        /// burn-store's message (tensor keys in Hugging Face names where known).
        message: String,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> BertLoadError + '_ {
    move |source| BertLoadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

/// The fields of a Hugging Face BERT `config.json` that the encoder uses (others are ignored).
///
/// Build one by hand with [`BertConfig::new`] (the usual BERT defaults for the rest) or read
/// one with [`BertConfig::from_json_file`]; [`BertConfig::init`] makes a freshly initialised
/// encoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    /// Rows of the word embedding table.
    pub vocab_size: usize,
    /// Model width `d`.
    pub hidden_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads (must divide `hidden_size`).
    pub num_attention_heads: usize,
    /// Inner width of the feed-forward blocks.
    pub intermediate_size: usize,
    /// Rows of the position table (longest sequence).
    pub max_position_embeddings: usize,
    /// Rows of the token-type table.
    pub type_vocab_size: usize,
    /// Epsilon of every LayerNorm.
    pub layer_norm_eps: f64,
    /// Dropout on the embeddings and on each residual branch.
    pub hidden_dropout_prob: f64,
    /// Dropout on the attention weights.
    pub attention_probs_dropout_prob: f64,
    /// Feed-forward activation; only `"gelu"` (exact, erf-based) is supported.
    pub hidden_act: String,
    /// Position embedding kind; only `"absolute"` (the default when absent) is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_embedding_type: Option<String>,
}

/// One tensor a checkpoint must hold: its Hugging Face key and shape (PyTorch layout).
#[derive(Clone, Debug, PartialEq, Eq)]
struct TensorSpec {
    key: String,
    shape: Vec<usize>,
}

impl BertConfig {
    /// A config with the given sizes and BERT's defaults for the rest: 512 positions, 2 token
    /// types, LayerNorm epsilon 1e-12, dropout 0.1, exact GELU.
    pub fn new(
        vocab_size: usize,
        hidden_size: usize,
        num_hidden_layers: usize,
        num_attention_heads: usize,
        intermediate_size: usize,
    ) -> Self {
        Self {
            vocab_size,
            hidden_size,
            num_hidden_layers,
            num_attention_heads,
            intermediate_size,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            hidden_act: "gelu".into(),
            position_embedding_type: None,
        }
    }

    /// Reads a Hugging Face `config.json` and checks it.
    ///
    /// # Errors
    ///
    /// [`BertLoadError::Io`] if the file cannot be read, [`BertLoadError::Json`] if it is not
    /// valid JSON or a required field is missing or mistyped, [`BertLoadError::Config`] if a
    /// value is unsupported (zero sizes, heads not dividing the width, an activation other
    /// than `gelu`, ...). Each names the file and the field.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self, BertLoadError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(io_error(path))?;
        let config: Self = serde_json::from_str(&text).map_err(|source| BertLoadError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        config
            .check()
            .map_err(|(field, message)| BertLoadError::Config {
                path: path.to_path_buf(),
                field: field.into(),
                message,
            })?;
        Ok(config)
    }

    /// The first unsupported value, as (field, message).
    fn check(&self) -> Result<(), (&'static str, String)> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err((field, "must be at least 1".into()));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err((
                "num_attention_heads",
                format!(
                    "{} does not divide hidden_size = {}",
                    self.num_attention_heads, self.hidden_size
                ),
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err((
                "layer_norm_eps",
                format!("must be positive, got {}", self.layer_norm_eps),
            ));
        }
        for (field, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            (
                "attention_probs_dropout_prob",
                self.attention_probs_dropout_prob,
            ),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err((field, format!("must be in [0, 1), got {p}")));
            }
        }
        if self.hidden_act != "gelu" {
            return Err((
                "hidden_act",
                format!(
                    "{:?} is not supported (only \"gelu\", the exact erf GELU)",
                    self.hidden_act
                ),
            ));
        }
        if let Some(kind) = &self.position_embedding_type
            && kind != "absolute"
        {
            return Err((
                "position_embedding_type",
                format!("{kind:?} is not supported (only \"absolute\")"),
            ));
        }
        Ok(())
    }

    /// Builds an encoder (with a pooler) with freshly initialised parameters: normal(0, 0.02)
    /// weights and embeddings, as BERT's initialiser, unit LayerNorms.
    ///
    /// # Panics
    ///
    /// If the config is invalid (see [`BertConfig::from_json_file`] for what is checked).
    pub fn init(&self, device: &Device) -> BertEncoder {
        if let Err((field, message)) = self.check() {
            panic!("BertConfig: field `{field}`: {message}");
        }
        let d = self.hidden_size;
        let small = Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        let linear = |i: usize, o: usize| {
            LinearConfig::new(i, o)
                .with_initializer(small.clone())
                .init(device)
        };
        let embedding = |rows: usize| {
            EmbeddingConfig::new(rows, d)
                .with_initializer(small.clone())
                .init(device)
        };
        let norm = || {
            LayerNormConfig::new(d)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        let dropout = || DropoutConfig::new(self.hidden_dropout_prob).init();
        let layers = (0..self.num_hidden_layers)
            .map(|_| BertLayer {
                attention: BertSelfAttention {
                    query: linear(d, d),
                    key: linear(d, d),
                    value: linear(d, d),
                    output: linear(d, d),
                    n_heads: self.num_attention_heads,
                    dropout: DropoutConfig::new(self.attention_probs_dropout_prob).init(),
                },
                attention_norm: norm(),
                intermediate: linear(d, self.intermediate_size),
                output: linear(self.intermediate_size, d),
                output_norm: norm(),
                norm_eps: self.layer_norm_eps,
                dropout: dropout(),
            })
            .collect();
        BertEncoder {
            embeddings: BertEmbeddings {
                word: embedding(self.vocab_size),
                position: embedding(self.max_position_embeddings),
                token_type: embedding(self.type_vocab_size),
                norm: norm(),
                norm_eps: self.layer_norm_eps,
                dropout: dropout(),
            },
            layers,
            pooler: Some(linear(d, d)),
        }
    }

    /// The tensors a checkpoint for this config holds, in Hugging Face names and layout.
    fn tensor_specs(&self, pooler: bool) -> Vec<TensorSpec> {
        let d = self.hidden_size;
        let mut specs = Vec::new();
        let mut push = |key: String, shape: &[usize]| {
            specs.push(TensorSpec {
                key,
                shape: shape.to_vec(),
            })
        };
        push(
            "embeddings.word_embeddings.weight".into(),
            &[self.vocab_size, d],
        );
        push(
            "embeddings.position_embeddings.weight".into(),
            &[self.max_position_embeddings, d],
        );
        push(
            "embeddings.token_type_embeddings.weight".into(),
            &[self.type_vocab_size, d],
        );
        push("embeddings.LayerNorm.weight".into(), &[d]);
        push("embeddings.LayerNorm.bias".into(), &[d]);
        let f = self.intermediate_size;
        for i in 0..self.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            for name in ["query", "key", "value"] {
                push(format!("{p}.attention.self.{name}.weight"), &[d, d]);
                push(format!("{p}.attention.self.{name}.bias"), &[d]);
            }
            push(format!("{p}.attention.output.dense.weight"), &[d, d]);
            push(format!("{p}.attention.output.dense.bias"), &[d]);
            push(format!("{p}.attention.output.LayerNorm.weight"), &[d]);
            push(format!("{p}.attention.output.LayerNorm.bias"), &[d]);
            push(format!("{p}.intermediate.dense.weight"), &[f, d]);
            push(format!("{p}.intermediate.dense.bias"), &[f]);
            push(format!("{p}.output.dense.weight"), &[d, f]);
            push(format!("{p}.output.dense.bias"), &[d]);
            push(format!("{p}.output.LayerNorm.weight"), &[d]);
            push(format!("{p}.output.LayerNorm.bias"), &[d]);
        }
        if pooler {
            push("pooler.dense.weight".into(), &[d, d]);
            push("pooler.dense.bias".into(), &[d]);
        }
        specs
    }
}

// ---------------------------------------------------------------------------------------------
// Modules
// ---------------------------------------------------------------------------------------------

/// Word + position + token-type embeddings, LayerNorm, dropout.
#[derive(Module, Debug)]
pub struct BertEmbeddings {
    /// Word (WordPiece) embeddings `[vocab, d]`.
    pub word: Embedding,
    /// Learned absolute position embeddings `[max_positions, d]`.
    pub position: Embedding,
    /// Token-type (segment) embeddings `[type_vocab, d]`.
    pub token_type: Embedding,
    /// LayerNorm of the sum.
    pub norm: LayerNorm,
    /// The norm's epsilon (`layer_norm_eps`; Burn keeps a LayerNorm's own private), for the
    /// fused LayerNorm of `mixup-kernels`. Not saved in records: it comes from the config.
    pub norm_eps: f64,
    /// Dropout after the norm.
    pub dropout: Dropout,
}

impl BertEmbeddings {
    /// Embeds `ids` (token types 0 when `token_types` is `None`).
    ///
    /// # Shapes
    ///
    /// - `ids`, `token_types`: `[n, L]`; returns `[n, L, d]`
    ///
    /// # Panics
    ///
    /// If `L` exceeds the position table.
    pub fn forward(&self, ids: Tensor<2, Int>, token_types: Option<Tensor<2, Int>>) -> Tensor<3> {
        let [n, l] = ids.dims();
        let [table, d] = self.position.weight.dims();
        assert!(
            l <= table,
            "BertEncoder: a sequence of {l} positions exceeds the position table ({table}); \
             cut the input to max_position_embeddings"
        );
        let types = token_types.unwrap_or_else(|| Tensor::zeros([n, l], &ids.device()));
        let positions = self
            .position
            .weight
            .val()
            .narrow(0, 0, l)
            .reshape([1, l, d])
            .expand([n, l, d]);
        let hidden = self.word.forward(ids) + positions + self.token_type.forward(types);
        mixup_kernels::dropout(
            &self.dropout,
            mixup_kernels::layer_norm(&self.norm, hidden, self.norm_eps),
        )
    }
}

/// Multi-head self-attention with query/key/value/output projections as separate [`Linear`]s
/// (the layout of BERT checkpoints).
#[derive(Module, Debug)]
pub struct BertSelfAttention {
    /// Query projection.
    pub query: Linear,
    /// Key projection.
    pub key: Linear,
    /// Value projection.
    pub value: Linear,
    /// Output projection (`attention.output.dense` in BERT checkpoints).
    pub output: Linear,
    /// Number of heads.
    pub n_heads: usize,
    /// Dropout on the attention weights.
    pub dropout: Dropout,
}

impl BertSelfAttention {
    /// Attends over the sequence; `padding` (true at padded positions) masks keys.
    ///
    /// # Shapes
    ///
    /// - `x`: `[n, L, d]`, `padding`: `[n, L]`; returns `[n, L, d]` (before the output
    ///   projection's residual sum)
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let [n, l, d] = x.dims();
        let h = self.n_heads;
        let dh = d / h;
        let heads = |t: Tensor<3>| t.reshape([n, l, h, dh]).swap_dims(1, 2); // [n, h, L, dh]
        let q = heads(self.query.forward(x.clone()));
        let k = heads(self.key.forward(x.clone()));
        let v = heads(self.value.forward(x));
        let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((dh as f64).sqrt()); // [n, h, L, L]
        let pad = padding.reshape([n, 1, 1, l]).expand([n, h, l, l]);
        let weights = mixup_kernels::dropout(
            &self.dropout,
            mixup_kernels::softmax(scores.mask_fill(pad, MASK_FILL)),
        );
        let context = weights.matmul(v).swap_dims(1, 2).reshape([n, l, d]);
        self.output.forward(context)
    }
}

/// One post-LN encoder layer: `LN(x + attn(x))`, then `LN(h + W2 gelu(W1 h))`.
#[derive(Module, Debug)]
pub struct BertLayer {
    /// Self-attention (including its output projection).
    pub attention: BertSelfAttention,
    /// LayerNorm after the attention residual sum.
    pub attention_norm: LayerNorm,
    /// First feed-forward projection (`intermediate.dense`).
    pub intermediate: Linear,
    /// Second feed-forward projection (`output.dense`).
    pub output: Linear,
    /// LayerNorm after the feed-forward residual sum.
    pub output_norm: LayerNorm,
    /// Both norms' epsilon (`layer_norm_eps`), for the fused LayerNorm of `mixup-kernels`.
    pub norm_eps: f64,
    /// Dropout on both residual branches.
    pub dropout: Dropout,
}

impl BertLayer {
    /// Runs the layer; `padding` is true at padded positions.
    ///
    /// # Shapes
    ///
    /// - `x`: `[n, L, d]`, `padding`: `[n, L]`; returns `[n, L, d]`
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let a = mixup_kernels::dropout(&self.dropout, self.attention.forward(x.clone(), padding));
        let x = mixup_kernels::layer_norm(&self.attention_norm, x + a, self.norm_eps);
        let f = self
            .output
            .forward(mixup_kernels::gelu(self.intermediate.forward(x.clone())));
        mixup_kernels::layer_norm(
            &self.output_norm,
            x + mixup_kernels::dropout(&self.dropout, f),
            self.norm_eps,
        )
    }
}

/// A BERT encoder (Hugging Face `BertModel`). Build it with [`BertConfig::init`] or
/// [`BertEncoder::from_pretrained`].
#[derive(Module, Debug)]
pub struct BertEncoder {
    /// The embedding block.
    pub embeddings: BertEmbeddings,
    /// The encoder layers.
    pub layers: Vec<BertLayer>,
    /// The pooler's dense layer (tanh follows), if the model has one.
    pub pooler: Option<Linear>,
}

impl BertEncoder {
    /// Loads `dir/config.json` and the weights in `dir` (`model.safetensors`, or the shards
    /// listed in `model.safetensors.index.json`). The pooler is loaded when the checkpoint
    /// holds `pooler.dense.*`, and is `None` otherwise.
    ///
    /// # Errors
    ///
    /// A [`BertLoadError`] naming the file (and field or tensor key): unreadable or invalid
    /// config, no checkpoint, malformed safetensors or index, a missing, extra or mis-shaped
    /// tensor, a non-float tensor, or a burn-store failure.
    pub fn from_pretrained(
        dir: &Path,
        device: &Device,
    ) -> Result<(BertEncoder, BertConfig), BertLoadError> {
        let config = BertConfig::from_json_file(dir.join("config.json"))?;
        let (shards, found) = checkpoint_files(dir)?;
        let pooler =
            found.contains_key("pooler.dense.weight") || found.contains_key("pooler.dense.bias");
        let specs = config.tensor_specs(pooler);
        check_tensors(dir, &specs, &found)?;

        let mut encoder = config.init(device);
        if !pooler {
            encoder.pooler = None;
        }
        let remap = remapper();
        let burn_to_hf: HashMap<String, String> = specs
            .iter()
            .map(|s| (burn_path(&remap, &s.key), s.key.clone()))
            .collect();
        let hf_name = |path: &str| burn_to_hf.get(path).cloned().unwrap_or_else(|| path.into());
        let float: burn::tensor::DType = device.settings().float_dtype.into();
        let mut applied: HashSet<String> = HashSet::new();
        let mut all_params: HashSet<String> = HashSet::new();
        for shard in &shards {
            let mut store = SafetensorsStore::from_file(shard)
                .with_from_adapter(ChainAdapter::new(
                    PyTorchToBurnAdapter,
                    FloatCastAdapter::to(float),
                ))
                .remap(remap.clone())
                .allow_partial(true)
                .validate(false);
            let result = encoder
                .load_from(&mut store)
                .map_err(|e| BertLoadError::Store {
                    path: shard.clone(),
                    message: e.to_string(),
                })?;
            if let Some(error) = result.errors.first() {
                let message = match error {
                    burn::store::ApplyError::ShapeMismatch {
                        path,
                        expected,
                        found,
                    } => format!(
                        "tensor `{}`: shape {:?} (Burn layout) does not fit the parameter's {:?}",
                        hf_name(path),
                        found.as_slice(),
                        expected.as_slice()
                    ),
                    other => format!("{other}"),
                };
                return Err(BertLoadError::Store {
                    path: shard.clone(),
                    message,
                });
            }
            if let Some(key) = result.unused.iter().find(|k| k.as_str() != POSITION_IDS) {
                return Err(BertLoadError::Store {
                    path: shard.clone(),
                    message: format!("tensor `{key}` matches no parameter after the key remap"),
                });
            }
            all_params.extend(result.applied.iter().cloned());
            all_params.extend(result.missing.iter().map(|(p, _)| p.clone()));
            applied.extend(result.applied);
        }
        let mut missing: Vec<&String> = all_params.difference(&applied).collect();
        missing.sort();
        if let Some(first) = missing.first() {
            return Err(BertLoadError::Store {
                path: dir.to_path_buf(),
                message: format!(
                    "no shard supplied parameter `{first}` (checkpoint key `{}`); {} in all",
                    hf_name(first),
                    missing.len()
                ),
            });
        }
        Ok((encoder, config))
    }

    /// Drops the pooler (for checkpoints used without one).
    pub fn without_pooler(mut self) -> Self {
        self.pooler = None;
        self
    }

    /// Model width `d`.
    pub fn hidden_size(&self) -> usize {
        self.embeddings.word.weight.dims()[1]
    }

    /// The embedding output with padded positions zeroed (`mask` true at real tokens).
    ///
    /// # Shapes
    ///
    /// - `ids`, `mask`, `token_types`: `[n, L]`; returns `[n, L, d]`
    pub fn embed(
        &self,
        ids: Tensor<2, Int>,
        mask: Tensor<2, Bool>,
        token_types: Option<Tensor<2, Int>>,
    ) -> Tensor<3> {
        zero_padding(self.embeddings.forward(ids, token_types), mask)
    }

    /// The last hidden state `[n, L, d]` (`mask` true at real tokens; token types 0 when
    /// `None`). Values at padded positions are meaningless.
    ///
    /// # Panics
    ///
    /// If `L` exceeds `max_position_embeddings`.
    pub fn forward(
        &self,
        ids: Tensor<2, Int>,
        mask: Tensor<2, Bool>,
        token_types: Option<Tensor<2, Int>>,
    ) -> Tensor<3> {
        let mut hidden = self.embed(ids, mask.clone(), token_types);
        let padding = mask.bool_not();
        for layer in &self.layers {
            hidden = layer.forward(hidden, padding.clone());
        }
        hidden
    }

    /// The pooler on the first position (`tanh(W h_[CLS] + b)`), `[n, d]`; `None` if the
    /// encoder has no pooler.
    pub fn pool(&self, hidden: Tensor<3>) -> Option<Tensor<2>> {
        self.pooler
            .as_ref()
            .map(|dense| dense.forward(first_position(hidden)).tanh())
    }

    /// The pooler output `[n, d]` of a forward pass; `None` if the encoder has no pooler.
    pub fn pooled(
        &self,
        ids: Tensor<2, Int>,
        mask: Tensor<2, Bool>,
        token_types: Option<Tensor<2, Int>>,
    ) -> Option<Tensor<2>> {
        self.pooler.as_ref()?;
        self.pool(self.forward(ids, mask, token_types))
    }
}

/// `hidden[:, 0, :]`.
fn first_position(hidden: Tensor<3>) -> Tensor<2> {
    let [n, _, d] = hidden.dims();
    hidden.slice([0..n, 0..1]).reshape([n, d])
}

// ---------------------------------------------------------------------------------------------
// Heads
// ---------------------------------------------------------------------------------------------

/// Sentence classifier: BERT encoder → `[CLS]` final state (through the pooler if
/// `use_pooler`) → dropout → linear.
///
/// Mixing points ([`MixingPoints`]), for N encoder layers (point k is the output of the k-th
/// layer counted from 1):
///
/// | point | kind | state |
/// |---|---|---|
/// | 0 | embedding output (after LayerNorm and dropout) | `[n, L, d]`, padding zeroed |
/// | k = 1 ..= N | output of layer k | `[n, L, d]` |
/// | N + 1 | sentence vector: final state at `[CLS]` (position 0), through the pooler if `use_pooler` | `[n, d]` |
#[derive(Module, Debug)]
pub struct BertClassifier {
    /// The encoder.
    pub encoder: BertEncoder,
    /// Dropout before the output layer.
    pub dropout: Dropout,
    /// Output layer `[d, classes]`.
    pub head: Linear,
    /// Pass the `[CLS]` state through the encoder's pooler (ignored without one).
    pub use_pooler: bool,
    /// The `[SEP]` id, when rows may be text pairs: token type 1 from the first `[SEP]` on
    /// (`[CLS] a [SEP]` are type 0, `b [SEP]` type 1), as BERT was pre-trained. `None`: every
    /// token is type 0. Single-text rows get type 0 either way.
    pub segment_sep: Option<usize>,
}

/// BERT's token types of rows `[CLS] a [SEP] b [SEP]`: 1 after the first `sep` (padding 0).
///
/// # Shapes
///
/// - `ids`, `mask`: `[n, L]`; returns `[n, L]`
pub fn pair_token_types(
    ids: &Tensor<2, Int>,
    mask: &Tensor<2, Bool>,
    sep: usize,
) -> Tensor<2, Int> {
    let is_sep = ids.clone().equal_elem(sep as i64).int();
    let before = is_sep.clone().cumsum(1) - is_sep;
    before.greater_equal_elem(1).bool_and(mask.clone()).int()
}

impl BertClassifier {
    /// A classifier on `encoder` with a fresh output layer; `use_pooler` is on when the
    /// encoder has a pooler (as in Hugging Face's `BertForSequenceClassification`).
    pub fn new(encoder: BertEncoder, num_classes: usize, dropout: f64, device: &Device) -> Self {
        let d = encoder.hidden_size();
        let use_pooler = encoder.pooler.is_some();
        Self {
            encoder,
            dropout: DropoutConfig::new(dropout).init(),
            head: LinearConfig::new(d, num_classes)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: 0.02,
                })
                .init(device),
            use_pooler,
            segment_sep: None,
        }
    }

    /// Sets the `[SEP]` id that starts the second text of a pair (token type 1).
    pub fn with_segments(mut self, sep_id: u32) -> Self {
        self.segment_sep = Some(sep_id as usize);
        self
    }

    /// Sets whether the sentence vector goes through the pooler.
    pub fn with_pooler(mut self, use_pooler: bool) -> Self {
        self.use_pooler = use_pooler;
        self
    }

    fn sentence_vector(&self, hidden: Tensor<3>) -> Tensor<2> {
        let cls = first_position(hidden);
        match (&self.encoder.pooler, self.use_pooler) {
            (Some(dense), true) => dense.forward(cls).tanh(),
            _ => cls,
        }
    }
}

impl MixingPoints for BertClassifier {
    fn points(&self) -> Vec<PointKind> {
        let mut points = vec![PointKind::Embedding];
        points.extend((0..self.encoder.layers.len()).map(PointKind::Layer));
        points.push(PointKind::Pooled);
        points
    }

    /// # Panics
    ///
    /// If the sequence is longer than the position table.
    fn embed(&self, ids: Tensor<2, Int>, mask: Tensor<2, Bool>) -> MixState {
        let types = self
            .segment_sep
            .map(|sep| pair_token_types(&ids, &mask, sep));
        let hidden = self.encoder.embed(ids, mask.clone(), types);
        MixState::Sequence { hidden, mask }
    }

    fn advance(&self, state: MixState, point: usize) -> MixState {
        let n_layers = self.encoder.layers.len();
        match state {
            MixState::Sequence { hidden, mask } if point < n_layers => {
                let hidden = self.encoder.layers[point].forward(hidden, mask.clone().bool_not());
                MixState::Sequence { hidden, mask }
            }
            MixState::Sequence { hidden, .. } if point == n_layers => {
                MixState::Pooled(self.sentence_vector(hidden))
            }
            _ => panic!(
                "BertClassifier has no step from point {point} (points are 0..={})",
                n_layers + 1
            ),
        }
    }

    fn head_params(&self) -> Vec<burn::module::ParamId> {
        crate::mixing::linear_params(&self.head)
    }

    fn head(&self, pooled: Tensor<2>) -> Tensor<2> {
        self.head
            .forward(mixup_kernels::dropout(&self.dropout, pooled))
    }
}

/// Token classifier (e.g. NER): BERT encoder → dropout → linear at every position.
#[derive(Module, Debug)]
pub struct BertTokenClassifier {
    /// The encoder.
    pub encoder: BertEncoder,
    /// Dropout before the output layer.
    pub dropout: Dropout,
    /// Output layer `[d, classes]`.
    pub head: Linear,
}

impl BertTokenClassifier {
    /// A token classifier on `encoder` with a fresh output layer.
    pub fn new(encoder: BertEncoder, num_classes: usize, dropout: f64, device: &Device) -> Self {
        let d = encoder.hidden_size();
        Self {
            encoder,
            dropout: DropoutConfig::new(dropout).init(),
            head: LinearConfig::new(d, num_classes)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: 0.02,
                })
                .init(device),
        }
    }

    /// Logits `[n, L, classes]` (meaningless at padded positions).
    ///
    /// # Panics
    ///
    /// If `L` exceeds `max_position_embeddings`.
    pub fn forward(
        &self,
        ids: Tensor<2, Int>,
        mask: Tensor<2, Bool>,
        token_types: Option<Tensor<2, Int>>,
    ) -> Tensor<3> {
        let hidden = self.encoder.forward(ids, mask, token_types);
        self.head
            .forward(mixup_kernels::dropout(&self.dropout, hidden))
    }
}

// ---------------------------------------------------------------------------------------------
// Checkpoint files
// ---------------------------------------------------------------------------------------------

/// The key remapper built from [`HF_TO_BURN`].
fn remapper() -> KeyRemapper {
    KeyRemapper::from_patterns(HF_TO_BURN.to_vec()).expect("the remap table's regexes are valid")
}

/// The Burn path a Hugging Face key is loaded into (the remapper's own rule: every matching
/// pattern in order).
fn burn_path(remap: &KeyRemapper, key: &str) -> String {
    let mut path = key.to_string();
    for (pattern, replacement) in remap.to_regex_pairs() {
        if pattern.is_match(&path) {
            path = pattern
                .replace_all(&path, replacement.as_str())
                .into_owned();
        }
    }
    path
}

#[derive(Deserialize)]
struct ShardIndex {
    weight_map: BTreeMap<String, String>,
}

/// The safetensors files of a checkpoint folder and the tensors their headers describe. A
/// sharded checkpoint's index must agree with the shards.
#[allow(clippy::type_complexity)]
fn checkpoint_files(
    dir: &Path,
) -> Result<(Vec<PathBuf>, BTreeMap<String, HeaderEntry>), BertLoadError> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        let headers = read_headers(std::slice::from_ref(&single))?;
        return Ok((vec![single], headers));
    }
    let index_path = dir.join("model.safetensors.index.json");
    if !index_path.is_file() {
        return Err(BertLoadError::NoCheckpoint {
            dir: dir.to_path_buf(),
        });
    }
    let text = std::fs::read_to_string(&index_path).map_err(io_error(&index_path))?;
    let index: ShardIndex = serde_json::from_str(&text).map_err(|source| BertLoadError::Json {
        path: index_path.clone(),
        source,
    })?;
    let mut files: Vec<&String> = index.weight_map.values().collect();
    files.sort();
    files.dedup();
    if files.is_empty() {
        return Err(BertLoadError::Format {
            path: index_path,
            message: "weight_map is empty".into(),
        });
    }
    let mut shards = Vec::new();
    for file in files {
        let name = Path::new(file);
        if name.components().count() != 1 || name.is_absolute() {
            return Err(BertLoadError::Format {
                path: index_path,
                message: format!("shard {file:?} is not a plain file name in the folder"),
            });
        }
        shards.push(dir.join(name));
    }
    // Every key the index lists must be in the shard it names.
    let headers = read_headers(&shards)?;
    for (key, file) in &index.weight_map {
        let want = dir.join(file);
        match headers.get(key) {
            Some(entry) if entry.shard == want => {}
            Some(entry) => {
                return Err(BertLoadError::Format {
                    path: index_path,
                    message: format!(
                        "lists `{key}` in {file}, but it is in {}",
                        entry.shard.display()
                    ),
                });
            }
            None => {
                return Err(BertLoadError::Format {
                    path: index_path,
                    message: format!("lists `{key}` in {file}, but that shard does not hold it"),
                });
            }
        }
    }
    Ok((shards, headers))
}

/// A tensor as a safetensors header describes it.
#[derive(Clone, Debug)]
struct HeaderEntry {
    shard: PathBuf,
    dtype: String,
    shape: Vec<usize>,
}

#[derive(Deserialize)]
struct RawEntry {
    dtype: String,
    shape: Vec<usize>,
}

/// Largest header accepted (the safetensors format's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// The tensors of one safetensors file, read from its JSON header only.
fn read_header(path: &Path) -> Result<BTreeMap<String, RawEntry>, BertLoadError> {
    let format = |message: String| BertLoadError::Format {
        path: path.to_path_buf(),
        message,
    };
    let mut file = File::open(path).map_err(io_error(path))?;
    let file_len = file.metadata().map_err(io_error(path))?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| format("shorter than a safetensors header".into()))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER_BYTES || n + 8 > file_len {
        return Err(format(format!(
            "header length {n} does not fit the file ({file_len} bytes): not a safetensors file"
        )));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(io_error(path))?;
    let mut raw: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| format(format!("malformed safetensors header: {e}")))?;
    raw.remove("__metadata__");
    raw.into_iter()
        .map(|(key, value)| {
            serde_json::from_value::<RawEntry>(value)
                .map(|entry| (key.clone(), entry))
                .map_err(|e| format(format!("header entry `{key}`: {e}")))
        })
        .collect()
}

/// The tensors of all shards by key; a key in two shards is an error.
fn read_headers(shards: &[PathBuf]) -> Result<BTreeMap<String, HeaderEntry>, BertLoadError> {
    let mut found: BTreeMap<String, HeaderEntry> = BTreeMap::new();
    for shard in shards {
        for (key, raw) in read_header(shard)? {
            if let Some(other) = found.get(&key) {
                return Err(BertLoadError::Format {
                    path: shard.clone(),
                    message: format!("tensor `{key}` is also in {}", other.shard.display()),
                });
            }
            found.insert(
                key,
                HeaderEntry {
                    shard: shard.clone(),
                    dtype: raw.dtype,
                    shape: raw.shape,
                },
            );
        }
    }
    Ok(found)
}

/// Compares the checkpoint's tensors with what the config implies: shapes and dtypes first,
/// then missing tensors, then extra ones.
fn check_tensors(
    dir: &Path,
    specs: &[TensorSpec],
    found: &BTreeMap<String, HeaderEntry>,
) -> Result<(), BertLoadError> {
    for spec in specs {
        if let Some(entry) = found.get(&spec.key) {
            if entry.shape != spec.shape {
                return Err(BertLoadError::ShapeMismatch {
                    path: entry.shard.clone(),
                    key: spec.key.clone(),
                    expected: spec.shape.clone(),
                    found: entry.shape.clone(),
                });
            }
            if !matches!(entry.dtype.as_str(), "F32" | "F16" | "BF16" | "F64") {
                return Err(BertLoadError::DType {
                    path: entry.shard.clone(),
                    key: spec.key.clone(),
                    dtype: entry.dtype.clone(),
                });
            }
        }
    }
    let missing: Vec<&TensorSpec> = specs
        .iter()
        .filter(|s| !found.contains_key(&s.key))
        .collect();
    if let Some(first) = missing.first() {
        return Err(BertLoadError::MissingTensor {
            dir: dir.to_path_buf(),
            key: first.key.clone(),
            expected: first.shape.clone(),
            count: missing.len(),
        });
    }
    let expected: HashSet<&str> = specs.iter().map(|s| s.key.as_str()).collect();
    if let Some((key, entry)) = found
        .iter()
        .find(|(k, _)| k.as_str() != POSITION_IDS && !expected.contains(k.as_str()))
    {
        return Err(BertLoadError::UnexpectedTensor {
            path: entry.shard.clone(),
            key: key.clone(),
            shape: entry.shape.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use burn::tensor::TensorData;
    use safetensors::{Dtype, tensor::TensorView};
    use serde_json::Value;

    use super::*;
    use crate::testing::{check_mixing_points, toy_batch};

    fn tiny_config() -> BertConfig {
        BertConfig {
            max_position_embeddings: 8,
            hidden_dropout_prob: 0.0,
            attention_probs_dropout_prob: 0.0,
            ..BertConfig::new(12, 8, 2, 2, 16)
        }
    }

    fn classifier(device: &Device, use_pooler: bool) -> BertClassifier {
        device.seed(0);
        let encoder = tiny_config().init(device);
        BertClassifier::new(encoder, 4, 0.0, device).with_pooler(use_pooler)
    }

    // ---- model -------------------------------------------------------------------------------

    #[test]
    fn classifier_shapes_and_points() {
        let device = Device::flex();
        let m = classifier(&device, true).valid();
        assert_eq!(m.num_points(), 4);
        assert_eq!(
            m.points(),
            vec![
                PointKind::Embedding,
                PointKind::Layer(0),
                PointKind::Layer(1),
                PointKind::Pooled
            ]
        );
        let (ids, mask) = toy_batch(&device);
        match m.forward_to(ids.clone(), mask.clone(), 2) {
            MixState::Sequence { hidden, mask } => {
                assert_eq!(hidden.dims(), [3, 5, 8]);
                assert_eq!(mask.dims(), [3, 5]);
            }
            MixState::Pooled(_) => panic!("sequence expected"),
        }
        assert_eq!(m.forward(ids, mask).dims(), [3, 4]);
    }

    #[test]
    fn mixing_point_invariants_with_pooler() {
        check_mixing_points(
            |d| classifier(d, true),
            |m| m.encoder.embeddings.word.weight.id,
        );
    }

    #[test]
    fn mixing_point_invariants_cls_state() {
        check_mixing_points(
            |d| classifier(d, false),
            |m| m.encoder.embeddings.word.weight.id,
        );
    }

    #[test]
    fn token_classifier_shape_and_token_types() {
        let device = Device::flex();
        device.seed(1);
        let m = BertTokenClassifier::new(tiny_config().init(&device), 5, 0.0, &device).valid();
        let (ids, mask) = toy_batch(&device);
        let out = m.forward(ids.clone(), mask.clone(), None);
        assert_eq!(out.dims(), [3, 5, 5]);
        // Explicit all-zero token types are the default; type 1 changes the output.
        let zeros = Tensor::<2, Int>::zeros([3, 5], &device);
        let ones = Tensor::<2, Int>::ones([3, 5], &device);
        let same = m.forward(ids.clone(), mask.clone(), Some(zeros));
        let other = m.forward(ids, mask, Some(ones));
        let diff = |a: Tensor<3>, b: Tensor<3>| -> f32 { (a - b).abs().max().into_scalar() };
        assert_eq!(diff(out.clone(), same), 0.0);
        assert!(diff(out, other) > 0.0);
    }

    /// With `segment_sep`, the second text of a pair is type 1: the classifier equals the
    /// encoder run with explicit types, and single-text rows are unchanged.
    #[test]
    fn pair_rows_get_token_type_one_after_the_first_sep() {
        let device = Device::flex();
        device.seed(3);
        let sep = 4i64;
        // [CLS]=2 a [SEP] b [SEP], then a single text [CLS] a [SEP] pad pad.
        let ids = Tensor::<2, Int>::from_data(
            TensorData::new(vec![2i64, 5, sep, 6, sep, 2, 7, sep, 0, 0], [2, 5]),
            &device,
        );
        let mask = ids.clone().not_equal_elem(0);
        let types = pair_token_types(&ids, &mask, sep as usize);
        assert_eq!(
            types
                .clone()
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .expect("ints"),
            vec![0, 0, 0, 1, 1, 0, 0, 0, 0, 0]
        );
        let plain = classifier(&device, true).valid();
        let paired = plain.clone().with_segments(sep as u32);
        let diff = |a: Tensor<2>, b: Tensor<2>| -> f32 { (a - b).abs().max().into_scalar() };
        let by_hand = plain
            .encoder
            .forward(ids.clone(), mask.clone(), Some(types));
        let want = plain.head.forward(plain.sentence_vector(by_hand));
        let got = paired.forward(ids.clone(), mask.clone());
        assert!(diff(got.clone(), want) < 1e-6, "types from the ids");
        let untyped = plain.forward(ids.clone(), mask.clone());
        assert!(
            diff(got.slice([1..2]), untyped.slice([1..2])) < 1e-6,
            "single text"
        );
        // The embedding output differs exactly at the second text (positions 3 and 4 of row 0).
        let hidden = |m: &BertClassifier| -> Tensor<3> {
            match m.embed(ids.clone(), mask.clone()) {
                MixState::Sequence { hidden, .. } => hidden,
                MixState::Pooled(_) => panic!("sequence"),
            }
        };
        let delta = (hidden(&paired) - hidden(&plain)).abs().max_dim(2);
        let delta: Vec<f32> = delta
            .into_data()
            .convert::<f32>()
            .try_to_vec()
            .expect("f32");
        for (k, d) in delta.iter().enumerate() {
            if k == 3 || k == 4 {
                assert!(*d > 1e-3, "position {k} is type 1 ({d})");
            } else {
                assert!(*d < 1e-6, "position {k} is type 0 ({d})");
            }
        }
    }

    #[test]
    fn pooled_is_none_without_pooler() {
        let device = Device::flex();
        let encoder = tiny_config().init(&device).without_pooler();
        let (ids, mask) = toy_batch(&device);
        assert!(encoder.pooled(ids.clone(), mask.clone(), None).is_none());
        let m = BertClassifier::new(encoder, 3, 0.0, &device);
        assert!(!m.use_pooler);
        assert_eq!(m.forward(ids, mask).dims(), [3, 3]);
    }

    #[test]
    #[should_panic(expected = "exceeds the position table")]
    fn too_long_is_a_clear_panic() {
        let device = Device::flex();
        let m = classifier(&device, true);
        let ids = Tensor::<2, Int>::ones([1, 9], &device);
        let mask = ids.clone().not_equal_elem(0);
        let _ = m.forward(ids, mask);
    }

    #[test]
    fn remap_table_covers_every_parameter() {
        // Every Hugging Face key maps to a distinct path of the module, and every module
        // parameter is some key's target.
        let device = Device::flex();
        let encoder = tiny_config().init(&device);
        let remap = remapper();
        let mut targets: Vec<String> = tiny_config()
            .tensor_specs(true)
            .iter()
            .map(|s| burn_path(&remap, &s.key))
            .collect();
        targets.sort();
        let mut params: Vec<String> = encoder
            .collect(None, None, false)
            .into_iter()
            .map(|t| t.name.replace("gamma", "weight").replace("beta", "bias"))
            .collect();
        params.sort();
        assert_eq!(targets, params);
    }

    // ---- config ------------------------------------------------------------------------------

    static COUNTER: AtomicUsize = AtomicUsize::new(0);

    /// A fresh empty folder under the system temp dir (removed when dropped).
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("mixup-bert-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("temp dir");
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn write_config(dir: &Path, config: &BertConfig) {
        let mut value = serde_json::to_value(config).expect("config json");
        value["model_type"] = Value::from("bert"); // unknown fields are ignored
        std::fs::write(dir.join("config.json"), value.to_string()).expect("write config");
    }

    #[test]
    fn config_missing_field_names_file_and_field() {
        let tmp = TempDir::new("cfg-missing");
        let mut value = serde_json::to_value(tiny_config()).expect("json");
        value
            .as_object_mut()
            .expect("object")
            .remove("num_attention_heads");
        let path = tmp.0.join("config.json");
        std::fs::write(&path, value.to_string()).expect("write");
        let err = BertConfig::from_json_file(&path).expect_err("missing field");
        let text = err.to_string();
        assert!(matches!(err, BertLoadError::Json { .. }), "{err:?}");
        assert!(text.contains("num_attention_heads"), "{text}");
        assert!(text.contains("config.json"), "{text}");
    }

    #[test]
    fn config_rejects_unsupported_values() {
        let tmp = TempDir::new("cfg-bad");
        let path = tmp.0.join("config.json");
        let cases: Vec<(BertConfig, &str)> = vec![
            (
                BertConfig {
                    hidden_act: "gelu_new".into(),
                    ..tiny_config()
                },
                "hidden_act",
            ),
            (
                BertConfig {
                    num_attention_heads: 3,
                    ..tiny_config()
                },
                "num_attention_heads",
            ),
            (
                BertConfig {
                    position_embedding_type: Some("relative_key".into()),
                    ..tiny_config()
                },
                "position_embedding_type",
            ),
            (
                BertConfig {
                    vocab_size: 0,
                    ..tiny_config()
                },
                "vocab_size",
            ),
        ];
        for (config, field) in cases {
            write_config(&tmp.0, &config);
            let err = BertConfig::from_json_file(&path).expect_err(field);
            let text = err.to_string();
            assert!(
                text.contains(&format!("`{field}`")) && text.contains("config.json"),
                "{text}"
            );
        }
        // Not JSON at all.
        std::fs::write(&path, "{ nope").expect("write");
        assert!(matches!(
            BertConfig::from_json_file(&path),
            Err(BertLoadError::Json { .. })
        ));
        // No file.
        let err = BertConfig::from_json_file(tmp.0.join("absent.json")).expect_err("absent");
        assert!(err.to_string().contains("absent.json"), "{err}");
    }

    #[test]
    fn config_reads_the_shipped_minilm_config() {
        let Some(dir) = minilm_dir() else { return };
        let config = BertConfig::from_json_file(dir.join("config.json")).expect("config");
        assert_eq!(
            config,
            BertConfig {
                max_position_embeddings: 512,
                position_embedding_type: Some("absolute".into()),
                ..BertConfig::new(30522, 384, 6, 12, 1536)
            }
        );
    }

    // ---- checkpoints -------------------------------------------------------------------------

    /// Deterministic values for a tensor of `shape`, distinct per key.
    fn values(key: &str, shape: &[usize]) -> Vec<f32> {
        let seed = key
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
        let len: usize = shape.iter().product();
        (0..len)
            .map(|i| (((seed as usize + 7 * i) % 97) as f32 - 48.0) / 200.0)
            .collect()
    }

    fn bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// Writes `tensors` (key, shape, f32 data) as one safetensors file.
    fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
        let raw: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
            .iter()
            .map(|(k, s, v)| (k.clone(), s.clone(), bytes(v)))
            .collect();
        let views: Vec<(String, TensorView<'_>)> = raw
            .iter()
            .map(|(k, s, b)| {
                (
                    k.clone(),
                    TensorView::new(Dtype::F32, s.clone(), b).expect("view"),
                )
            })
            .collect();
        safetensors::serialize_to_file(views, None, path).expect("write safetensors");
    }

    /// The full tensor list of `config` with deterministic values.
    fn full_checkpoint(config: &BertConfig) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        config
            .tensor_specs(true)
            .into_iter()
            .map(|s| {
                let v = values(&s.key, &s.shape);
                (s.key, s.shape, v)
            })
            .collect()
    }

    fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32 data")
    }

    fn assert_loaded_values(encoder: &BertEncoder, config: &BertConfig) {
        let d = config.hidden_size;
        let f = config.intermediate_size;
        // Embedding tables are not transposed.
        let key = "embeddings.word_embeddings.weight";
        assert_eq!(
            to_vec(encoder.embeddings.word.weight.val()),
            values(key, &[config.vocab_size, d])
        );
        // LayerNorm weight/bias land in gamma/beta.
        assert_eq!(
            to_vec(encoder.layers[1].output_norm.gamma.val()),
            values("encoder.layer.1.output.LayerNorm.weight", &[d])
        );
        let beta = encoder.layers[1]
            .output_norm
            .beta
            .as_ref()
            .expect("beta")
            .val();
        assert_eq!(
            to_vec(beta),
            values("encoder.layer.1.output.LayerNorm.bias", &[d])
        );
        // Linear weights are transposed: Burn [in, out] = PyTorch [out, in]^T.
        let hf = values("encoder.layer.0.intermediate.dense.weight", &[f, d]); // [f, d]
        let burn = to_vec(encoder.layers[0].intermediate.weight.val()); // [d, f]
        for o in 0..f {
            for i in 0..d {
                assert_eq!(burn[i * f + o], hf[o * d + i], "({o}, {i})");
            }
        }
        let pooler = encoder.pooler.as_ref().expect("pooler");
        assert_eq!(
            to_vec(pooler.bias.as_ref().expect("bias").val()),
            values("pooler.dense.bias", &[d])
        );
    }

    #[test]
    fn loads_a_single_file_checkpoint() {
        let tmp = TempDir::new("single");
        let config = tiny_config();
        write_config(&tmp.0, &config);
        let mut tensors = full_checkpoint(&config);
        // The position_ids buffer (int64 in real checkpoints) is ignored: write it as f32 here.
        tensors.push((
            POSITION_IDS.into(),
            vec![1, 8],
            (0..8).map(|i| i as f32).collect(),
        ));
        write_safetensors(&tmp.0.join("model.safetensors"), &tensors);
        let device = Device::flex();
        let (encoder, loaded) = BertEncoder::from_pretrained(&tmp.0, &device).expect("load");
        assert_eq!(loaded, config);
        assert_loaded_values(&encoder, &config);
    }

    /// Writes `tensors` as two shards (embeddings / the rest) plus the index.
    fn write_sharded(dir: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
        let (first, second): (Vec<_>, Vec<_>) = tensors
            .iter()
            .cloned()
            .partition(|(k, _, _)| k.starts_with("embeddings."));
        let names = [
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        ];
        write_safetensors(&dir.join(names[0]), &first);
        write_safetensors(&dir.join(names[1]), &second);
        let weight_map: serde_json::Map<String, Value> = first
            .iter()
            .map(|(k, _, _)| (k.clone(), Value::from(names[0])))
            .chain(
                second
                    .iter()
                    .map(|(k, _, _)| (k.clone(), Value::from(names[1]))),
            )
            .collect();
        let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string())
            .expect("write index");
    }

    #[test]
    fn loads_a_sharded_checkpoint() {
        let tmp = TempDir::new("sharded");
        let config = tiny_config();
        write_config(&tmp.0, &config);
        write_sharded(&tmp.0, &full_checkpoint(&config));
        let device = Device::flex();
        let (encoder, _) = BertEncoder::from_pretrained(&tmp.0, &device).expect("load");
        assert_loaded_values(&encoder, &config);
    }

    #[test]
    fn checkpoint_without_pooler_loads_without_one() {
        let tmp = TempDir::new("nopooler");
        let config = tiny_config();
        write_config(&tmp.0, &config);
        let tensors: Vec<_> = full_checkpoint(&config)
            .into_iter()
            .filter(|(k, _, _)| !k.starts_with("pooler."))
            .collect();
        write_safetensors(&tmp.0.join("model.safetensors"), &tensors);
        let device = Device::flex();
        let (encoder, _) = BertEncoder::from_pretrained(&tmp.0, &device).expect("load");
        assert!(encoder.pooler.is_none());
    }

    fn load_error(tag: &str, edit: impl Fn(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) -> String {
        let tmp = TempDir::new(tag);
        let config = tiny_config();
        write_config(&tmp.0, &config);
        let mut tensors = full_checkpoint(&config);
        edit(&mut tensors);
        write_sharded(&tmp.0, &tensors);
        let device = Device::flex();
        match BertEncoder::from_pretrained(&tmp.0, &device) {
            Ok(_) => panic!("{tag}: the checkpoint loaded"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn wrong_shape_names_key_and_both_shapes() {
        let key = "encoder.layer.1.intermediate.dense.weight";
        let text = load_error("shape", |t| {
            let entry = t.iter_mut().find(|(k, _, _)| k == key).expect("key");
            entry.1 = vec![8, 16]; // transposed: [in, out] instead of [out, in]
        });
        assert!(text.contains(key), "{text}");
        assert!(
            text.contains("[8, 16]") && text.contains("[16, 8]"),
            "{text}"
        );
        assert!(text.contains("model-00002-of-00002.safetensors"), "{text}");
    }

    #[test]
    fn missing_tensor_is_named() {
        let key = "encoder.layer.0.attention.self.value.bias";
        let text = load_error("missing", |t| t.retain(|(k, _, _)| k != key));
        assert!(text.contains(key) && text.contains("missing"), "{text}");
        assert!(text.contains("[8]"), "{text}");
    }

    #[test]
    fn extra_tensor_is_named() {
        let text = load_error("extra", |t| {
            t.push(("classifier.weight".into(), vec![3, 8], vec![0.0; 24]));
        });
        assert!(
            text.contains("classifier.weight") && text.contains("[3, 8]"),
            "{text}"
        );
        // A layer the config does not have is extra too.
        let text = load_error("extra-layer", |t| {
            t.push((
                "encoder.layer.2.output.dense.bias".into(),
                vec![8],
                vec![0.0; 8],
            ));
        });
        assert!(text.contains("encoder.layer.2.output.dense.bias"), "{text}");
    }

    #[test]
    fn missing_checkpoint_and_bad_files_are_errors() {
        let tmp = TempDir::new("nofiles");
        write_config(&tmp.0, &tiny_config());
        let device = Device::flex();
        let err = BertEncoder::from_pretrained(&tmp.0, &device).expect_err("no weights");
        assert!(matches!(err, BertLoadError::NoCheckpoint { .. }), "{err}");
        std::fs::write(tmp.0.join("model.safetensors"), b"not a safetensors file").expect("w");
        let err = BertEncoder::from_pretrained(&tmp.0, &device).expect_err("garbage");
        assert!(
            matches!(err, BertLoadError::Format { .. })
                && err.to_string().contains("model.safetensors"),
            "{err}"
        );
        // An index naming a shard that is not there.
        std::fs::remove_file(tmp.0.join("model.safetensors")).expect("rm");
        std::fs::write(
            tmp.0.join("model.safetensors.index.json"),
            r#"{"weight_map": {"pooler.dense.bias": "model-1.safetensors"}}"#,
        )
        .expect("w");
        let err = BertEncoder::from_pretrained(&tmp.0, &device).expect_err("absent shard");
        assert!(err.to_string().contains("model-1.safetensors"), "{err}");
    }

    // ---- the shipped all-MiniLM-L6-v2 ----------------------------------------------------------

    /// `shared/data/all-minilm-l6-v2`, or `None` (after a note) when it is absent outside CI.
    ///
    /// # Panics
    ///
    /// When it is absent and `CI=true`.
    fn minilm_dir() -> Option<PathBuf> {
        let data = std::env::var_os("MIXUP_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
        let dir = data.join("all-minilm-l6-v2");
        if dir.join("config.json").is_file() {
            return Some(dir);
        }
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "{}: all-MiniLM-L6-v2 is missing (set MIXUP_DATA_DIR to the folder holding \
                 all-minilm-l6-v2/); CI must run this test",
                dir.display()
            );
        }
        eprintln!("skipped: {} not found (set MIXUP_DATA_DIR)", dir.display());
        None
    }

    fn floats(v: &Value) -> Vec<f64> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_f64().expect("number"))
            .collect()
    }

    #[test]
    fn minilm_matches_reference_outputs() {
        let Some(dir) = minilm_dir() else { return };
        let device = Device::flex();
        let (encoder, config) = BertEncoder::from_pretrained(&dir, &device).expect("load MiniLM");
        assert_eq!(config.num_hidden_layers, 6);
        let encoder = encoder.valid();
        let text =
            std::fs::read_to_string(dir.join("reference_outputs.json")).expect("reference file");
        let reference: Value = serde_json::from_str(&text).expect("reference json");
        let sentences = reference["sentences"].as_array().expect("sentences");
        let n = sentences.len();
        let ints = |s: &Value, field: &str| -> Vec<i64> {
            s[field]
                .as_array()
                .expect(field)
                .iter()
                .map(|x| x.as_i64().expect("int"))
                .collect()
        };
        let l = sentences
            .iter()
            .map(|s| ints(s, "input_ids").len())
            .max()
            .expect("sentences");
        let (mut ids, mut types, mut lens) = (vec![0i64; n * l], vec![0i64; n * l], vec![]);
        for (row, s) in sentences.iter().enumerate() {
            let (i, t) = (ints(s, "input_ids"), ints(s, "token_type_ids"));
            assert_eq!(i.len(), t.len());
            ids[row * l..row * l + i.len()].copy_from_slice(&i);
            types[row * l..row * l + t.len()].copy_from_slice(&t);
            lens.push(i.len());
        }
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [n, l]), &device);
        let types = Tensor::<2, Int>::from_data(TensorData::new(types, [n, l]), &device);
        let mask = ids.clone().not_equal_elem(0);
        let hidden = encoder.forward(ids, mask.clone(), Some(types));
        let pooled = to_vec(encoder.pool(hidden.clone()).expect("MiniLM has a pooler"));
        let d = config.hidden_size;
        // Sentence embedding: masked mean, L2-normalised (the sentence-transformers pipeline).
        let count = mask.clone().float().sum_dim(1); // [n, 1]
        let masked = zero_padding(hidden.clone(), mask);
        let mean = masked.sum_dim(1).reshape([n, d]).div(count);
        let norm = mean.clone().powf_scalar(2.0).sum_dim(1).sqrt();
        let embedding = to_vec(mean.div(norm));
        let hidden = to_vec(hidden);

        let mut max_diff = 0.0f64;
        let mut check = |what: String, got: &[f32], want: &[f64]| {
            assert_eq!(got.len(), want.len(), "{what}");
            for (g, w) in got.iter().zip(want) {
                let diff = (*g as f64 - w).abs();
                max_diff = max_diff.max(diff);
                assert!(diff <= 1e-4, "{what}: got {g}, want {w} (diff {diff})");
            }
        };
        for (row, s) in sentences.iter().enumerate() {
            let at = |pos: usize| &hidden[(row * l + pos) * d..(row * l + pos) * d + 8];
            check(
                format!("{row} cls"),
                at(0),
                &floats(&s["last_hidden_state_cls_first8"]),
            );
            check(
                format!("{row} tok1"),
                at(1),
                &floats(&s["last_hidden_state_tok1_first8"]),
            );
            check(
                format!("{row} pooler"),
                &pooled[row * d..row * d + 8],
                &floats(&s["pooler_output_first8"]),
            );
            check(
                format!("{row} sentence embedding"),
                &embedding[row * d..(row + 1) * d],
                &floats(&s["sentence_embedding"]),
            );
            assert!(lens[row] >= 2);
        }
        let cosines = reference["cosine_similarity"].as_array().expect("cosines");
        for (a, row) in cosines.iter().enumerate() {
            for (b, want) in floats(row).iter().enumerate() {
                let dot: f32 = (0..d)
                    .map(|k| embedding[a * d + k] * embedding[b * d + k])
                    .sum();
                check(format!("cosine {a} {b}"), &[dot], &[*want]);
            }
        }
        eprintln!("all-MiniLM-L6-v2 vs reference_outputs.json: max abs difference {max_diff:.3e}");
    }
}
