//! Sliding windows over a sequence (im2col for 1-D convolutions) as one op (Flex), with a
//! hand-written backward.
//!
//! [`windows`] turns `x` (`[n, L, d]`) into `[n, L, span d]`, where row `t` holds the inputs
//! `t - left ..= t + right` side by side, zeros beyond the sequence (`span = left + right + 1`):
//! a convolution over every filter width is then one matrix product. In Burn ops this is a
//! padded copy, `span` slices and a concatenation; their backward allocates a zeroed padded
//! tensor per slice and assigns into it. Here the forward is one pass of row copies and the
//! backward one pass of row sums, `dx[t] = Σ_o dy[t - o + left][o]`.

use burn::{
    backend::{
        Autodiff, Flex, autodiff::checkpoint::strategy::CheckpointStrategy, backend_extension,
        flex::FlexTensor, tensor::FloatTensor,
    },
    tensor::{DType, Tensor, TensorData},
};
use rayon::prelude::*;

use crate::host::{contiguous, unary_node};

/// The extension trait: a backend that can build the windows in one op.
#[backend_extension(Flex, Autodiff)]
pub trait WindowsBackend: burn::backend::Backend {
    /// `x`: `[n, L, d]`; returns `[n, L, (left + right + 1) d]`.
    fn sliding_windows(x: FloatTensor<Self>, left: usize, right: usize) -> FloatTensor<Self>;
}

/// The windows of `x` (`[n, L, d]`): `[n, L, (left + right + 1) d]`, row `t` holding inputs
/// `t - left ..= t + right` in order, zeros beyond either end. One op on Flex for `f32`
/// tensors; Burn's slices and concatenation elsewhere ([`crate::sliding_windows_plain`]).
/// Models call [`crate::sliding_windows()`].
pub fn windows(x: Tensor<3>, left: usize, right: usize) -> Tensor<3> {
    if !crate::has_fused_kernels(&x.device()) || x.dtype() != DType::F32 {
        return crate::sliding_windows_plain(x, left, right);
    }
    Tensor::from_dispatch(
        <burn::backend::Dispatch as WindowsBackend>::sliding_windows(
            x.into_dispatch(),
            left,
            right,
        ),
    )
}

/// Row `t` of sequence `s` reads input row `t + o - left` at offset `o`, when that exists.
fn source(t: usize, o: usize, left: usize, l: usize) -> Option<usize> {
    (t + o).checked_sub(left).filter(|&s| s < l)
}

fn forward(x: &FlexTensor, left: usize, right: usize) -> FlexTensor {
    let x = contiguous(x);
    let shape = x.layout().shape().clone();
    let (n, l, d) = (shape[0], shape[1], shape[2]);
    let span = left + right + 1;
    let xs = x.as_slice::<f32>().expect("windows: f32");
    let mut out = vec![0f32; n * l * span * d];
    if l > 0 && d > 0 {
        out.par_chunks_mut(l * span * d)
            .zip(xs.par_chunks(l * d))
            .for_each(|(out, x)| {
                for (t, row) in out.chunks_mut(span * d).enumerate() {
                    for (o, part) in row.chunks_mut(d).enumerate() {
                        if let Some(s) = source(t, o, left, l) {
                            part.copy_from_slice(&x[s * d..(s + 1) * d]);
                        }
                    }
                }
            });
    }
    FlexTensor::from_data(TensorData::new(out, [n, l, span * d]))
}

fn backward(grad: &FlexTensor, left: usize, right: usize) -> FlexTensor {
    let grad = contiguous(grad);
    let shape = grad.layout().shape().clone();
    let span = left + right + 1;
    let (n, l, d) = (shape[0], shape[1], shape[2] / span);
    let gs = grad.as_slice::<f32>().expect("windows: f32");
    let mut dx = vec![0f32; n * l * d];
    if l > 0 && d > 0 {
        dx.par_chunks_mut(l * d)
            .zip(gs.par_chunks(l * span * d))
            .for_each(|(dx, g)| {
                for (t, row) in g.chunks(span * d).enumerate() {
                    for (o, part) in row.chunks(d).enumerate() {
                        if let Some(s) = source(t, o, left, l) {
                            for (a, b) in dx[s * d..(s + 1) * d].iter_mut().zip(part) {
                                *a += b;
                            }
                        }
                    }
                }
            });
    }
    FlexTensor::from_data(TensorData::new(dx, [n, l, d]))
}

impl WindowsBackend for Flex {
    fn sliding_windows(x: FloatTensor<Self>, left: usize, right: usize) -> FloatTensor<Self> {
        forward(&x, left, right)
    }
}

impl<C: CheckpointStrategy> WindowsBackend for Autodiff<Flex, C> {
    fn sliding_windows(x: FloatTensor<Self>, left: usize, right: usize) -> FloatTensor<Self> {
        unary_node::<C, _>(
            x,
            |x| forward(x, left, right),
            |_, _| (left, right),
            |&(left, right), grad| backward(grad, left, right),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::max_diff;
    use burn::tensor::{Device, Distribution};

    /// Forward and gradient equal the slices-and-concatenation version, for windows reaching
    /// past both ends, one end, and sequences shorter than the window.
    #[test]
    fn forward_and_gradient_equal_plain_burn() {
        let device = Device::flex().autodiff();
        device.seed(1);
        for (l, left, right) in [(7, 2, 2), (5, 1, 2), (6, 0, 3), (2, 2, 2), (4, 0, 0)] {
            let base = Tensor::<3>::random([3, l, 4], Distribution::Normal(0.0, 1.0), &device)
                .require_grad();
            let span = left + right + 1;
            let weights =
                Tensor::<3>::random([3, l, span * 4], Distribution::Normal(0.0, 1.0), &device);
            let fused = windows(base.clone(), left, right);
            let plain = crate::sliding_windows_plain(base.clone(), left, right);
            assert_eq!(
                max_diff(fused.clone(), plain.clone()),
                0.0,
                "{l} {left} {right}"
            );
            let gf = (fused * weights.clone()).sum().backward();
            let gp = (plain * weights).sum().backward();
            let d = max_diff(base.grad(&gf).expect("grad"), base.grad(&gp).expect("grad"));
            assert!(d < 1e-5, "gradients differ by {d} ({l} {left} {right})");
        }
    }
}
