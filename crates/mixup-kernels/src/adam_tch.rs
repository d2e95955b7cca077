//! The Adam / AdamW update on LibTorch's CPU device as a few in-place ATen calls.
//!
//! Burn's Adam issues about eleven tensor ops per parameter through burn-tch, most of them
//! allocating a fresh output (the moments are cloned on the way, so burn-tch cannot reuse their
//! buffers). Here the moments and the parameter are updated in place, in Burn's arithmetic:
//!
//! - L2 decay (Adam only): `g + p · penalty`;
//! - `m ← lerp(m, g, 1 - b1)`, `v ← lerp(v, g², 1 - b2)` (= `m b1 + g (1 - b1)`, up to rounding);
//! - `p ← p · decay + k · m / (sqrt(v) · s + e)`, with Adam's `s = 1`, `e = eps sqrt(1 - b2^t)`,
//!   `k = -lr sqrt(1 - b2^t) / (1 - b1^t)`, `decay = 1`, and AdamW's `s = 1 / sqrt(1 - b2^t)`,
//!   `e = eps`, `k = -lr / (1 - b1^t)`, `decay = 1 - lr wd`.
//!
//! Adam without decay takes seven ATen calls per parameter and two temporaries (`g²` and the
//! denominator, from `square` and `sqrt`); AdamW's two extra scalings make nine calls, Adam's L2
//! decay two more calls and two more temporaries (`p · penalty`, the sum). A buffer another tensor still shares
//! (burn-tch's [`TchTensor::can_mut`]) is copied first, so nothing outside the optimiser sees a
//! change.

// Burn marks its LibTorch backend deprecated; this module exists for the users who build it.
#![allow(deprecated)]

use burn::{
    backend::{LibTorch, backend_extension, libtorch::TchTensor, tensor::FloatTensor},
    optim::AdaptiveMomentumState,
    tensor::Tensor,
};

/// The scalars of one update (see the module documentation).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scalars {
    pub b1: f32,
    pub b2: f32,
    /// L2 penalty added to the gradient (Adam's weight decay); 0 for none.
    pub penalty: f32,
    pub s: f32,
    pub e: f32,
    pub k: f32,
    pub decay: f32,
}

/// The extension trait: a backend that updates a parameter and its moments in place.
#[backend_extension(LibTorch)]
pub trait TchAdamBackend: burn::backend::Backend {
    /// One update; returns the new parameter, first and second moment.
    #[allow(clippy::too_many_arguments)]
    fn tch_adam_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        b1: f32,
        b2: f32,
        penalty: f32,
        s: f32,
        e: f32,
        k: f32,
        decay: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// `t` when no other tensor shares its buffer, else a copy of it.
fn owned(t: TchTensor) -> tch::Tensor {
    if t.can_mut() {
        t.tensor
    } else {
        t.tensor.copy()
    }
}

impl TchAdamBackend for LibTorch {
    fn tch_adam_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        b1: f32,
        b2: f32,
        penalty: f32,
        s: f32,
        e: f32,
        k: f32,
        decay: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        tch::no_grad(|| {
            let mut p = owned(param);
            let mut m = owned(moment_1);
            let mut v = owned(moment_2);
            let g = if penalty != 0.0 {
                &grad.tensor + &p * f64::from(penalty)
            } else {
                grad.tensor
            };
            let _ = m.lerp_(&g, f64::from(1.0 - b1));
            let _ = v.lerp_(&g.square(), f64::from(1.0 - b2));
            let mut denom = v.sqrt();
            if s != 1.0 {
                let _ = denom.g_mul_scalar_(f64::from(s));
            }
            let _ = denom.g_add_scalar_(f64::from(e));
            if decay != 1.0 {
                let _ = p.g_mul_scalar_(f64::from(decay));
            }
            // p + m / (denom / k) = p + k m / denom (a zero rate moves nothing).
            if k != 0.0 {
                let _ = denom.g_mul_scalar_(1.0 / f64::from(k));
                let _ = p.addcdiv_(&m, &denom);
            }
            (TchTensor::new(p), TchTensor::new(m), TchTensor::new(v))
        })
    }
}

/// One update of `tensor` on LibTorch's CPU device; the moments start at zero when there is
/// no state. Returns the new parameter and momentum state (time advanced).
pub(crate) fn step<const D: usize>(
    tensor: Tensor<D>,
    grad: Tensor<D>,
    momentum: Option<AdaptiveMomentumState<D>>,
    scalars: impl FnOnce(usize) -> Scalars,
) -> (Tensor<D>, AdaptiveMomentumState<D>) {
    let (time, m, v) = match momentum {
        Some(s) => (s.time + 1, s.moment_1, s.moment_2),
        None => (1, grad.zeros_like(), grad.zeros_like()),
    };
    let c = scalars(time);
    let (p, m, v) = <burn::backend::Dispatch as TchAdamBackend>::tch_adam_step(
        tensor.into_dispatch(),
        grad.into_dispatch(),
        m.into_dispatch(),
        v.into_dispatch(),
        c.b1,
        c.b2,
        c.penalty,
        c.s,
        c.e,
        c.k,
        c.decay,
    );
    (
        Tensor::from_dispatch(p),
        AdaptiveMomentumState::new(time, Tensor::from_dispatch(m), Tensor::from_dispatch(v)),
    )
}
