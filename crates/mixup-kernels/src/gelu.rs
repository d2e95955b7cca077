//! The exact (erf) GELU as one op (Flex) with a vectorised forward and backward.
//!
//! Burn 0.22.1 already runs GELU under autodiff as one node, but Flex computes `erf` element by
//! element through `libm` (a branchy scalar routine): in a MiniLM training step that was about
//! 14% of the time (`erff`, `erfc2` and `expf` in a `perf` profile of `mixup bench --recipe
//! models/minilm-trec-none.toml`). Here `Φ(x) = (1 + erf(x / √2)) / 2` is computed from a
//! Chebyshev fit of `erfc` with relative error about 1e-7 over the whole line (Press et al.,
//! *Numerical Recipes*, `erfcc`), which uses one `exp` and one division and vectorises
//! ([`math::vectorized`]); for `x < 0` it gives `Φ(x) = erfc(|x| / √2) / 2` directly, so the
//! small values of the negative tail keep their relative precision. Forward `y = x Φ(x)`,
//! backward `dx = dy (Φ(x) + x φ(x))` with `φ(x) = e^{-x²/2} / √(2π)`.

use burn::{
    backend::{
        Autodiff, Flex, autodiff::checkpoint::strategy::CheckpointStrategy, backend_extension,
        flex::FlexTensor, tensor::FloatTensor,
    },
    tensor::{DType, Tensor, TensorData, activation},
};
use rayon::prelude::*;

use crate::{
    host::{contiguous, unary_node},
    math,
};

/// The extension trait: a backend that can run the fused GELU.
#[backend_extension(Flex, Autodiff)]
pub trait GeluBackend: burn::backend::Backend {
    /// `x Φ(x)` elementwise.
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// `activation::gelu(x)` (the exact, erf-based GELU): one vectorised node on Flex for `f32`
/// tensors, Burn's GELU everywhere else. Models call [`crate::gelu()`].
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !crate::has_fused_kernels(&x.device()) || x.dtype() != DType::F32 {
        return activation::gelu(x);
    }
    Tensor::from_dispatch(<burn::backend::Dispatch as GeluBackend>::fused_gelu(
        x.into_dispatch(),
    ))
}

/// Elements per rayon task.
const BLOCK: usize = 1 << 14;

/// `Φ(x)` and `φ(x)`, the standard normal distribution and density at `x`.
#[inline(always)]
fn normal_cdf_pdf(x: f32) -> (f32, f32) {
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * z);
    // erfc(z) = t exp(-z² + P(t)), the Chebyshev fit of Numerical Recipes' `erfcc`.
    let p = -1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_204
                                + t * (1.488_515_9 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let half_erfc = 0.5 * t * math::exp(-z * z + p);
    let cdf = if x >= 0.0 { 1.0 - half_erfc } else { half_erfc };
    let pdf = 0.398_942_3 * math::exp(-0.5 * x * x);
    (cdf, pdf)
}

/// One block of the forward: `out = x Φ(x)`.
struct ForwardBlock<'a> {
    x: &'a [f32],
    out: &'a mut [f32],
}

impl pulp::NullaryFnOnce for ForwardBlock<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        for (o, &x) in self.out.iter_mut().zip(self.x) {
            *o = x * normal_cdf_pdf(x).0;
        }
    }
}

/// One block of the backward: `dx = dy (Φ(x) + x φ(x))`.
struct BackwardBlock<'a> {
    x: &'a [f32],
    dy: &'a [f32],
    dx: &'a mut [f32],
}

impl pulp::NullaryFnOnce for BackwardBlock<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        for ((o, &x), &dy) in self.dx.iter_mut().zip(self.x).zip(self.dy) {
            let (cdf, pdf) = normal_cdf_pdf(x);
            *o = dy * (cdf + x * pdf);
        }
    }
}

fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("gelu: contiguous f32 tensor")
}

fn forward(x: &FlexTensor) -> FlexTensor {
    let x = contiguous(x);
    let xs = values(&x);
    let mut out = vec![0f32; xs.len()];
    out.par_chunks_mut(BLOCK)
        .zip(xs.par_chunks(BLOCK))
        .for_each(|(out, x)| math::vectorized(ForwardBlock { x, out }));
    FlexTensor::from_data(TensorData::new(out, x.layout().shape().clone()))
}

fn backward(x: &FlexTensor, grad: &FlexTensor) -> FlexTensor {
    let (x, grad) = (contiguous(x), contiguous(grad));
    let (xs, dys) = (values(&x), values(&grad));
    let mut dx = vec![0f32; xs.len()];
    dx.par_chunks_mut(BLOCK)
        .zip(xs.par_chunks(BLOCK))
        .zip(dys.par_chunks(BLOCK))
        .for_each(|((dx, x), dy)| math::vectorized(BackwardBlock { x, dy, dx }));
    FlexTensor::from_data(TensorData::new(dx, x.layout().shape().clone()))
}

impl GeluBackend for Flex {
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        forward(&x)
    }
}

impl<C: CheckpointStrategy> GeluBackend for Autodiff<Flex, C> {
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        unary_node::<C, _>(x, forward, |x, _| x.clone(), backward)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::max_diff;
    use burn::tensor::{Device, Distribution};

    /// Φ and φ at known points, to 5e-6 relative, deep in the negative tail included (where
    /// `(1 + erf(x / √2)) / 2` in f32, Burn's route, cancels to a multiple of 6e-8; the
    /// remaining error is the f32 rounding of the exponent, about `z²` ulps).
    #[test]
    fn normal_cdf_is_accurate() {
        for (x, want) in [
            (0.0f32, 0.5f64),
            (1.0, 0.841_344_746_068_542_9),
            (-1.0, 0.158_655_253_931_457_05),
            (-3.0, 0.001_349_898_031_630_094_6),
            (-6.0, 9.865_876_450_376_98e-10),
            (2.5, 0.993_790_334_674_223_7),
        ] {
            let (cdf, pdf) = normal_cdf_pdf(x);
            let rel = ((cdf as f64 - want) / want).abs();
            assert!(
                rel < 5e-6,
                "Φ({x}) = {cdf}, want {want} (relative error {rel})"
            );
            let want_pdf = (-0.5 * (x as f64).powi(2)).exp() / (2.0 * std::f64::consts::PI).sqrt();
            assert!(((pdf as f64 - want_pdf) / want_pdf).abs() < 1e-6, "φ({x})");
        }
    }

    /// Forward and gradient equal Burn's GELU (a non-contiguous view, weighted loss).
    #[test]
    fn forward_and_gradient_equal_burns_gelu() {
        let device = Device::flex().autodiff();
        device.seed(3);
        let base = Tensor::<3>::random([4, 5, 3000], Distribution::Normal(0.0, 3.0), &device)
            .require_grad();
        let x = || base.clone().swap_dims(0, 1);
        let weights = Tensor::<3>::random([5, 4, 3000], Distribution::Normal(0.0, 1.0), &device);
        let fused = gelu(x());
        let plain = activation::gelu(x());
        let d = max_diff(fused.clone(), plain.clone());
        assert!(d < 2e-6, "outputs differ by {d}");
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
        let x = Tensor::<2>::random([3, 40], Distribution::Normal(0.0, 2.0), &device);
        assert!(max_diff(gelu(x.clone()), activation::gelu(x)) < 2e-6);
    }
}
