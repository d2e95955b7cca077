//! TextCNN: the convolutional sentence classifier of Kim (2014), "Convolutional Neural
//! Networks for Sentence Classification", <https://arxiv.org/abs/1408.5882>.
//!
//! Embedding → one 1-D convolution per filter width (3/4/5 by default, 100 maps each, `same`
//! padding so every position keeps one output) → ReLU → max over the valid positions →
//! dropout → linear.
//!
//! Mixing points ([`MixingPoints`]):
//!
//! | point | kind | state |
//! |---|---|---|
//! | 0 | embedding output (input mixup, wordMixup) | `[n, L, d_embed]`, padding zeroed |
//! | 1 | convolution features after ReLU (Manifold Mixup) | `[n, L, n_filters * widths]` |
//! | 2 | pooled sentence vector (senMixup) | `[n, n_filters * widths]` |

use burn::{
    config::Config,
    module::Module,
    nn::{
        Dropout, DropoutConfig, Embedding, EmbeddingConfig, Linear, LinearConfig, PaddingConfig1d,
        conv::{Conv1d, Conv1dConfig},
    },
    tensor::{Bool, Int, Tensor, activation::relu},
};
use mixup_core::{MixState, PointKind, zero_padding};

use crate::mixing::MixingPoints;

/// Configuration of a [`TextCnn`].
#[derive(Config, Debug)]
pub struct TextCnnConfig {
    /// Vocabulary size (rows of the embedding table).
    pub vocab_size: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// Embedding width.
    #[config(default = 128)]
    pub d_embed: usize,
    /// Feature maps per filter width.
    #[config(default = 100)]
    pub n_filters: usize,
    /// Filter widths.
    #[config(default = "vec![3, 4, 5]")]
    pub widths: Vec<usize>,
    /// Dropout before the output layer.
    #[config(default = 0.5)]
    pub dropout: f64,
}

/// Kim's TextCNN. Create it with [`TextCnnConfig::init`].
#[derive(Module, Debug)]
pub struct TextCnn {
    /// Token embedding.
    pub embedding: Embedding,
    /// One convolution per filter width.
    pub convs: Vec<Conv1d>,
    /// Dropout before the output layer.
    pub dropout: Dropout,
    /// Output layer.
    pub output: Linear,
}

impl TextCnnConfig {
    /// Builds the model with freshly initialised parameters.
    ///
    /// # Panics
    ///
    /// If `widths` is empty or holds a zero, or `vocab_size`, `num_classes`, `d_embed` or
    /// `n_filters` is zero.
    pub fn init(&self, device: &burn::tensor::Device) -> TextCnn {
        assert!(
            self.vocab_size > 0 && self.num_classes > 0,
            "TextCnnConfig: empty vocab/classes"
        );
        assert!(
            self.d_embed > 0 && self.n_filters > 0,
            "TextCnnConfig: zero width"
        );
        assert!(
            !self.widths.is_empty() && self.widths.iter().all(|&w| w > 0),
            "TextCnnConfig: filter widths must be non-empty and positive, got {:?}",
            self.widths
        );
        let convs = self
            .widths
            .iter()
            .map(|&w| {
                Conv1dConfig::new(self.d_embed, self.n_filters, w)
                    .with_padding(PaddingConfig1d::Same)
                    .init(device)
            })
            .collect();
        TextCnn {
            embedding: EmbeddingConfig::new(self.vocab_size, self.d_embed).init(device),
            convs,
            dropout: DropoutConfig::new(self.dropout).init(),
            output: LinearConfig::new(self.n_filters * self.widths.len(), self.num_classes)
                .init(device),
        }
    }
}

impl TextCnn {
    /// All the convolutions at once, as one matrix product over stacked shifted copies of the
    /// input (im2col). Same result as running each [`Conv1d`] with `same` padding and
    /// concatenating their maps; on CPU backends one large product is several times faster
    /// than three small convolutions. The parameters stay in the [`Conv1d`] modules, so
    /// checkpoints are those of ordinary convolutions.
    ///
    /// # Shapes
    ///
    /// - `x`: `[n, L, d_embed]`; returns `[n, L, n_filters * widths]` (before the ReLU)
    pub fn convolve(&self, x: Tensor<3>) -> Tensor<3> {
        let [n, l, d] = x.dims();
        let device = x.device();
        // `same` padding puts (k - 1) / 2 zeros on the left of a width-k filter, the rest on
        // the right: output t sees inputs t - (k-1)/2 ..= t + k/2.
        let left = self
            .convs
            .iter()
            .map(|c| (c.kernel_size - 1) / 2)
            .max()
            .unwrap_or(0);
        let right = self
            .convs
            .iter()
            .map(|c| c.kernel_size / 2)
            .max()
            .unwrap_or(0);
        let span = left + right + 1;
        let windows = mixup_kernels::sliding_windows(x, left, right).reshape([n * l, span * d]);
        // Each filter bank [F, d, k] becomes rows of a [span * d, F] matrix, zero where the
        // window reaches beyond the filter.
        let mut weights = Vec::with_capacity(self.convs.len());
        let mut biases = Vec::with_capacity(self.convs.len());
        for conv in &self.convs {
            let k = conv.kernel_size;
            let start = left - (k - 1) / 2;
            let [f, _, _] = conv.weight.dims();
            let w = conv.weight.val().permute([2, 1, 0]).reshape([k * d, f]);
            let mut rows = Vec::with_capacity(3);
            if start > 0 {
                rows.push(Tensor::zeros([start * d, f], &device));
            }
            rows.push(w);
            if span > start + k {
                rows.push(Tensor::zeros([(span - start - k) * d, f], &device));
            }
            weights.push(Tensor::cat(rows, 0));
            biases.push(match &conv.bias {
                Some(b) => b.val(),
                None => Tensor::zeros([f], &device),
            });
        }
        let weight = Tensor::cat(weights, 1);
        let bias = Tensor::cat(biases, 0);
        let channels = bias.dims()[0];
        windows
            .matmul(weight)
            .add(bias.reshape([1, channels]))
            .reshape([n, l, channels])
    }
}

impl MixingPoints for TextCnn {
    fn points(&self) -> Vec<PointKind> {
        vec![PointKind::Embedding, PointKind::Layer(0), PointKind::Pooled]
    }

    fn embed(&self, ids: Tensor<2, Int>, mask: Tensor<2, Bool>) -> MixState {
        let hidden = zero_padding(self.embedding.forward(ids), mask.clone());
        MixState::Sequence { hidden, mask }
    }

    fn advance(&self, state: MixState, point: usize) -> MixState {
        match (point, state) {
            (0, MixState::Sequence { hidden, mask }) => {
                // Padding is zero at point 0, also after mixing (MixState::mix zeroes it), so
                // the convolutions see the same zeros whatever the padding token ids are.
                MixState::Sequence {
                    hidden: relu(self.convolve(hidden)),
                    mask,
                }
            }
            (1, MixState::Sequence { hidden, mask }) => {
                let dims = hidden.dims();
                let padding = mask.bool_not().reshape([dims[0], dims[1], 1]).expand(dims);
                // Max over valid positions only (every row has at least one).
                let pooled = hidden
                    .mask_fill(padding, -1.0e9)
                    .max_dim(1)
                    .reshape([dims[0], dims[2]]);
                MixState::Pooled(pooled)
            }
            (p, _) => panic!("TextCnn has no step from point {p} (points are 0, 1, 2)"),
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
    use crate::testing::toy_batch as batch;
    use burn::{
        module::Module,
        tensor::{Device, Tolerance},
    };
    use mixup_core::MixParams;

    fn model(device: &Device) -> TextCnn {
        device.seed(0);
        TextCnnConfig::new(12, 4)
            .with_d_embed(8)
            .with_n_filters(6)
            .init(device)
            .valid()
    }

    #[test]
    fn shapes_and_points() {
        let device = Device::flex();
        let m = model(&device);
        let (ids, mask) = batch(&device);
        assert_eq!(m.num_points(), 3);
        assert_eq!(m.forward(ids.clone(), mask.clone()).dims(), [3, 4]);
        let MixState::Sequence { hidden, .. } = m.forward_to(ids.clone(), mask.clone(), 1) else {
            panic!("point 1 is a sequence")
        };
        assert_eq!(hidden.dims(), [3, 5, 18]);
        let MixState::Pooled(p) = m.forward_to(ids, mask, 2) else {
            panic!("pooled")
        };
        assert_eq!(p.dims(), [3, 18]);
    }

    #[test]
    fn union_mask_is_used_when_mixing_sequences() {
        // Row 1 (3 tokens) mixed with row 0 (5 tokens) at the feature point: the pooled max
        // must see positions 3 and 4, which only the partner has.
        let device = Device::flex();
        let m = model(&device);
        let (ids, mask) = batch(&device);
        let params = MixParams {
            lambdas: vec![1.0, 0.5, 1.0],
            partners: vec![0, 0, 2],
        };
        let state = m.forward_to(ids.clone(), mask.clone(), 1);
        let mixed = state
            .clone()
            .mix(state.partner_rows(&params), &params.lambdas);
        let MixState::Sequence {
            hidden,
            mask: mixed_mask,
        } = mixed.clone()
        else {
            panic!()
        };
        let valid: Vec<i64> = mixed_mask
            .int()
            .into_data()
            .convert::<i64>()
            .try_to_vec()
            .expect("mask");
        assert_eq!(&valid[5..10], &[1, 1, 1, 1, 1]);
        // Pool by hand over all 5 positions of row 1 and compare with the model's pooling.
        let row1 = hidden.slice([1..2, 0..5]).max_dim(1).reshape([1, 18]);
        let MixState::Pooled(pooled) = m.advance(mixed, 1) else {
            panic!()
        };
        pooled
            .slice([1..2])
            .into_data()
            .assert_approx_eq::<f32>(&row1.into_data(), Tolerance::default());
    }

    #[test]
    fn convolve_equals_burn_conv1d() {
        let device = Device::flex();
        let m = model(&device);
        for len in [7, 1, 2] {
            let x = Tensor::<3>::random([3, len, 8], burn::tensor::Distribution::Default, &device);
            let maps: Vec<Tensor<3>> = m
                .convs
                .iter()
                .map(|c| c.forward(x.clone().swap_dims(1, 2)))
                .collect();
            let expected = Tensor::cat(maps, 1).swap_dims(1, 2);
            let got = m.convolve(x);
            got.into_data()
                .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::default());
        }
    }

    #[test]
    fn mixing_point_invariants() {
        crate::testing::check_mixing_points(
            |d| {
                d.seed(0);
                TextCnnConfig::new(12, 4)
                    .with_d_embed(8)
                    .with_n_filters(6)
                    .with_dropout(0.0)
                    .init(d)
            },
            |m| m.embedding.weight.id,
        );
    }
}
