//! BiLSTM sentence classifier: embedding → stacked bidirectional LSTM layers → max (or mean)
//! pooling over the valid positions → dropout → linear. The recurrent encoder of Guo et al.
//! (2019), "Augmenting Data with Mixup for Sentence Classification",
//! <https://arxiv.org/abs/1905.08941>; the LSTM is Burn's [`Lstm`].
//!
//! Mixing points ([`MixingPoints`]), for `n_layers` layers:
//!
//! | point | kind | state |
//! |---|---|---|
//! | 0 | embedding output (input mixup, wordMixup) | `[n, L, d_embed]`, padding zeroed |
//! | 1 ..= n_layers | output of layer k - 1 (Manifold Mixup) | `[n, L, 2 * d_hidden]` |
//! | n_layers + 1 | pooled sentence vector (senMixup) | `[n, 2 * d_hidden]` |
//!
//! Padding never reaches a valid position: sequences are right-padded, the forward direction
//! meets padding only after the last token, and the backward direction runs over each row
//! reversed *within its own length* (so it starts at the row's last token, not at the padding),
//! then is turned back. Masks must therefore be right-padded prefixes, which batches and the
//! union of two such masks always are.

use burn::{
    config::Config,
    module::Module,
    nn::{
        Dropout, DropoutConfig, Embedding, EmbeddingConfig, Linear, LinearConfig, Lstm, LstmConfig,
    },
    tensor::{Bool, Device, Int, Tensor},
};
use mixup_core::{MixState, PointKind, zero_padding};

use crate::mixing::MixingPoints;

/// Configuration of a [`BiLstmClassifier`].
#[derive(Config, Debug)]
pub struct BiLstmClassifierConfig {
    /// Vocabulary size (rows of the embedding table).
    pub vocab_size: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// Embedding width.
    #[config(default = 128)]
    pub d_embed: usize,
    /// Hidden size of each direction.
    #[config(default = 128)]
    pub d_hidden: usize,
    /// Number of bidirectional layers.
    #[config(default = 1)]
    pub n_layers: usize,
    /// Mean instead of max pooling over the valid positions.
    #[config(default = false)]
    pub mean_pooling: bool,
    /// Dropout before the output layer.
    #[config(default = 0.5)]
    pub dropout: f64,
}

/// One bidirectional layer: a left-to-right and a right-to-left [`Lstm`].
#[derive(Module, Debug)]
pub struct BiLayer {
    /// Left-to-right LSTM.
    pub forward: Lstm,
    /// Right-to-left LSTM (run over each row reversed within its length).
    pub backward: Lstm,
}

/// A BiLSTM classifier. Create it with [`BiLstmClassifierConfig::init`].
#[derive(Module, Debug)]
pub struct BiLstmClassifier {
    /// Token embedding.
    pub embedding: Embedding,
    /// The bidirectional layers.
    pub layers: Vec<BiLayer>,
    /// Dropout before the output layer.
    pub dropout: Dropout,
    /// Output layer.
    pub output: Linear,
    /// Mean pooling (else max).
    pub mean_pooling: bool,
}

impl BiLstmClassifierConfig {
    /// Builds the model with freshly initialised parameters.
    ///
    /// # Panics
    ///
    /// If a size is zero.
    pub fn init(&self, device: &Device) -> BiLstmClassifier {
        assert!(
            self.vocab_size > 0
                && self.num_classes > 0
                && self.d_embed > 0
                && self.d_hidden > 0
                && self.n_layers > 0,
            "BiLstmClassifierConfig: every size must be at least 1, got {self:?}"
        );
        let layers = (0..self.n_layers)
            .map(|i| {
                let d_in = if i == 0 {
                    self.d_embed
                } else {
                    2 * self.d_hidden
                };
                let lstm = LstmConfig::new(d_in, self.d_hidden, true);
                BiLayer {
                    forward: lstm.init(device),
                    backward: lstm.init(device),
                }
            })
            .collect();
        BiLstmClassifier {
            embedding: EmbeddingConfig::new(self.vocab_size, self.d_embed).init(device),
            layers,
            dropout: DropoutConfig::new(self.dropout).init(),
            output: LinearConfig::new(2 * self.d_hidden, self.num_classes).init(device),
            mean_pooling: self.mean_pooling,
        }
    }
}

/// For right-padded rows, the index that reverses each row within its valid length and leaves
/// the padding in place: `len - 1 - t` for `t < len`, else `t`. Expanded to `[n, L, d]`.
fn reverse_index(mask: Tensor<2, Bool>, d: usize) -> Tensor<3, Int> {
    let [n, l] = mask.dims();
    let device = mask.device();
    let lens = mask.clone().int().sum_dim(1); // [n, 1]
    let t = Tensor::<1, Int>::arange(0..l as i64, &device)
        .reshape([1, l])
        .expand([n, l]);
    let reversed = lens.expand([n, l]).sub(t.clone()).sub_scalar(1);
    t.mask_where(mask, reversed)
        .reshape([n, l, 1])
        .expand([n, l, d])
}

impl BiLstmClassifier {
    fn run_layer(&self, layer: &BiLayer, x: Tensor<3>, mask: Tensor<2, Bool>) -> Tensor<3> {
        let [_, _, d_in] = x.dims();
        let x = zero_padding(x, mask.clone());
        let (left, _) = layer.forward.forward(x.clone(), None);
        let (right_rev, _) = layer
            .backward
            .forward(x.gather(1, reverse_index(mask.clone(), d_in)), None);
        let d_hidden = right_rev.dims()[2];
        let right = right_rev.gather(1, reverse_index(mask, d_hidden));
        Tensor::cat(vec![left, right], 2)
    }

    fn pool(&self, hidden: Tensor<3>, mask: Tensor<2, Bool>) -> Tensor<2> {
        let dims = hidden.dims();
        let padding = mask
            .clone()
            .bool_not()
            .reshape([dims[0], dims[1], 1])
            .expand(dims);
        if self.mean_pooling {
            let count = mask.float().sum_dim(1).clamp_min(1.0); // [n, 1]
            hidden
                .mask_fill(padding, 0.0)
                .sum_dim(1)
                .reshape([dims[0], dims[2]])
                .div(count)
        } else {
            hidden
                .mask_fill(padding, -1.0e9)
                .max_dim(1)
                .reshape([dims[0], dims[2]])
        }
    }
}

impl MixingPoints for BiLstmClassifier {
    fn points(&self) -> Vec<PointKind> {
        let mut points = vec![PointKind::Embedding];
        points.extend((0..self.layers.len()).map(PointKind::Layer));
        points.push(PointKind::Pooled);
        points
    }

    fn embed(&self, ids: Tensor<2, Int>, mask: Tensor<2, Bool>) -> MixState {
        let hidden = zero_padding(self.embedding.forward(ids), mask.clone());
        MixState::Sequence { hidden, mask }
    }

    fn advance(&self, state: MixState, point: usize) -> MixState {
        let n_layers = self.layers.len();
        match state {
            MixState::Sequence { hidden, mask } if point < n_layers => {
                let hidden = self.run_layer(&self.layers[point], hidden, mask.clone());
                MixState::Sequence { hidden, mask }
            }
            MixState::Sequence { hidden, mask } if point == n_layers => {
                MixState::Pooled(self.pool(hidden, mask))
            }
            _ => panic!(
                "BiLstmClassifier has no step from point {point} (points are 0..={})",
                n_layers + 1
            ),
        }
    }

    fn head(&self, pooled: Tensor<2>) -> Tensor<2> {
        self.output.forward(self.dropout.forward(pooled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_mixing_points, toy_batch};

    fn model(device: &Device, mean: bool) -> BiLstmClassifier {
        device.seed(0);
        BiLstmClassifierConfig::new(12, 4)
            .with_d_embed(8)
            .with_d_hidden(5)
            .with_n_layers(2)
            .with_mean_pooling(mean)
            .with_dropout(0.0)
            .init(device)
    }

    #[test]
    fn shapes_points_and_reverse_index() {
        let device = Device::flex();
        let m = model(&device, false).valid();
        assert_eq!(m.num_points(), 4);
        let (ids, mask) = toy_batch(&device);
        assert_eq!(m.forward(ids, mask.clone()).dims(), [3, 4]);
        let idx: Vec<i64> = reverse_index(mask, 1)
            .reshape([15])
            .into_data()
            .convert::<i64>()
            .try_to_vec()
            .expect("idx");
        assert_eq!(idx, vec![4, 3, 2, 1, 0, 2, 1, 0, 3, 4, 0, 1, 2, 3, 4]);
    }

    #[test]
    fn mixing_point_invariants_max_pooling() {
        check_mixing_points(|d| model(d, false), |m| m.embedding.weight.id);
    }

    #[test]
    fn mixing_point_invariants_mean_pooling() {
        check_mixing_points(|d| model(d, true), |m| m.embedding.weight.id);
    }
}
