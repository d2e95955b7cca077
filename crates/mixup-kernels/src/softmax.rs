//! Softmax over the last axis as one fused op (Flex), with a hand-written backward.
//!
//! Burn 0.22.1 runs softmax under autodiff as its default decomposition (max, subtract, exp,
//! sum, divide: five nodes with their intermediates); Flex's fused row kernel is used only
//! without autodiff. [`softmax`] is one node: the forward is Flex's own fused kernel, the
//! output is kept, and the backward is, per row, `dx = y · (dy - Σ dy · y)`.

use burn::{
    backend::{
        Autodiff, Flex, autodiff::checkpoint::strategy::CheckpointStrategy, backend_extension,
        flex::FlexTensor, tensor::FloatTensor,
    },
    tensor::{DType, Tensor, TensorData, activation},
};
use rayon::prelude::*;

use crate::host::{contiguous, unary_node};

/// The extension trait: a backend that can run the fused softmax.
#[backend_extension(Flex, Autodiff)]
pub trait SoftmaxBackend: burn::backend::Backend {
    /// Softmax of `x` over its last axis.
    fn fused_softmax(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// `activation::softmax(x, D - 1)`: one fused node on Flex for `f32` tensors, Burn's softmax
/// everywhere else.
pub fn softmax<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !crate::has_fused_kernels(&x.device()) || x.dtype() != DType::F32 {
        return activation::softmax(x, D - 1);
    }
    Tensor::from_dispatch(<burn::backend::Dispatch as SoftmaxBackend>::fused_softmax(
        x.into_dispatch(),
    ))
}

/// Rows per task of the backward loop.
const ROWS_PER_TASK: usize = 64;

fn forward(x: &FlexTensor) -> FlexTensor {
    let rank = x.layout().shape().len();
    burn::backend::flex::ops::activation::softmax(x.clone(), rank - 1)
}

/// The input's gradient given the output `y` and its gradient.
fn backward(y: &FlexTensor, grad: &FlexTensor) -> FlexTensor {
    let (y, grad) = (contiguous(y), contiguous(grad));
    let shape = y.layout().shape().clone();
    let d = *shape.last().expect("softmax: a tensor of rank 0");
    let ys = y.as_slice::<f32>().expect("softmax: f32");
    let dys = grad.as_slice::<f32>().expect("softmax: f32");
    let mut dx = vec![0f32; ys.len()];
    if d > 0 {
        dx.par_chunks_mut(d * ROWS_PER_TASK)
            .zip(ys.par_chunks(d * ROWS_PER_TASK))
            .zip(dys.par_chunks(d * ROWS_PER_TASK))
            .for_each(|((dxb, yb), dyb)| {
                for ((dxr, yr), dyr) in dxb.chunks_mut(d).zip(yb.chunks(d)).zip(dyb.chunks(d)) {
                    let dot: f32 = yr.iter().zip(dyr).map(|(a, b)| a * b).sum();
                    for ((o, &yv), &dy) in dxr.iter_mut().zip(yr).zip(dyr) {
                        *o = yv * (dy - dot);
                    }
                }
            });
    }
    FlexTensor::from_data(TensorData::new(dx, shape))
}

impl SoftmaxBackend for Flex {
    fn fused_softmax(x: FloatTensor<Self>) -> FloatTensor<Self> {
        forward(&x)
    }
}

impl<C: CheckpointStrategy> SoftmaxBackend for Autodiff<Flex, C> {
    fn fused_softmax(x: FloatTensor<Self>) -> FloatTensor<Self> {
        unary_node::<C, _>(x, forward, |_, y| y.clone(), backward)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Bool, Device, Distribution};

    fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    /// Forward and gradient equal Burn's softmax on attention-shaped scores (a swapped,
    /// non-contiguous view, masked keys filled with -1e4 as the models do), weighted loss.
    #[test]
    fn forward_and_gradient_equal_burns_softmax() {
        let device = Device::flex().autodiff();
        device.seed(8);
        let base = Tensor::<4>::random([3, 2, 5, 7], Distribution::Normal(0.0, 3.0), &device)
            .require_grad();
        let mask = Tensor::<4, Bool>::from_data(
            TensorData::new(
                (0..3 * 2 * 7 * 5).map(|i| i % 7 == 3).collect::<Vec<_>>(),
                [3, 2, 7, 5],
            ),
            &device,
        );
        // Built twice, as a backward consumes its graph.
        let x = || base.clone().swap_dims(2, 3).mask_fill(mask.clone(), -1e4);
        let weights = Tensor::<4>::random([3, 2, 7, 5], Distribution::Normal(0.0, 1.0), &device);
        let fused = softmax(x());
        let plain = activation::softmax(x(), 3);
        assert!(max_diff(fused.clone(), plain.clone()) < 1e-6);
        let g_fused = (fused * weights.clone()).sum().backward();
        let g_plain = (plain * weights).sum().backward();
        let d = max_diff(
            base.grad(&g_fused).expect("grad"),
            base.grad(&g_plain).expect("grad"),
        );
        assert!(d < 1e-5, "gradients differ by {d}");
    }

    #[test]
    fn runs_without_autodiff() {
        let device = Device::flex();
        let x = Tensor::<3>::random([2, 3, 4], Distribution::Normal(0.0, 1.0), &device);
        assert!(max_diff(softmax(x.clone()), activation::softmax(x, 2)) < 1e-6);
    }
}
