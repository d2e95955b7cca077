//! LayerNorm over the last axis as one fused op (Flex), with a hand-written backward.
//!
//! Burn 0.22.1 runs LayerNorm under autodiff as its default decomposition (mean, subtract,
//! square, mean, add, sqrt, divide, multiply, add: nine nodes, each with its own backward and
//! its own full-size intermediate); Flex's fused LayerNorm kernel is used only without
//! autodiff. [`layer_norm`] is one node. Where nothing is recorded it is Flex's own kernel;
//! the recorded forward computes each row's mean and `rstd = 1 / sqrt(var + eps)` (two passes
//! over the row, the variance of the centred values) and keeps them; the backward recomputes `x̂ = (x - mean) · rstd` and gives, per row,
//!
//! `dx = rstd · (g - mean(g) - x̂ · mean(g · x̂))` with `g = dy · γ`,
//!
//! and `dγ = Σ dy · x̂`, `dβ = Σ dy` over the rows (partial sums per fixed block of rows,
//! added in block order, so the result does not depend on thread scheduling).

use burn::{
    backend::{
        Autodiff, Flex,
        autodiff::{
            checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
            grads::Gradients,
            ops::{Backward, Ops, OpsKind},
        },
        backend_extension,
        flex::FlexTensor,
        tensor::FloatTensor,
    },
    nn::LayerNorm,
    tensor::{DType, Tensor, TensorData},
};
use rayon::prelude::*;

use crate::host::contiguous;

/// The extension trait: a backend that can run the fused LayerNorm.
#[backend_extension(Flex, Autodiff)]
pub trait LayerNormBackend: burn::backend::Backend {
    /// `x`: `[..., d]`, `gamma` and `beta`: `[d]`. Returns `(x - mean) / sqrt(var + eps) · γ + β`
    /// over the last axis.
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f32,
    ) -> FloatTensor<Self>;
}

/// `norm.forward(x)` for a [`LayerNorm`] built with `epsilon` (Burn keeps the module's epsilon
/// private, so the model passes the one it built the norm with): one fused node on Flex for
/// `f32` tensors with a bias, `norm.forward(x)` everywhere else.
pub fn layer_norm<const D: usize>(norm: &LayerNorm, x: Tensor<D>, epsilon: f64) -> Tensor<D> {
    let Some(beta) = &norm.beta else {
        return norm.forward(x);
    };
    if !crate::has_fused_kernels(&x.device()) || x.dtype() != DType::F32 {
        return norm.forward(x);
    }
    let shape = x.shape();
    let gamma = norm.gamma.val();
    assert_eq!(
        shape.dims::<D>()[D - 1],
        gamma.dims()[0],
        "layer_norm: the input's last axis is not the norm's width"
    );
    Tensor::from_dispatch(
        <burn::backend::Dispatch as LayerNormBackend>::fused_layer_norm(
            x.into_dispatch(),
            gamma.into_dispatch(),
            beta.val().into_dispatch(),
            epsilon as f32,
        ),
    )
}

/// Rows per block of the parallel loops (a block's partial sums of `dγ`, `dβ` are one unit).
const ROWS_PER_BLOCK: usize = 32;

fn slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("layer_norm kernels: contiguous f32 tensor")
}

/// What the backward needs from the forward.
#[derive(Clone, Debug)]
pub struct Saved {
    /// The input (contiguous), `[..., d]`.
    x: FlexTensor,
    /// The scale `[d]`.
    gamma: FlexTensor,
    /// Each row's mean.
    mean: Vec<f32>,
    /// Each row's `1 / sqrt(var + eps)`.
    rstd: Vec<f32>,
}

/// Flex's own fused LayerNorm kernel, for a forward that keeps nothing.
fn forward(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, eps: f32) -> FlexTensor {
    burn::backend::flex::ops::activation::layer_norm(x, gamma, Some(beta), eps as f64)
}

/// The training forward on Flex tensors: the output and what the backward needs (each row's
/// mean and `rstd`, which Flex's kernel does not return).
fn forward_saving(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    eps: f32,
) -> (FlexTensor, Saved) {
    let x = contiguous(x);
    let gamma = contiguous(gamma);
    let beta = contiguous(beta);
    let shape = x.layout().shape().clone();
    let d = *shape.last().expect("layer_norm: a tensor of rank 0");
    let (xs, gs, bs) = (slice(&x), slice(&gamma), slice(&beta));
    let rows = xs.len() / d.max(1);
    let mut out = vec![0f32; xs.len()];
    let mut mean = vec![0f32; rows];
    let mut rstd = vec![0f32; rows];
    out.par_chunks_mut(d * ROWS_PER_BLOCK)
        .zip(xs.par_chunks(d * ROWS_PER_BLOCK))
        .zip(mean.par_chunks_mut(ROWS_PER_BLOCK))
        .zip(rstd.par_chunks_mut(ROWS_PER_BLOCK))
        .for_each(|(((o, xb), mb), rb)| {
            for (((orow, xrow), m), r) in o
                .chunks_mut(d)
                .zip(xb.chunks(d))
                .zip(mb.iter_mut())
                .zip(rb.iter_mut())
            {
                let mu = xrow.iter().sum::<f32>() / d as f32;
                let var = xrow.iter().map(|v| (v - mu) * (v - mu)).sum::<f32>() / d as f32;
                let inv = 1.0 / (var + eps).sqrt();
                for (((ov, xv), g), b) in orow.iter_mut().zip(xrow).zip(gs).zip(bs) {
                    *ov = (xv - mu) * inv * g + b;
                }
                (*m, *r) = (mu, inv);
            }
        });
    let out = FlexTensor::from_data(TensorData::new(out, shape));
    let saved = Saved {
        x,
        gamma,
        mean,
        rstd,
    };
    (out, saved)
}

/// Backward on Flex tensors: the gradients of `x`, `gamma` and `beta` given the output's.
fn backward(saved: &Saved, grad: &FlexTensor) -> (FlexTensor, FlexTensor, FlexTensor) {
    let grad = contiguous(grad);
    let shape = saved.x.layout().shape().clone();
    let d = *shape.last().expect("layer_norm: a tensor of rank 0");
    let (xs, gs, dys) = (slice(&saved.x), slice(&saved.gamma), slice(&grad));
    let mut dx = vec![0f32; xs.len()];
    // One (dγ, dβ) partial per block of rows, in block order.
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(d * ROWS_PER_BLOCK)
        .zip(xs.par_chunks(d * ROWS_PER_BLOCK))
        .zip(dys.par_chunks(d * ROWS_PER_BLOCK))
        .enumerate()
        .map(|(block, ((dxb, xb), dyb))| {
            let mut dgamma = vec![0f32; d];
            let mut dbeta = vec![0f32; d];
            let first = block * ROWS_PER_BLOCK;
            for (row, ((dxr, xr), dyr)) in dxb
                .chunks_mut(d)
                .zip(xb.chunks(d))
                .zip(dyb.chunks(d))
                .enumerate()
            {
                let (mu, inv) = (saved.mean[first + row], saved.rstd[first + row]);
                let (mut sum_g, mut sum_gx) = (0f32, 0f32);
                for (j, (&xv, &dy)) in xr.iter().zip(dyr).enumerate() {
                    let xhat = (xv - mu) * inv;
                    let g = dy * gs[j];
                    sum_g += g;
                    sum_gx += g * xhat;
                    dgamma[j] += dy * xhat;
                    dbeta[j] += dy;
                }
                let (mean_g, mean_gx) = (sum_g / d as f32, sum_gx / d as f32);
                for (j, (dxv, (&xv, &dy))) in dxr.iter_mut().zip(xr.iter().zip(dyr)).enumerate() {
                    let xhat = (xv - mu) * inv;
                    *dxv = inv * (dy * gs[j] - mean_g - xhat * mean_gx);
                }
            }
            (dgamma, dbeta)
        })
        .collect();
    let mut dgamma = vec![0f32; d];
    let mut dbeta = vec![0f32; d];
    for (pg, pb) in &partials {
        for j in 0..d {
            dgamma[j] += pg[j];
            dbeta[j] += pb[j];
        }
    }
    (
        FlexTensor::from_data(TensorData::new(dx, shape)),
        FlexTensor::from_data(TensorData::new(dgamma, [d])),
        FlexTensor::from_data(TensorData::new(dbeta, [d])),
    )
}

impl LayerNormBackend for Flex {
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f32,
    ) -> FloatTensor<Self> {
        forward(x, gamma, beta, epsilon)
    }
}

#[derive(Debug)]
struct LayerNormBackward;

impl Backward<Flex, 3> for LayerNormBackward {
    type State = Saved;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (dx, dgamma, dbeta) = backward(&ops.state, &grad);
        for (node, g) in [(node_x, dx), (node_gamma, dgamma), (node_beta, dbeta)] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, g);
            }
        }
    }
}

impl<C: CheckpointStrategy> LayerNormBackend for Autodiff<Flex, C> {
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f32,
    ) -> FloatTensor<Self> {
        match LayerNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (out, saved) =
                    forward_saving(x.primitive(), gamma.primitive(), beta.primitive(), epsilon);
                prep.finish(saved, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(
                x.primitive().clone(),
                gamma.primitive().clone(),
                beta.primitive().clone(),
                epsilon,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::{
        module::Param,
        nn::LayerNormConfig,
        tensor::{Device, Distribution},
    };

    fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    /// A norm of width `d` with random scale and shift (so their gradients are not trivial).
    fn norm(d: usize, eps: f64, device: &Device) -> LayerNorm {
        let mut norm = LayerNormConfig::new(d).with_epsilon(eps).init(device);
        norm.gamma = Param::from_tensor(
            Tensor::<1>::random([d], Distribution::Normal(1.0, 0.3), device).require_grad(),
        );
        norm.beta = Some(Param::from_tensor(
            Tensor::<1>::random([d], Distribution::Normal(0.0, 0.3), device).require_grad(),
        ));
        norm
    }

    /// Forward and every gradient equal Burn's LayerNorm (its autodiff decomposition), on rows
    /// of a non-contiguous input (a swapped view), with a weighted loss, at two epsilons and
    /// more rows than one block.
    #[test]
    fn forward_and_gradients_equal_burns_layer_norm() {
        let device = Device::flex().autodiff();
        device.seed(3);
        for (eps, rows) in [(1e-5, 7), (1e-12, 70)] {
            let d = 12;
            let norm = norm(d, eps, &device);
            let base = Tensor::<3>::random([d, rows, 2], Distribution::Normal(0.5, 2.0), &device)
                .require_grad();
            // [2, rows, d], not contiguous; built twice, as a backward consumes its graph.
            let x = || base.clone().swap_dims(0, 2);
            let weights =
                Tensor::<3>::random([2, rows, d], Distribution::Normal(0.0, 1.0), &device);
            let fused = layer_norm(&norm, x(), eps);
            let plain = norm.forward(x());
            let d_out = max_diff(fused.clone(), plain.clone());
            assert!(d_out < 1e-5, "eps {eps}: outputs differ by {d_out}");
            let g_fused = (fused * weights.clone()).sum().backward();
            let g_plain = (plain * weights).sum().backward();
            let dx = max_diff(
                base.grad(&g_fused).expect("dx"),
                base.grad(&g_plain).expect("dx"),
            );
            let gamma = norm.gamma.val();
            let beta = norm.beta.as_ref().expect("beta").val();
            let dg = max_diff(
                gamma.grad(&g_fused).expect("dgamma"),
                gamma.grad(&g_plain).expect("dgamma"),
            );
            let db = max_diff(
                beta.grad(&g_fused).expect("dbeta"),
                beta.grad(&g_plain).expect("dbeta"),
            );
            assert!(dx < 1e-4, "eps {eps}: input gradients differ by {dx}");
            assert!(dg < 1e-4 && db < 1e-4, "eps {eps}: dgamma {dg}, dbeta {db}");
        }
    }

    #[test]
    fn runs_without_autodiff_and_falls_back_without_a_bias() {
        let device = Device::flex();
        let norm = LayerNormConfig::new(6).init(&device);
        let x = Tensor::<2>::random([5, 6], Distribution::Normal(0.0, 3.0), &device);
        assert!(max_diff(layer_norm(&norm, x.clone(), 1e-5), norm.forward(x.clone())) < 1e-5);
        let no_bias = LayerNormConfig::new(6).with_bias(false).init(&device);
        assert!(max_diff(layer_norm(&no_bias, x.clone(), 1e-5), no_bias.forward(x)) < 1e-6);
    }
}
