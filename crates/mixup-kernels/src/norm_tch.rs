//! LayerNorm over the last axis on LibTorch's CPU device as one node: ATen's `layer_norm`
//! forward and its own fused backward (through `torch_node`), where Burn's autodiff records
//! its decomposition (about nine ops, each one ATen call and one node).

// Burn marks its LibTorch backend deprecated; this module exists for the users who build it.
#![allow(deprecated)]

use burn::{
    backend::{
        Autodiff, LibTorch, autodiff::checkpoint::strategy::CheckpointStrategy, backend_extension,
        tensor::FloatTensor,
    },
    nn::LayerNorm,
    tensor::{DType, Tensor},
};

use crate::torch_node;

/// The extension trait: a backend that runs LayerNorm as one ATen op.
#[backend_extension(LibTorch, Autodiff)]
pub trait TchLayerNormBackend: burn::backend::Backend {
    /// `x`: `[..., d]`, `gamma` and `beta`: `[d]`. Returns `(x - mean) / sqrt(var + eps) · γ + β`
    /// over the last axis.
    fn tch_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f32,
    ) -> FloatTensor<Self>;
}

fn run([x, gamma, beta]: &[tch::Tensor; 3], epsilon: f32) -> tch::Tensor {
    let d = gamma.size()[0];
    x.layer_norm([d], Some(gamma), Some(beta), epsilon as f64, false)
}

impl TchLayerNormBackend for LibTorch {
    fn tch_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f32,
    ) -> FloatTensor<Self> {
        torch_node::plain([x, gamma, beta], |t| run(t, epsilon))
    }
}

impl<C: CheckpointStrategy> TchLayerNormBackend for Autodiff<LibTorch, C> {
    fn tch_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f32,
    ) -> FloatTensor<Self> {
        torch_node::node::<C, 3>([x, gamma, beta], |t| run(t, epsilon))
    }
}

/// `norm.forward(x)` for a [`LayerNorm`] built with `epsilon`, as one ATen op, for `f32`
/// tensors with a bias; `norm.forward(x)` otherwise. Callers check that the device is
/// LibTorch's (`crate::layer_norm` does).
pub fn layer_norm<const D: usize>(norm: &LayerNorm, x: Tensor<D>, epsilon: f64) -> Tensor<D> {
    let Some(beta) = &norm.beta else {
        return norm.forward(x);
    };
    if x.dtype() != DType::F32 {
        return norm.forward(x);
    }
    Tensor::from_dispatch(
        <burn::backend::Dispatch as TchLayerNormBackend>::tch_layer_norm(
            x.into_dispatch(),
            norm.gamma.val().into_dispatch(),
            beta.val().into_dispatch(),
            epsilon as f32,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::max_diff;
    use burn::{
        nn::LayerNormConfig,
        tensor::{Device, Distribution},
    };

    #[test]
    fn equals_burns_layer_norm_with_gradients() {
        let device = Device::libtorch().autodiff();
        device.seed(4);
        for eps in [1e-5, 1e-12] {
            let mut norm = LayerNormConfig::new(6).with_epsilon(eps).init(&device);
            // Non-trivial scale and shift.
            norm.gamma = burn::module::Param::from_tensor(Tensor::<1>::random(
                [6],
                Distribution::Normal(1.0, 0.5),
                &device,
            ));
            norm.beta = Some(burn::module::Param::from_tensor(Tensor::<1>::random(
                [6],
                Distribution::Normal(0.0, 0.5),
                &device,
            )));
            let x = Tensor::<3>::random([2, 5, 6], Distribution::Normal(0.5, 2.0), &device)
                .require_grad();
            let w = Tensor::<3>::random([2, 5, 6], Distribution::Normal(0.0, 1.0), &device);
            let ours = layer_norm(&norm, x.clone(), eps);
            let burns = norm.forward(x.clone());
            let d = max_diff(ours.clone(), burns.clone());
            assert!(d < 1e-4, "outputs differ by {d} at eps {eps}");
            let g1 = (ours * w.clone()).sum().backward();
            let g2 = (burns * w).sum().backward();
            let dx = max_diff(x.grad(&g1).expect("grad"), x.grad(&g2).expect("grad"));
            assert!(dx < 1e-4, "input gradients differ by {dx}");
            let gamma = norm.gamma.val();
            let dg = max_diff(
                gamma.grad(&g1).expect("grad"),
                gamma.grad(&g2).expect("grad"),
            );
            assert!(dg < 1e-4, "scale gradients differ by {dg}");
            let beta = norm.beta.as_ref().expect("bias").val();
            let db = max_diff(beta.grad(&g1).expect("grad"), beta.grad(&g2).expect("grad"));
            assert!(db < 1e-4, "shift gradients differ by {db}");
        }
    }
}
