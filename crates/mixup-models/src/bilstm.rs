//! BiLSTM sentence classifier: embedding → stacked bidirectional LSTM layers → max (or mean)
//! pooling over the valid positions → dropout → linear. The recurrent encoder of Guo et al.
//! (2019), "Augmenting Data with Mixup for Sentence Classification",
//! <https://arxiv.org/abs/1905.08941>.
//!
//! The LSTM cell is the standard one (gates i, f, g, o as in PyTorch's `nn.LSTM`; tested equal
//! to Burn's [`burn::nn::Lstm`] with the same weights), but the layer is our own: both
//! directions run as one batched recurrence. On Flex ([`mixup_kernels::has_fused_lstm`]) the
//! input projections of every step are one product and the recurrence is one fused op with a
//! hand-written backward (`mixup_kernels::lstm`); on LibTorch's CPU device (feature `tch`) the
//! layer is ATen's LSTM, one node with LibTorch's backward (`mixup_kernels::lstm_tch`); elsewhere [`BiLayer::run_plain`] runs it in
//! Burn ops, each step one `[2, n, d_in] x [2, d_in, 4h]` and one `[2, n, h] x [2, h, 4h]`
//! product. (In Burn ops, projecting every step's input before the loop is slower: the backward
//! of each per-step slice of that product writes a zeroed tensor of its full size, per step.)
//! Burn's `Lstm` does eight small products per step and direction and writes each step into
//! the output with `slice_assign` (whose backward copies the whole output every step), and its
//! `BiLstm` reverses rows over the padded length, so padding would reach valid positions.
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
    module::{Module, Param},
    nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig},
    tensor::{Bool, Device, Int, Tensor, activation},
};
use mixup_core::{MixState, PointKind, masked_mean, zero_padding};

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
    /// Features concatenated to the embedding output before the first layer by the caller
    /// (a tagger's character features, [`crate::SequenceTagger`]): the first layer reads
    /// `d_embed + d_extra_input` values per position. 0 for the classifier.
    #[config(default = 0)]
    pub d_extra_input: usize,
}

/// One bidirectional LSTM layer; index 0 of each parameter is the left-to-right direction,
/// index 1 the right-to-left one (run over each row reversed within its length). The four
/// gate blocks along the last axis are input, forget, cell candidate, output.
#[derive(Module, Debug)]
pub struct BiLayer {
    /// Input weights `[2, d_in, 4 * d_hidden]`.
    pub input: Param<Tensor<3>>,
    /// Recurrent weights `[2, d_hidden, 4 * d_hidden]`.
    pub recurrent: Param<Tensor<3>>,
    /// Bias `[2, 1, 4 * d_hidden]`.
    pub bias: Param<Tensor<3>>,
}

impl BiLayer {
    /// A layer with PyTorch's initialisation: every weight uniform in
    /// `[-1/sqrt(d_hidden), 1/sqrt(d_hidden)]`.
    pub fn init(d_in: usize, d_hidden: usize, device: &Device) -> Self {
        let k = 1.0 / (d_hidden as f64).sqrt();
        let init = Initializer::Uniform { min: -k, max: k };
        Self {
            input: init.init([2, d_in, 4 * d_hidden], device),
            recurrent: init.init([2, d_hidden, 4 * d_hidden], device),
            bias: init.init([2, 1, 4 * d_hidden], device),
        }
    }

    /// Runs both directions over `x` (`[2, n, L, d_in]`: index 0 in reading order, index 1
    /// already reversed), from zero states; returns the hidden states `[2, n, L, d_hidden]`.
    pub fn run(&self, x: Tensor<4>) -> Tensor<4> {
        if mixup_kernels::has_fused_lstm(&x.device()) {
            return self.run_fused(x);
        }
        self.run_plain(x)
    }

    /// [`Self::run`] through `mixup_kernels::lstm_layer`: on Flex the input projections of
    /// every step in one product, then one op for the whole recurrence (one autodiff node, with a
    /// hand-written backward); on LibTorch's CPU device ATen's LSTM (one node).
    fn run_fused(&self, x: Tensor<4>) -> Tensor<4> {
        mixup_kernels::lstm_layer(x, self.input.val(), self.recurrent.val(), self.bias.val())
    }

    /// [`Self::run`] in plain Burn ops (every backend; the reference of the fused path).
    pub fn run_plain(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, n, l, d_in] = x.dims();
        let d = self.recurrent.dims()[1];
        let device = x.device();
        // Time-major, so that each step's slice is one contiguous block (the backward of a
        // slice writes into a zeroed tensor of the full size, once per step: keeping the
        // sliced tensor narrow (d_in, not 4 * d_hidden) keeps that cost down).
        let steps = x.permute([2, 0, 1, 3]); // [L, 2, n, d_in]
        let input = self.input.val();
        let recurrent = self.recurrent.val();
        let bias = self.bias.val();
        let mut hidden = Tensor::<3>::zeros([2, n, d], &device);
        let mut cell = Tensor::<3>::zeros([2, n, d], &device);
        let mut outputs = Vec::with_capacity(l);
        for t in 0..l {
            let x_t = steps.clone().narrow(0, t, 1).reshape([2, n, d_in]);
            let z = x_t
                .matmul(input.clone())
                .add(hidden.matmul(recurrent.clone()))
                .add(bias.clone());
            let gates = activation::sigmoid(z.clone());
            let input_gate = gates.clone().slice([0..2, 0..n, 0..d]);
            let forget = gates.clone().slice([0..2, 0..n, d..2 * d]);
            let out = gates.slice([0..2, 0..n, 3 * d..4 * d]);
            let candidate = z.slice([0..2, 0..n, 2 * d..3 * d]).tanh();
            cell = forget * cell + input_gate * candidate;
            hidden = out * cell.clone().tanh();
            outputs.push(hidden.clone());
        }
        Tensor::stack(outputs, 2)
    }
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
                    self.d_embed + self.d_extra_input
                } else {
                    2 * self.d_hidden
                };
                BiLayer::init(d_in, self.d_hidden, device)
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

/// Each row's valid length (read on the host), for a right-padded mask.
#[cfg(feature = "flex")]
fn row_lengths(mask: Tensor<2, Bool>) -> Vec<usize> {
    mask.int()
        .sum_dim(1)
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .expect("row lengths of a mask")
        .into_iter()
        .map(|k| k.max(0) as usize)
        .collect()
}

impl BiLstmClassifier {
    fn run_layer(&self, layer: &BiLayer, x: Tensor<3>, mask: Tensor<2, Bool>) -> Tensor<3> {
        let x = zero_padding(x, mask.clone());
        #[cfg(feature = "flex")]
        if mixup_kernels::has_fused_kernels(&x.device()) {
            // Flex: direction 1's reversal within each row happens inside the fused op.
            return mixup_kernels::bilstm_layer(
                x,
                row_lengths(mask),
                layer.input.val(),
                layer.recurrent.val(),
                layer.bias.val(),
            );
        }
        Self::run_layer_gathered(layer, x, mask)
    }

    /// [`Self::run_layer`] with direction 1's reversal done by gathers around [`BiLayer::run`]
    /// (every backend but Flex; on Flex, the reference of the in-op reversal). `x` has its
    /// padding zeroed.
    fn run_layer_gathered(layer: &BiLayer, x: Tensor<3>, mask: Tensor<2, Bool>) -> Tensor<3> {
        let [n, l, d_in] = x.dims();
        let reversed = x.clone().gather(1, reverse_index(mask.clone(), d_in));
        let both = Tensor::stack::<4>(vec![x, reversed], 0);
        let hidden = layer.run(both);
        let d_hidden = hidden.dims()[3];
        let left = hidden.clone().narrow(0, 0, 1).reshape([n, l, d_hidden]);
        let right = hidden
            .narrow(0, 1, 1)
            .reshape([n, l, d_hidden])
            .gather(1, reverse_index(mask, d_hidden));
        Tensor::cat(vec![left, right], 2)
    }

    fn pool(&self, hidden: Tensor<3>, mask: Tensor<2, Bool>) -> Tensor<2> {
        if self.mean_pooling {
            return masked_mean(hidden, mask);
        }
        let dims = hidden.dims();
        let padding = mask.bool_not().reshape([dims[0], dims[1], 1]).expand(dims);
        hidden
            .mask_fill(padding, -1.0e9)
            .max_dim(1)
            .reshape([dims[0], dims[2]])
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

    /// Our fused layer computes what Burn's `Lstm` computes with the same weights.
    #[test]
    fn fused_layer_equals_burns_lstm() {
        use burn::nn::LstmConfig;
        let device = Device::flex();
        device.seed(3);
        let (d_in, d, n, l) = (3, 4, 2, 5);
        let reference = LstmConfig::new(d_in, d, true).init(&device);
        let gates = [
            &reference.input_gate,
            reference.forget_gate.as_ref().expect("forget gate"),
            &reference.cell_gate,
            &reference.output_gate,
        ];
        let cat = |f: &dyn Fn(&burn::nn::GateController) -> Tensor<2>| {
            Tensor::cat(gates.iter().map(|g| f(g)).collect(), 1)
        };
        let w_in = cat(&|g| g.input_transform.weight.val());
        let w_rec = cat(&|g| g.hidden_transform.weight.val());
        let bias = cat(&|g| {
            let b = |lin: &Linear| lin.bias.as_ref().expect("bias").val().reshape([1, d]);
            b(&g.input_transform) + b(&g.hidden_transform)
        });
        let both = |t: Tensor<2>| Tensor::stack::<3>(vec![t.clone(), t], 0);
        let layer = BiLayer {
            input: Param::from_tensor(both(w_in)),
            recurrent: Param::from_tensor(both(w_rec)),
            bias: Param::from_tensor(both(bias)),
        };
        let x = Tensor::<3>::random(
            [n, l, d_in],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let (want, _) = reference.forward(x.clone(), None);
        let got = layer
            .run(Tensor::stack::<4>(vec![x.clone(), x], 0))
            .slice([0..1])
            .reshape([n, l, d]);
        let diff: f32 = (got - want).abs().max().into_scalar();
        assert!(diff < 1e-5, "fused LSTM differs from Burn's by {diff}");
    }

    /// The fused path (flex) equals the plain-Burn layer, forward and gradients.
    #[test]
    fn fused_layer_equals_plain_layer_with_gradients() {
        fused_equals_plain_on(Device::flex().autodiff());
    }

    /// The same on LibTorch's CPU device (ATen's LSTM), with `--features tch`.
    #[cfg(feature = "tch")]
    #[test]
    fn tch_fused_layer_equals_plain_layer_with_gradients() {
        fused_equals_plain_on(Device::libtorch().autodiff());
    }

    fn fused_equals_plain_on(device: Device) {
        assert!(mixup_kernels::has_fused_lstm(&device));
        device.seed(9);
        let layer = BiLayer::init(6, 5, &device);
        let x = Tensor::<4>::random(
            [2, 3, 7, 6],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        )
        .require_grad();
        let weights = Tensor::<4>::random(
            [2, 3, 7, 5],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let fused = layer.run(x.clone());
        let plain = layer.run_plain(x.clone());
        let max = |a: Tensor<4>, b: Tensor<4>| -> f32 { (a - b).abs().max().into_scalar() };
        assert!(max(fused.clone(), plain.clone()) < 1e-5);
        let gf = (fused * weights.clone()).sum().backward();
        let gp = (plain * weights).sum().backward();
        let grad_diff = |p: &Param<Tensor<3>>| -> f32 {
            let (a, b) = (p.val().grad(&gf), p.val().grad(&gp));
            (a.expect("grad") - b.expect("grad"))
                .abs()
                .max()
                .into_scalar()
        };
        for (name, p) in [
            ("input", &layer.input),
            ("recurrent", &layer.recurrent),
            ("bias", &layer.bias),
        ] {
            let d = grad_diff(p);
            assert!(d < 1e-5, "{name} gradients differ by {d}");
        }
        let dx: f32 = (x.grad(&gf).expect("grad") - x.grad(&gp).expect("grad"))
            .abs()
            .max()
            .into_scalar();
        assert!(dx < 1e-5, "input gradients differ by {dx}");
    }

    /// On Flex the layer reverses direction 1 inside the fused op; over a padded batch that
    /// equals the gathers around the layer, forward and gradients.
    #[cfg(feature = "flex")]
    #[test]
    fn in_op_reversal_equals_gathered_layer_with_gradients() {
        let device = Device::flex().autodiff();
        device.seed(4);
        let layer = BiLayer::init(6, 5, &device);
        let (_, mask) = toy_batch(&device);
        let [n, l] = mask.dims();
        let x = zero_padding(
            Tensor::<3>::random(
                [n, l, 6],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            ),
            mask.clone(),
        )
        .require_grad();
        let weights = Tensor::<3>::random(
            [n, l, 10],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let model = model(&device, false);
        let fused = model.run_layer(&layer, x.clone(), mask.clone());
        let gathered = BiLstmClassifier::run_layer_gathered(&layer, x.clone(), mask.clone());
        // Padding positions differ in what they hold (the pooling masks them); compare the
        // valid ones.
        let valid = mask.float().unsqueeze_dim::<3>(2);
        let max = |a: Tensor<3>, b: Tensor<3>| -> f32 { (a - b).abs().max().into_scalar() };
        assert!(
            max(
                fused.clone() * valid.clone(),
                gathered.clone() * valid.clone()
            ) < 1e-5
        );
        let gf = (fused * valid.clone() * weights.clone()).sum().backward();
        let gg = (gathered * valid * weights).sum().backward();
        for (name, p) in [
            ("input", &layer.input),
            ("recurrent", &layer.recurrent),
            ("bias", &layer.bias),
        ] {
            let d: f32 = (p.val().grad(&gf).expect("grad") - p.val().grad(&gg).expect("grad"))
                .abs()
                .max()
                .into_scalar();
            assert!(d < 1e-5, "{name} gradients differ by {d}");
        }
        let dx: f32 = (x.grad(&gf).expect("grad") - x.grad(&gg).expect("grad"))
            .abs()
            .max()
            .into_scalar();
        assert!(dx < 1e-5, "input gradients differ by {dx}");
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
