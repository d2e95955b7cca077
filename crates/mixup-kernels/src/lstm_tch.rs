//! One bidirectional LSTM layer on LibTorch through ATen's own LSTM (`at::lstm`, which runs the
//! whole recurrence in oneDNN on the CPU), as a backend extension.
//!
//! [`lstm_layer`] takes the layer input `x` (`[2, n, L, d_in]`: index 0 in reading order, index 1
//! already reversed by the caller), the input weights `[2, d_in, 4h]`, the recurrent weights
//! `[2, h, 4h]` and the bias `[2, 1, 4h]` of our `BiLayer` (gate blocks i, f, g, o, the order
//! PyTorch uses), and returns the hidden states `[2, n, L, h]` from zero states: the two
//! directions are two unidirectional `at::lstm` calls, because the caller reverses each row
//! within its own length (so padding never reaches a valid position), which a bidirectional
//! `at::lstm` over the padded length would not.
//!
//! Under autodiff the layer is one node in Burn's graph whose backward is LibTorch's
//! (`torch_node`): one fused kernel each way, where Burn's plain ops make about 15 ATen
//! calls and autodiff nodes per step.
//!
//! Used on LibTorch's CPU device only ([`crate::has_fused_lstm`]): it was tested and measured
//! there; CUDA (cuDNN's LSTM through the same call) was not.

// Burn marks its LibTorch backend deprecated; this module exists for the users who build it.
#![allow(deprecated)]

use burn::{
    backend::{
        Autodiff, LibTorch, autodiff::checkpoint::strategy::CheckpointStrategy, backend_extension,
        tensor::FloatTensor,
    },
    tensor::Tensor,
};

use crate::torch_node;

/// The extension trait: a backend that runs a whole bidirectional LSTM layer as one op.
#[backend_extension(LibTorch, Autodiff)]
pub trait LstmLayerBackend: burn::backend::Backend {
    /// `x`: `[2, n, L, d_in]`; `w_in`: `[2, d_in, 4h]`; `w_rec`: `[2, h, 4h]`; `bias`:
    /// `[2, 1, 4h]`. Returns the hidden states `[2, n, L, h]`.
    fn lstm_layer(
        x: FloatTensor<Self>,
        w_in: FloatTensor<Self>,
        w_rec: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// Runs the layer through `at::lstm` (see the module documentation).
///
/// # Panics
///
/// If the shapes do not fit, or on a device without this op (callers check
/// [`crate::has_fused_lstm`]).
pub fn lstm_layer(x: Tensor<4>, w_in: Tensor<3>, w_rec: Tensor<3>, bias: Tensor<3>) -> Tensor<4> {
    let [two, _, _, d_in] = x.dims();
    let [two_w, h, g4] = w_rec.dims();
    assert!(
        two == 2
            && two_w == 2
            && g4 == 4 * h
            && w_in.dims() == [2, d_in, g4]
            && bias.dims() == [2, 1, g4],
        "lstm_layer: x {:?}, w_in {:?}, w_rec {:?} and bias {:?} do not fit",
        x.dims(),
        w_in.dims(),
        w_rec.dims(),
        bias.dims()
    );
    Tensor::from_dispatch(<burn::backend::Dispatch as LstmLayerBackend>::lstm_layer(
        x.into_dispatch(),
        w_in.into_dispatch(),
        w_rec.into_dispatch(),
        bias.into_dispatch(),
    ))
}

/// Both directions through `at::lstm`, batch-first, one layer each, zero initial states.
fn run(
    x: &tch::Tensor,
    w_in: &tch::Tensor,
    w_rec: &tch::Tensor,
    bias: &tch::Tensor,
) -> tch::Tensor {
    let size = x.size();
    let (n, h) = (size[1], w_rec.size()[1]);
    let options = (x.kind(), x.device());
    let zeros = tch::Tensor::zeros([1, n, h], options);
    let no_bias = tch::Tensor::zeros([4 * h], options);
    let directions: Vec<tch::Tensor> = (0..2)
        .map(|d| {
            // PyTorch's layout: W_ih [4h, d_in], W_hh [4h, h], b_ih and b_hh [4h].
            let params = [
                w_in.get(d).tr().contiguous(),
                w_rec.get(d).tr().contiguous(),
                bias.get(d).reshape([4 * h]),
                no_bias.shallow_clone(),
            ];
            let hx = [zeros.shallow_clone(), zeros.shallow_clone()];
            let (out, _, _) = x.get(d).lstm(&hx, &params, true, 1, 0.0, true, false, true);
            out
        })
        .collect();
    tch::Tensor::stack(&directions, 0)
}

impl LstmLayerBackend for LibTorch {
    fn lstm_layer(
        x: FloatTensor<Self>,
        w_in: FloatTensor<Self>,
        w_rec: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        torch_node::plain([x, w_in, w_rec, bias], |[x, w_in, w_rec, bias]| {
            run(x, w_in, w_rec, bias)
        })
    }
}

impl<C: CheckpointStrategy> LstmLayerBackend for Autodiff<LibTorch, C> {
    fn lstm_layer(
        x: FloatTensor<Self>,
        w_in: FloatTensor<Self>,
        w_rec: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        torch_node::node::<C, 4>([x, w_in, w_rec, bias], |[x, w_in, w_rec, bias]| {
            run(x, w_in, w_rec, bias)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{lstm_reference, max_diff};
    use burn::tensor::{Device, Distribution};

    /// The layer in plain Burn ops: the input projections, then the step-by-step recurrence.
    fn reference(x: Tensor<4>, w_in: Tensor<3>, w_rec: Tensor<3>, bias: Tensor<3>) -> Tensor<4> {
        let [_, n, l, d_in] = x.dims();
        let g4 = w_rec.dims()[2];
        let zx = x.reshape([2, n * l, d_in]).matmul(w_in) + bias;
        lstm_reference(zx.reshape([2, n, l, g4]), w_rec)
    }

    #[test]
    fn forward_and_gradients_equal_plain_burn() {
        let device = Device::libtorch().autodiff();
        device.seed(3);
        let (n, l, d_in, h) = (3, 7, 4, 5);
        let normal = |s: f64| Distribution::Normal(0.0, s);
        let x = Tensor::<4>::random([2, n, l, d_in], normal(1.0), &device).require_grad();
        let w_in = Tensor::<3>::random([2, d_in, 4 * h], normal(0.5), &device).require_grad();
        let w_rec = Tensor::<3>::random([2, h, 4 * h], normal(0.5), &device).require_grad();
        let bias = Tensor::<3>::random([2, 1, 4 * h], normal(0.5), &device).require_grad();
        let weights = Tensor::<4>::random([2, n, l, h], normal(1.0), &device);
        let args = || (x.clone(), w_in.clone(), w_rec.clone(), bias.clone());
        let (a, b, c, d) = args();
        let fused = lstm_layer(a, b, c, d);
        let (a, b, c, d) = args();
        let plain = reference(a, b, c, d);
        let d_out = max_diff(fused.clone(), plain.clone());
        assert!(d_out < 1e-5, "outputs differ by {d_out}");
        let g_fused = (fused * weights.clone()).sum().backward();
        let g_plain = (plain * weights).sum().backward();
        let d_x = max_diff(
            x.grad(&g_fused).expect("grad"),
            x.grad(&g_plain).expect("grad"),
        );
        assert!(d_x < 1e-5, "x gradients differ by {d_x}");
        for (name, p) in [("w_in", &w_in), ("w_rec", &w_rec), ("bias", &bias)] {
            let d = max_diff(
                p.grad(&g_fused).expect("grad"),
                p.grad(&g_plain).expect("grad"),
            );
            assert!(d < 1e-5, "{name} gradients differ by {d}");
        }
    }

    #[test]
    fn untracked_parents_get_no_gradient_and_inference_runs() {
        let device = Device::libtorch().autodiff();
        let (n, l, d_in, h) = (2, 3, 4, 2);
        let x = Tensor::<4>::random([2, n, l, d_in], Distribution::Default, &device);
        let w_in = Tensor::<3>::random([2, d_in, 4 * h], Distribution::Default, &device);
        let w_rec =
            Tensor::<3>::random([2, h, 4 * h], Distribution::Default, &device).require_grad();
        let bias = Tensor::<3>::zeros([2, 1, 4 * h], &device);
        let out = lstm_layer(x.clone(), w_in.clone(), w_rec.clone(), bias.clone());
        let grads = out.sum().backward();
        assert!(x.grad(&grads).is_none());
        assert!(w_rec.grad(&grads).is_some());
        // Without autodiff.
        let plain = Device::libtorch();
        let y = lstm_layer(
            Tensor::<4>::from_data(x.to_data(), &plain),
            Tensor::<3>::from_data(w_in.to_data(), &plain),
            Tensor::<3>::from_data(w_rec.to_data(), &plain),
            Tensor::<3>::from_data(bias.to_data(), &plain),
        );
        let r = reference(
            Tensor::<4>::from_data(x.to_data(), &plain),
            Tensor::<3>::from_data(w_in.to_data(), &plain),
            Tensor::<3>::from_data(w_rec.to_data(), &plain),
            Tensor::<3>::from_data(bias.to_data(), &plain),
        );
        assert!(max_diff(y, r) < 1e-5);
    }
}
