//! Transformer encoder classifier: token + learned position embeddings → N self-attention
//! encoder layers (pre- or post-LayerNorm) → `[CLS]` or masked-mean pooling → dropout →
//! linear. The encoder of Vaswani et al. (2017), "Attention Is All You Need",
//! <https://arxiv.org/abs/1706.03762>; pre-LN placement as in Xiong et al. (2020),
//! <https://arxiv.org/abs/2002.04745>. Attention and the feed-forward block are Burn's
//! [`MultiHeadAttention`] and [`PositionWiseFeedForward`] modules (their weights and records),
//! run by [`self_attention`] and [`feed_forward`] so that their dropouts go through
//! `mixup_kernels::dropout` (cheap host masks on CPU backends) like every other dropout here.
//!
//! Mixing points ([`MixingPoints`]), for `n_layers` layers:
//!
//! | point | kind | state |
//! |---|---|---|
//! | 0 | embedding output (input mixup, wordMixup) | `[n, L(+1), d_model]`, padding zeroed |
//! | k = 1 ..= n_layers | output of layer k (Manifold Mixup, TMix) | `[n, L(+1), d_model]` |
//! | n_layers + 1 | pooled sentence vector (senMixup, Mixup-Transformer) | `[n, d_model]` |
//!
//! Point k is the output of the k-th layer counted from 1, the numbering TMix uses
//! ({7, 9, 12} for a 12-layer encoder).
//!
//! With `[CLS]` pooling a learned vector is put in front of every row (so sequence states are
//! one position longer than the ids) and its final state is the sentence vector.
//!
//! Padding never reaches a valid position: every attention layer masks padded keys (Burn's
//! `mask_pad`, filled with -1e4 before the softmax, whose weight then underflows to exactly
//! 0 in `f32`), every other operation is position-wise, and mean pooling counts valid
//! positions only. The embedding output zeroes padded positions, so their later values do not
//! depend on the padding ids either.

use burn::{
    config::Config,
    module::{Module, Param},
    nn::{
        Dropout, DropoutConfig, Embedding, EmbeddingConfig, Initializer, LayerNorm,
        LayerNormConfig, Linear, LinearConfig,
        activation::ActivationConfig,
        attention::{MultiHeadAttention, MultiHeadAttentionConfig},
        transformer::{PositionWiseFeedForward, PositionWiseFeedForwardConfig},
    },
    tensor::{Bool, Device, Int, Tensor, activation::quiet_softmax},
};
use mixup_core::{MixState, PointKind, masked_mean, zero_padding};

use crate::mixing::MixingPoints;

/// Configuration of a [`TransformerClassifier`].
#[derive(Config, Debug)]
pub struct TransformerClassifierConfig {
    /// Vocabulary size (rows of the token embedding table).
    pub vocab_size: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// Model width.
    #[config(default = 128)]
    pub d_model: usize,
    /// Attention heads (must divide `d_model`).
    #[config(default = 4)]
    pub n_heads: usize,
    /// Encoder layers.
    #[config(default = 2)]
    pub n_layers: usize,
    /// Inner width of the feed-forward blocks.
    #[config(default = 512)]
    pub d_ff: usize,
    /// Dropout on the embeddings, attention weights, residual branches and before the head.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Longest sequence (rows of the position table), `[CLS]` included.
    #[config(default = 512)]
    pub max_positions: usize,
    /// LayerNorm before each sub-layer (pre-LN, plus a final norm) rather than after the
    /// residual sum (post-LN, plus a norm on the embeddings, as BERT).
    #[config(default = true)]
    pub pre_norm: bool,
    /// Pool the final state of a learned `[CLS]` vector instead of the masked mean.
    #[config(default = false)]
    pub cls_pooling: bool,
    /// Activation of the feed-forward blocks.
    #[config(default = "ActivationConfig::Relu")]
    pub activation: ActivationConfig,
}

/// Epsilon of every LayerNorm of the encoder (Burn's default, 1e-5), passed to the fused
/// LayerNorm of `mixup-kernels` (Burn keeps a LayerNorm's epsilon private).
pub const NORM_EPS: f64 = 1e-5;

/// One encoder layer: self-attention and a feed-forward block, each with a residual
/// connection and a LayerNorm.
#[derive(Module, Debug)]
pub struct EncoderLayer {
    /// Self-attention.
    pub attention: MultiHeadAttention,
    /// Position-wise feed-forward block.
    pub ffn: PositionWiseFeedForward,
    /// Norm of the attention sub-layer.
    pub norm_attention: LayerNorm,
    /// Norm of the feed-forward sub-layer.
    pub norm_ffn: LayerNorm,
    /// Dropout on each residual branch.
    pub dropout: Dropout,
    /// Pre-LN (else post-LN).
    pub pre_norm: bool,
}

impl EncoderLayer {
    /// Runs the layer; `padding` is true at padded positions.
    ///
    /// # Shapes
    ///
    /// - `x`: `[n, L, d]`, `padding`: `[n, L]`; returns `[n, L, d]`
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let attend = |h: Tensor<3>| {
            mixup_kernels::dropout(
                &self.dropout,
                self_attention(&self.attention, h, padding.clone()),
            )
        };
        let norm = |n: &LayerNorm, x: Tensor<3>| mixup_kernels::layer_norm(n, x, NORM_EPS);
        if self.pre_norm {
            let x = x.clone() + attend(norm(&self.norm_attention, x));
            let h = feed_forward(&self.ffn, norm(&self.norm_ffn, x.clone()));
            x + mixup_kernels::dropout(&self.dropout, h)
        } else {
            let x = norm(&self.norm_attention, x.clone() + attend(x));
            let h = mixup_kernels::dropout(&self.dropout, feed_forward(&self.ffn, x.clone()));
            norm(&self.norm_ffn, x + h)
        }
    }
}

/// `mha.forward(MhaInput::self_attn(x).mask_pad(padding)).context` with the same operations
/// in the same order (scores scaled by `1/sqrt(d_k)`, padded keys filled with `min_float`,
/// softmax, dropout on the weights), the dropout through `mixup_kernels::dropout`.
///
/// # Shapes
///
/// - `x`: `[n, L, d_model]`, `padding`: `[n, L]` (true at padded positions); returns `[n, L, d_model]`
pub fn self_attention(
    mha: &MultiHeadAttention,
    x: Tensor<3>,
    padding: Tensor<2, Bool>,
) -> Tensor<3> {
    let [n, l, d] = x.dims();
    let heads = |linear: &Linear, x: Tensor<3>| {
        linear
            .forward(x)
            .reshape([n, l, mha.n_heads, mha.d_k])
            .swap_dims(1, 2)
    };
    let query = heads(&mha.query, x.clone());
    let key = heads(&mha.key, x.clone());
    let value = heads(&mha.value, x);
    let scores = query
        .matmul(key.transpose())
        .div_scalar((mha.d_k as f32).sqrt())
        .mask_fill(padding.reshape([n, 1, 1, l]), mha.min_float);
    let weights = if mha.quiet_softmax {
        quiet_softmax(scores, 3)
    } else {
        mixup_kernels::softmax(scores)
    };
    let weights = mixup_kernels::dropout(&mha.dropout, weights);
    let context = weights.matmul(value).swap_dims(1, 2).reshape([n, l, d]);
    mha.output.forward(context)
}

/// `ffn.forward(x)` (inner linear, activation, dropout, outer linear), the dropout through
/// `mixup_kernels::dropout`.
pub fn feed_forward(ffn: &PositionWiseFeedForward, x: Tensor<3>) -> Tensor<3> {
    let h = ffn.activation.forward(ffn.linear_inner.forward(x));
    ffn.linear_outer
        .forward(mixup_kernels::dropout(&ffn.dropout, h))
}

/// A Transformer encoder classifier. Create it with [`TransformerClassifierConfig::init`].
#[derive(Module, Debug)]
pub struct TransformerClassifier {
    /// Token embedding.
    pub token: Embedding,
    /// Learned position embedding.
    pub position: Embedding,
    /// The learned `[CLS]` vector `[1, d_model]`, with `[CLS]` pooling.
    pub cls: Option<Param<Tensor<2>>>,
    /// Norm of the embeddings (post-LN only).
    pub norm_embedding: Option<LayerNorm>,
    /// The encoder layers.
    pub layers: Vec<EncoderLayer>,
    /// Final norm after the last layer (pre-LN only).
    pub norm_final: Option<LayerNorm>,
    /// Dropout on the embeddings and before the output layer.
    pub dropout: Dropout,
    /// Output layer.
    pub output: Linear,
}

impl TransformerClassifierConfig {
    /// Builds the model with freshly initialised parameters.
    ///
    /// # Panics
    ///
    /// If a size is zero or `n_heads` does not divide `d_model`.
    pub fn init(&self, device: &Device) -> TransformerClassifier {
        assert!(
            self.vocab_size > 0
                && self.num_classes > 0
                && self.d_model > 0
                && self.n_heads > 0
                && self.n_layers > 0
                && self.d_ff > 0
                && self.max_positions > 0,
            "TransformerClassifierConfig: every size must be at least 1, got {self:?}"
        );
        assert!(
            self.d_model.is_multiple_of(self.n_heads),
            "TransformerClassifierConfig: n_heads = {} does not divide d_model = {}",
            self.n_heads,
            self.d_model
        );
        let d = self.d_model;
        let norm = || LayerNormConfig::new(d).with_epsilon(NORM_EPS).init(device);
        let layers = (0..self.n_layers)
            .map(|_| EncoderLayer {
                attention: MultiHeadAttentionConfig::new(d, self.n_heads)
                    .with_dropout(self.dropout)
                    .init(device),
                ffn: PositionWiseFeedForwardConfig::new(d, self.d_ff)
                    .with_dropout(self.dropout)
                    .with_activation(self.activation.clone())
                    .init(device),
                norm_attention: norm(),
                norm_ffn: norm(),
                dropout: DropoutConfig::new(self.dropout).init(),
                pre_norm: self.pre_norm,
            })
            .collect();
        let small = Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        TransformerClassifier {
            token: EmbeddingConfig::new(self.vocab_size, d)
                .with_initializer(small.clone())
                .init(device),
            position: EmbeddingConfig::new(self.max_positions, d)
                .with_initializer(small.clone())
                .init(device),
            cls: self.cls_pooling.then(|| small.init([1, d], device)),
            norm_embedding: (!self.pre_norm).then(norm),
            layers,
            norm_final: self.pre_norm.then(norm),
            dropout: DropoutConfig::new(self.dropout).init(),
            output: LinearConfig::new(d, self.num_classes).init(device),
        }
    }
}

impl TransformerClassifier {
    fn pool(&self, hidden: Tensor<3>, mask: Tensor<2, Bool>) -> Tensor<2> {
        let [n, _, d] = hidden.dims();
        let hidden = match &self.norm_final {
            Some(norm) => mixup_kernels::layer_norm(norm, hidden, NORM_EPS),
            None => hidden,
        };
        if self.cls.is_some() {
            return hidden.slice([0..n, 0..1]).reshape([n, d]);
        }
        masked_mean(hidden, mask)
    }
}

impl MixingPoints for TransformerClassifier {
    fn points(&self) -> Vec<PointKind> {
        let mut points = vec![PointKind::Embedding];
        points.extend((0..self.layers.len()).map(PointKind::Layer));
        points.push(PointKind::Pooled);
        points
    }

    /// # Panics
    ///
    /// If the sequence (with `[CLS]`) is longer than the position table.
    fn embed(&self, ids: Tensor<2, Int>, mask: Tensor<2, Bool>) -> MixState {
        let [n, _] = ids.dims();
        let device = ids.device();
        let mut hidden = self.token.forward(ids);
        let mut mask = mask;
        if let Some(cls) = &self.cls {
            let d = hidden.dims()[2];
            let cls = cls.val().reshape([1, 1, d]).expand([n, 1, d]);
            hidden = Tensor::cat(vec![cls, hidden], 1);
            mask = Tensor::cat(
                vec![Tensor::<2, Bool>::full([n, 1], true, &device), mask],
                1,
            );
        }
        let [_, l, d] = hidden.dims();
        let table = self.position.weight.dims()[0];
        assert!(
            l <= table,
            "TransformerClassifier: a sequence of {l} positions exceeds the position table \
             ({table}); raise max_positions or cut the input"
        );
        let positions = self
            .position
            .weight
            .val()
            .narrow(0, 0, l)
            .reshape([1, l, d])
            .expand([n, l, d]);
        let mut hidden = hidden + positions;
        if let Some(norm) = &self.norm_embedding {
            hidden = mixup_kernels::layer_norm(norm, hidden, NORM_EPS);
        }
        let hidden = zero_padding(mixup_kernels::dropout(&self.dropout, hidden), mask.clone());
        MixState::Sequence { hidden, mask }
    }

    fn advance(&self, state: MixState, point: usize) -> MixState {
        let n_layers = self.layers.len();
        match state {
            MixState::Sequence { hidden, mask } if point < n_layers => {
                let hidden = self.layers[point].forward(hidden, mask.clone().bool_not());
                MixState::Sequence { hidden, mask }
            }
            MixState::Sequence { hidden, mask } if point == n_layers => {
                MixState::Pooled(self.pool(hidden, mask))
            }
            _ => panic!(
                "TransformerClassifier has no step from point {point} (points are 0..={})",
                n_layers + 1
            ),
        }
    }

    fn head_params(&self) -> Vec<burn::module::ParamId> {
        crate::mixing::linear_params(&self.output)
    }

    fn head(&self, pooled: Tensor<2>) -> Tensor<2> {
        self.output
            .forward(mixup_kernels::dropout(&self.dropout, pooled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_mixing_points, toy_batch};

    fn model(device: &Device, pre_norm: bool, cls: bool) -> TransformerClassifier {
        device.seed(0);
        TransformerClassifierConfig::new(12, 4)
            .with_d_model(8)
            .with_n_heads(2)
            .with_n_layers(2)
            .with_d_ff(16)
            .with_max_positions(8)
            .with_pre_norm(pre_norm)
            .with_cls_pooling(cls)
            .with_dropout(0.0)
            .init(device)
    }

    /// Our attention and feed-forward runs compute what Burn's modules compute (dropout off).
    #[test]
    fn attention_and_ffn_equal_burns_modules() {
        use burn::nn::attention::MhaInput;
        let device = Device::flex().autodiff();
        let m = model(&device, true, false);
        let layer = &m.layers[0];
        let x = Tensor::<3>::random(
            [3, 5, 8],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let padding = Tensor::<2, Bool>::from_data(
            [
                [false; 5],
                [false, false, false, true, true],
                [false, true, true, true, true],
            ],
            &device,
        );
        let ours = self_attention(&layer.attention, x.clone(), padding.clone());
        let burns = layer
            .attention
            .forward(MhaInput::self_attn(x.clone()).mask_pad(padding))
            .context;
        let d: f32 = (ours - burns).abs().max().into_scalar();
        assert!(d < 1e-6, "attention differs by {d}");
        let d: f32 = (feed_forward(&layer.ffn, x.clone()) - layer.ffn.forward(x))
            .abs()
            .max()
            .into_scalar();
        assert!(d < 1e-6, "feed-forward differs by {d}");
    }

    #[test]
    fn shapes_and_points() {
        let device = Device::flex();
        for (pre, cls) in [(true, false), (false, true)] {
            let m = model(&device, pre, cls).valid();
            assert_eq!(m.num_points(), 4);
            assert_eq!(m.points()[2], PointKind::Layer(1));
            let (ids, mask) = toy_batch(&device);
            let extra = usize::from(cls);
            match m.forward_to(ids.clone(), mask.clone(), 1) {
                MixState::Sequence { hidden, mask } => {
                    assert_eq!(hidden.dims(), [3, 5 + extra, 8]);
                    assert_eq!(mask.dims(), [3, 5 + extra]);
                }
                MixState::Pooled(_) => panic!("sequence expected"),
            }
            assert_eq!(m.forward(ids, mask).dims(), [3, 4]);
        }
    }

    #[test]
    fn mixing_point_invariants_pre_ln_mean() {
        check_mixing_points(|d| model(d, true, false), |m| m.token.weight.id);
    }

    #[test]
    fn mixing_point_invariants_post_ln_cls() {
        check_mixing_points(|d| model(d, false, true), |m| m.token.weight.id);
    }

    #[test]
    #[should_panic(expected = "exceeds the position table")]
    fn too_long_is_a_clear_panic() {
        let device = Device::flex();
        let m = model(&device, true, true).valid();
        let ids = Tensor::<2, Int>::ones([1, 8], &device);
        let mask = ids.clone().not_equal_elem(0);
        let _ = m.forward(ids, mask);
    }
}
