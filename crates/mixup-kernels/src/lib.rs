//! Fused kernels of the mixup zoo, added to Burn through its backend extensions
//! (`#[backend_extension]`), never by forking Burn.
//!
//! One file per op, each with a reference test against the plain Burn ops it replaces:
//! - [`lstm`]: one LSTM layer's recurrence over a whole sequence, both directions at once,
//!   with a hand-written backward (Flex).
//! - [`adam`]: Adam and AdamW as one pass over parameter, gradient and moments on Flex, through
//!   Burn's `Optimizer` trait with Burn's state type (records and resume unchanged).
//! - [`mod@norm`]: LayerNorm over the last axis, one node with a hand-written backward
//!   (Flex); Burn's autodiff runs about nine ops for it.
//! - [`mod@softmax`]: softmax over the last axis, one node with a hand-written backward
//!   (Flex); Burn's autodiff runs five ops for it.
//! - [`mod@dropout`]: dropout whose mask is drawn on the host by a fast counter-based generator on
//!   Flex (one multiply in the graph); other backends keep Burn's dropout.
//!
//! Models call the functions here and never name a backend: [`has_fused_lstm`] says whether a
//! device has the fused path, and the model falls back to plain Burn ops where it has not;
//! [`layer_norm()`] and [`softmax()`](fn@softmax) fall back by themselves ([`has_fused_kernels`]).
//! GELU needs nothing here: Burn's autodiff already runs it as one node with its own backward.

pub mod adam;
pub mod device;
pub mod dropout;
#[cfg(feature = "flex")]
mod host;
#[cfg(feature = "flex")]
pub mod lstm;
pub mod math;
#[cfg(feature = "flex")]
pub mod norm;
#[cfg(feature = "flex")]
pub mod softmax;

pub use adam::{FusedAdam, FusedAdamW};
pub use device::{has_fused_kernels, has_fused_lstm, is_host_device};
pub use dropout::{dropout, dropout_stream, fork_dropout, seed_dropout};

/// `norm.forward(x)` for a LayerNorm built with `epsilon`: the fused op of [`mod@norm`] where
/// [`has_fused_kernels`], Burn's LayerNorm elsewhere.
pub fn layer_norm<const D: usize>(
    norm: &burn::nn::LayerNorm,
    x: burn::tensor::Tensor<D>,
    epsilon: f64,
) -> burn::tensor::Tensor<D> {
    #[cfg(feature = "flex")]
    if has_fused_kernels(&x.device()) {
        return norm::layer_norm(norm, x, epsilon);
    }
    let _ = epsilon;
    norm.forward(x)
}

/// Softmax over the last axis: the fused op of [`mod@softmax`] where [`has_fused_kernels`],
/// Burn's softmax elsewhere.
pub fn softmax<const D: usize>(x: burn::tensor::Tensor<D>) -> burn::tensor::Tensor<D> {
    #[cfg(feature = "flex")]
    if has_fused_kernels(&x.device()) {
        return softmax::softmax(x);
    }
    burn::tensor::activation::softmax(x, D - 1)
}
