//! Fused kernels of the mixup zoo, added to Burn through its backend extensions
//! (`#[backend_extension]`), never by forking Burn.
//!
//! One file per op, each with a reference test against the plain Burn ops it replaces:
//! - [`lstm`]: one LSTM layer's recurrence over a whole sequence, both directions at once
//!   (direction 1 reversed within each row's length inside the op), with a hand-written
//!   backward (Flex); [`bilstm_layer()`] is the whole layer.
//! - `lstm_tch`: the same layer on LibTorch's CPU device through ATen's own LSTM (oneDNN), its
//!   backward by LibTorch's autograd, one node in Burn's graph (feature `tch`).
//! - `norm_tch`, `softmax_tch`: LayerNorm and softmax on LibTorch's CPU device as one node each
//!   (ATen's kernels and backward, feature `tch`); the three LibTorch ops share `torch_node`, the
//!   bridge that runs a LibTorch computation under its autograd as one node of Burn's graph.
//! - [`adam`]: Adam and AdamW as one pass over parameter, gradient and moments on Flex, through
//!   Burn's `Optimizer` trait with Burn's state type (records and resume unchanged); on
//!   LibTorch's CPU device (`adam_tch`, feature `tch`) the same update as a few in-place ATen
//!   calls.
//! - [`mod@norm`]: LayerNorm over the last axis, one node with a hand-written backward
//!   (Flex); Burn's autodiff runs about nine ops for it.
//! - [`mod@softmax`]: softmax over the last axis, one node with a hand-written backward
//!   (Flex); Burn's autodiff runs five ops for it.
//! - [`mod@dropout`]: dropout whose mask is drawn on the host by a fast counter-based generator on
//!   Flex and on LibTorch's CPU device ([`has_host_dropout`]; one multiply in the graph); other
//!   backends keep Burn's dropout.
//!
//! Models call the functions here and never name a backend: [`has_fused_lstm`] says whether a
//! device has the fused path, and the model falls back to plain Burn ops where it has not;
//! [`layer_norm()`] and [`softmax()`](fn@softmax) fall back by themselves ([`has_fused_kernels`]).
//! - [`mod@windows`]: the sliding windows of a 1-D convolution (im2col) in one pass, and its
//!   backward in one pass (Flex); Burn's slices and concatenation allocate a zeroed padded
//!   tensor per slice in the backward.
//! - [`mod@gelu`]: the exact GELU, forward and backward vectorised (Flex's own computes `erf`
//!   element by element through `libm`).

// The list above links the Flex kernels' modules, which exist only with the `flex` feature.
#![cfg_attr(not(feature = "flex"), allow(rustdoc::broken_intra_doc_links))]

pub mod adam;
#[cfg(feature = "tch")]
mod adam_tch;
pub mod device;
pub mod dropout;
#[cfg(feature = "flex")]
pub mod gelu;
#[cfg(feature = "flex")]
mod host;
#[cfg(feature = "flex")]
pub mod lstm;
#[cfg(feature = "tch")]
pub mod lstm_tch;
pub mod math;
#[cfg(feature = "flex")]
pub mod norm;
#[cfg(feature = "tch")]
pub mod norm_tch;
#[cfg(feature = "flex")]
pub mod softmax;
#[cfg(feature = "tch")]
pub mod softmax_tch;
#[cfg(test)]
#[cfg_attr(not(any(feature = "flex", feature = "tch")), allow(unused))]
mod testing;
#[cfg(feature = "tch")]
mod torch_node;
#[cfg(feature = "flex")]
pub mod windows;

pub use adam::{FusedAdam, FusedAdamW};
pub use device::{has_fused_kernels, has_fused_lstm, has_host_dropout, is_host_device};
pub use dropout::{dropout, dropout_stream, fork_dropout, seed_dropout};

/// `norm.forward(x)` for a LayerNorm built with `epsilon`: the fused op of [`mod@norm`] where
/// [`has_fused_kernels`], ATen's LayerNorm as one node on LibTorch's CPU device (feature `tch`),
/// Burn's LayerNorm elsewhere.
pub fn layer_norm<const D: usize>(
    norm: &burn::nn::LayerNorm,
    x: burn::tensor::Tensor<D>,
    epsilon: f64,
) -> burn::tensor::Tensor<D> {
    #[cfg(feature = "flex")]
    if has_fused_kernels(&x.device()) {
        return norm::layer_norm(norm, x, epsilon);
    }
    #[cfg(feature = "tch")]
    if device::is_libtorch_cpu(&x.device()) {
        return norm_tch::layer_norm(norm, x, epsilon);
    }
    let _ = epsilon;
    norm.forward(x)
}

/// One bidirectional LSTM layer where [`has_fused_lstm`]: `x` is `[2, n, L, d_in]` (index 0 in
/// reading order, index 1 already reversed by the caller), `w_in` `[2, d_in, 4h]`, `w_rec`
/// `[2, h, 4h]`, `bias` `[2, 1, 4h]` (gate blocks i, f, g, o); returns the hidden states
/// `[2, n, L, h]` from zero states. On Flex: the input projections of every step as one product,
/// then the fused recurrence of [`lstm`]; on LibTorch's CPU: ATen's LSTM (`lstm_tch`).
///
/// # Panics
///
/// Where [`has_fused_lstm`] is false for the device (callers run their plain-Burn layer there),
/// or if the shapes do not fit.
#[allow(deprecated, unreachable_code, unused_variables)]
pub fn lstm_layer(
    x: burn::tensor::Tensor<4>,
    w_in: burn::tensor::Tensor<3>,
    w_rec: burn::tensor::Tensor<3>,
    bias: burn::tensor::Tensor<3>,
) -> burn::tensor::Tensor<4> {
    let device = x.device();
    #[cfg(feature = "tch")]
    if device::is_libtorch_cpu(&device) {
        return lstm_tch::lstm_layer(x, w_in, w_rec, bias);
    }
    #[cfg(feature = "flex")]
    if has_fused_kernels(&device) {
        // Both directions in the op's layout, [n, L, 2, *]; direction 1 is already reversed.
        let [_, n, l, d_in] = x.dims();
        let h = w_rec.dims()[1];
        let zx = x
            .reshape([2, n * l, d_in])
            .matmul(w_in)
            .add(bias)
            .reshape([2, n, l, 4 * h])
            .permute([1, 2, 0, 3])
            .reshape([n, l, 8 * h]);
        return lstm::lstm_recurrence(zx, w_rec, Vec::new())
            .reshape([n, l, 2, h])
            .permute([2, 0, 1, 3]);
    }
    panic!("lstm_layer: no fused LSTM on {device:?} (check has_fused_lstm)")
}

/// One bidirectional LSTM layer over right-padded rows, on Flex ([`has_fused_kernels`]): `x` is
/// `[n, L, d_in]` in reading order, `lens` each row's valid length; direction 1 runs over each
/// row reversed within its length, inside the op. Weights as in [`lstm_layer()`]. Returns `[n,
/// L, 2h]`, per position direction 0's hidden state then direction 1's: the input projections
/// of both directions are one product, then the fused recurrence of [`lstm`], with no gathers or
/// copies around it.
///
/// # Panics
///
/// Where [`has_fused_kernels`] is false for the device, or if the shapes or lengths do not fit.
#[cfg(feature = "flex")]
pub fn bilstm_layer(
    x: burn::tensor::Tensor<3>,
    lens: Vec<usize>,
    w_in: burn::tensor::Tensor<3>,
    w_rec: burn::tensor::Tensor<3>,
    bias: burn::tensor::Tensor<3>,
) -> burn::tensor::Tensor<3> {
    let [n, l, d_in] = x.dims();
    let h = w_rec.dims()[1];
    // [2, d_in, 4h] -> [d_in, 2 * 4h]: both directions' projections side by side.
    let w_in = w_in.swap_dims(0, 1).reshape([d_in, 8 * h]);
    let zx = x
        .reshape([n * l, d_in])
        .matmul(w_in)
        .add(bias.reshape([1, 8 * h]))
        .reshape([n, l, 8 * h]);
    lstm::lstm_recurrence(zx, w_rec, lens)
}

/// The exact (erf) GELU: the vectorised op of [`mod@gelu`] where [`has_fused_kernels`], Burn's
/// GELU elsewhere.
pub fn gelu<const D: usize>(x: burn::tensor::Tensor<D>) -> burn::tensor::Tensor<D> {
    #[cfg(feature = "flex")]
    if has_fused_kernels(&x.device()) {
        return gelu::gelu(x);
    }
    burn::tensor::activation::gelu(x)
}

/// The sliding windows of `x` (`[n, L, d]`) for a 1-D convolution as one product:
/// `[n, L, (left + right + 1) d]`, row `t` holding inputs `t - left ..= t + right`, zeros
/// beyond either end. One op with its own backward where [`has_fused_kernels`]
/// ([`mod@windows`]), [`sliding_windows_plain`] elsewhere.
pub fn sliding_windows(
    x: burn::tensor::Tensor<3>,
    left: usize,
    right: usize,
) -> burn::tensor::Tensor<3> {
    #[cfg(feature = "flex")]
    if has_fused_kernels(&x.device()) {
        return windows::windows(x, left, right);
    }
    sliding_windows_plain(x, left, right)
}

/// [`sliding_windows()`] in plain Burn ops: a zero-padded copy, one slice per offset,
/// concatenated (every backend; the reference of the fused op).
pub fn sliding_windows_plain(
    x: burn::tensor::Tensor<3>,
    left: usize,
    right: usize,
) -> burn::tensor::Tensor<3> {
    use burn::tensor::Tensor;
    let [n, l, d] = x.dims();
    let device = x.device();
    let mut parts = Vec::with_capacity(3);
    if left > 0 {
        parts.push(Tensor::zeros([n, left, d], &device));
    }
    parts.push(x);
    if right > 0 {
        parts.push(Tensor::zeros([n, right, d], &device));
    }
    let padded = Tensor::cat(parts, 1);
    let span = left + right + 1;
    Tensor::cat(
        (0..span).map(|o| padded.clone().narrow(1, o, l)).collect(),
        2,
    )
}

/// Softmax over the last axis: the fused op of [`mod@softmax`] where [`has_fused_kernels`],
/// ATen's softmax as one node on LibTorch's CPU device (feature `tch`),
/// Burn's softmax elsewhere.
pub fn softmax<const D: usize>(x: burn::tensor::Tensor<D>) -> burn::tensor::Tensor<D> {
    #[cfg(feature = "flex")]
    if has_fused_kernels(&x.device()) {
        return softmax::softmax(x);
    }
    #[cfg(feature = "tch")]
    if device::is_libtorch_cpu(&x.device()) {
        return softmax_tch::softmax(x);
    }
    burn::tensor::activation::softmax(x, D - 1)
}
