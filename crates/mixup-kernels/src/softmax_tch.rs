//! Softmax over the last axis on LibTorch's CPU device as one node: ATen's `softmax` and its
//! own backward (through `torch_node`), where Burn's autodiff records five ops.

// Burn marks its LibTorch backend deprecated; this module exists for the users who build it.
#![allow(deprecated)]

use burn::{
    backend::{
        Autodiff, LibTorch, autodiff::checkpoint::strategy::CheckpointStrategy, backend_extension,
        tensor::FloatTensor,
    },
    tensor::{DType, Tensor},
};

use crate::torch_node;

/// The extension trait: a backend that runs softmax over the last axis as one ATen op.
#[backend_extension(LibTorch, Autodiff)]
pub trait TchSoftmaxBackend: burn::backend::Backend {
    /// Softmax of `x` over its last axis.
    fn tch_softmax(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

fn run([x]: &[tch::Tensor; 1]) -> tch::Tensor {
    x.softmax(-1, x.kind())
}

impl TchSoftmaxBackend for LibTorch {
    fn tch_softmax(x: FloatTensor<Self>) -> FloatTensor<Self> {
        torch_node::plain([x], run)
    }
}

impl<C: CheckpointStrategy> TchSoftmaxBackend for Autodiff<LibTorch, C> {
    fn tch_softmax(x: FloatTensor<Self>) -> FloatTensor<Self> {
        torch_node::node::<C, 1>([x], run)
    }
}

/// Softmax over the last axis as one ATen op for `f32` tensors (Burn's softmax otherwise).
/// Callers check that the device is LibTorch's (`crate::softmax` does).
pub fn softmax<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if x.dtype() != DType::F32 {
        return burn::tensor::activation::softmax(x, D - 1);
    }
    Tensor::from_dispatch(<burn::backend::Dispatch as TchSoftmaxBackend>::tch_softmax(
        x.into_dispatch(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::max_diff;
    use burn::tensor::{Bool, Device, Distribution};

    #[test]
    fn equals_burns_softmax_with_gradient_on_masked_scores() {
        let device = Device::libtorch().autodiff();
        device.seed(6);
        let scores = Tensor::<4>::random([2, 3, 4, 5], Distribution::Normal(0.0, 3.0), &device);
        let mask = Tensor::<4, Bool>::from_data(
            burn::tensor::TensorData::new(
                (0..120).map(|i| i % 5 >= 3).collect::<Vec<_>>(),
                [2, 3, 4, 5],
            ),
            &device,
        );
        let x = scores.mask_fill(mask, -1e9).require_grad();
        let w = Tensor::<4>::random([2, 3, 4, 5], Distribution::Normal(0.0, 1.0), &device);
        let ours = softmax(x.clone());
        let burns = burn::tensor::activation::softmax(x.clone(), 3);
        let d = max_diff(ours.clone(), burns.clone());
        assert!(d < 1e-6, "outputs differ by {d}");
        let g1 = (ours * w.clone()).sum().backward();
        let g2 = (burns * w).sum().backward();
        let dx = max_diff(x.grad(&g1).expect("grad"), x.grad(&g2).expect("grad"));
        assert!(dx < 1e-6, "gradients differ by {dx}");
    }
}
