//! Adam as one pass over parameter, gradient and both moments (Flex).
//!
//! Burn's [`Adam`] updates a parameter with about ten tensor operations, each a full pass
//! over memory. [`FusedAdam`] implements Burn's public [`Optimizer`] trait with the same state
//! type ([`AdamState`]), so it slots into [`ModuleOptimizer`] (groups, learning-rate schedules,
//! records and therefore checkpoints and resume) exactly where Burn's Adam does. On the
//! devices of [`crate::is_host_device`] (Flex) with `f32` tensors it runs one loop, in place on the
//! parameter's and moments' buffers (a backend extension, `FlexAdamBackend`; a buffer another
//! tensor shares is copied first), that performs Burn's arithmetic in Burn's order (L2 decay `p * penalty + g`, moments `m b1 + g (1 - b1)` and
//! `v b2 + g^2 (1 - b2)`, update `m c / (sqrt v + eps sqrt(1 - b2^t))`, `p - u lr`); elsewhere,
//! or with AMSGrad, it calls Burn's Adam. [`FusedAdamW`] does the same for Burn's [`AdamW`]
//! (decoupled decay, [`AdamWState`]). On LibTorch's CPU device (feature `tch`) both run as a
//! few in-place ATen calls per parameter instead (`adam_tch`).

#[cfg(feature = "flex")]
use burn::backend::{Flex, backend_extension, flex::FlexTensor, tensor::FloatTensor};
use burn::{
    optim::{
        Adam, AdamConfig, AdamState, AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState,
        LearningRate, ModuleOptimizer, Optimizer, decay::WeightDecayConfig,
    },
    tensor::{DType, Device, Tensor},
};
#[cfg(feature = "flex")]
use rayon::prelude::*;

#[cfg(feature = "flex")]
use crate::device::is_host_device;

/// Elements per rayon task of the update loop.
#[cfg(feature = "flex")]
const CHUNK: usize = 1 << 14;

/// Adam (optionally with L2 weight decay) with a fused host update; see the module docs.
#[derive(Clone)]
pub struct FusedAdam {
    beta_1: f32,
    beta_2: f32,
    #[cfg_attr(not(any(feature = "flex", feature = "tch")), allow(dead_code))]
    epsilon: f32,
    weight_decay: Option<f32>,
    burn: Adam,
}

impl FusedAdam {
    /// Adam with Burn's default betas (0.9, 0.999), this `epsilon` and, if given, L2 weight
    /// decay `penalty`.
    pub fn new(epsilon: f32, weight_decay: Option<f32>) -> Self {
        let config = AdamConfig::new()
            .with_epsilon(epsilon)
            .with_weight_decay(weight_decay.map(WeightDecayConfig::new));
        Self {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon,
            weight_decay,
            burn: config.build(),
        }
    }

    /// This optimiser for every parameter of a module.
    pub fn init(self) -> ModuleOptimizer {
        ModuleOptimizer::from(self)
    }
}

/// Where a fused update runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Path {
    /// Burn's own optimiser.
    Burn,
    /// The in-place host loop on Flex ([`host_update`]).
    #[cfg(feature = "flex")]
    Host,
    /// In-place ATen calls on LibTorch's CPU device (`adam_tch`).
    #[cfg(feature = "tch")]
    Tch,
}

/// Which update applies: the host loop on Flex, ATen's in-place calls on LibTorch's CPU
/// device, each for `f32` everywhere and no AMSGrad state; Burn's otherwise.
#[cfg_attr(not(any(feature = "flex", feature = "tch")), allow(unused_variables))]
fn path<const D: usize>(
    tensor: &Tensor<D>,
    grad: &Tensor<D>,
    momentum: Option<&AdaptiveMomentumState<D>>,
) -> Path {
    let f32_only = tensor.dtype() == DType::F32
        && grad.dtype() == DType::F32
        && momentum.is_none_or(|m| {
            m.max_moment_2.is_none()
                && m.moment_1.dtype() == DType::F32
                && m.moment_2.dtype() == DType::F32
        });
    let device = tensor.device();
    if !f32_only {
        return Path::Burn;
    }
    #[cfg(feature = "tch")]
    if crate::device::is_libtorch_cpu(&device) {
        #[cfg(test)]
        tests::TCH_STEPS.with(|n| n.set(n.get() + 1));
        return Path::Tch;
    }
    #[cfg(feature = "flex")]
    if is_host_device(&device) {
        return Path::Host;
    }
    Path::Burn
}

/// One update on Flex through [`FlexAdamBackend`] (AdamW's rule when `adamw`, with weight decay
/// when `decay`): the moments start at zero when there is no state; `constants(time)` gives
/// the scalars of step `time`. Returns the new parameter and
/// momentum state.
#[cfg(feature = "flex")]
fn host_update<const D: usize>(
    tensor: Tensor<D>,
    grad: Tensor<D>,
    momentum: Option<AdaptiveMomentumState<D>>,
    adamw: bool,
    decay: bool,
    constants: impl FnOnce(usize) -> Constants,
) -> (Tensor<D>, AdaptiveMomentumState<D>) {
    #[cfg(test)]
    tests::HOST_STEPS.with(|n| n.set(n.get() + 1));
    let (time, first, m, v) = match momentum {
        Some(s) => (s.time + 1, false, s.moment_1, s.moment_2),
        None => (1, true, grad.zeros_like(), grad.zeros_like()),
    };
    let c = constants(time);
    let (p, m, v) = <burn::backend::Dispatch as FlexAdamBackend>::flex_adam_step(
        tensor.into_dispatch(),
        grad.into_dispatch(),
        m.into_dispatch(),
        v.into_dispatch(),
        adamw,
        first,
        decay,
        [c.b1, c.b2, c.f1, c.f2, c.cf, c.denom_eps, c.lr, c.penalty],
        [c.eps, c.bias_1, c.bias_2],
    );
    (
        Tensor::from_dispatch(p),
        AdaptiveMomentumState::new(time, Tensor::from_dispatch(m), Tensor::from_dispatch(v)),
    )
}

/// The extension trait: Adam's update of a parameter and its moments in place, on Flex.
#[cfg(feature = "flex")]
#[backend_extension(Flex)]
pub trait FlexAdamBackend: burn::backend::Backend {
    /// One update: `adamw` picks the rule, `first` the first step (moments start at zero),
    /// `decay` whether weight decay applies; `scalars` are the private `Constants`' `b1, b2, f1, f2, cf,
    /// denom_eps, lr, penalty` and `adamw_scalars` its `eps, bias_1, bias_2`. Returns the new
    /// parameter, first and second moment (the inputs' buffers, updated in place where no
    /// other tensor shares them).
    #[allow(clippy::too_many_arguments)]
    fn flex_adam_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        adamw: bool,
        first: bool,
        decay: bool,
        scalars: [f32; 8],
        adamw_scalars: [f32; 3],
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// `t` itself when it is contiguous from its first element, else a contiguous copy; either way
/// the caller owns it.
#[cfg(feature = "flex")]
fn owned(t: FlexTensor) -> FlexTensor {
    if t.is_contiguous() && t.layout().start_offset() == 0 {
        t
    } else {
        t.to_contiguous()
    }
}

#[cfg(feature = "flex")]
impl FlexAdamBackend for Flex {
    fn flex_adam_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        adamw: bool,
        first: bool,
        decay: bool,
        [b1, b2, f1, f2, cf, denom_eps, lr, penalty]: [f32; 8],
        [eps, bias_1, bias_2]: [f32; 3],
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let c = Constants {
            b1,
            b2,
            f1,
            f2,
            cf,
            denom_eps,
            lr,
            penalty,
            eps,
            bias_1,
            bias_2,
        };
        let n = param.layout().shape().num_elements();
        let (mut p, mut m, mut v) = (owned(param), owned(moment_1), owned(moment_2));
        let g = owned(grad);
        // Copy-on-write: a buffer another tensor shares is copied first, so only this
        // optimiser's tensors change.
        let ps = &mut p.storage_mut::<f32>()[..n];
        let ms = &mut m.storage_mut::<f32>()[..n];
        let vs = &mut v.storage_mut::<f32>()[..n];
        let gs = &g.storage::<f32>()[..n];
        let chunk = |((p, g), m): ((&mut [f32], &[f32]), &mut [f32]), v: &mut [f32]| match (
            adamw, first, decay,
        ) {
            (false, true, true) => update_chunk::<true, true>(p, g, m, v, &c),
            (false, true, false) => update_chunk::<true, false>(p, g, m, v, &c),
            (false, false, true) => update_chunk::<false, true>(p, g, m, v, &c),
            (false, false, false) => update_chunk::<false, false>(p, g, m, v, &c),
            (true, true, true) => update_chunk_w::<true, true>(p, g, m, v, &c),
            (true, true, false) => update_chunk_w::<true, false>(p, g, m, v, &c),
            (true, false, true) => update_chunk_w::<false, true>(p, g, m, v, &c),
            (true, false, false) => update_chunk_w::<false, false>(p, g, m, v, &c),
        };
        ps.par_chunks_mut(CHUNK)
            .zip(gs.par_chunks(CHUNK))
            .zip(ms.par_chunks_mut(CHUNK))
            .zip(vs.par_chunks_mut(CHUNK))
            .for_each(|(pgm, v)| chunk(pgm, v));
        (p, m, v)
    }
}

/// The scalars of one update.
#[cfg(feature = "flex")]
struct Constants {
    b1: f32,
    b2: f32,
    f1: f32,
    f2: f32,
    cf: f32,
    denom_eps: f32,
    lr: f32,
    penalty: f32,
    /// AdamW only: `eps`, `1 - b1^t` and `1 - b2^t` (Adam folds them into `cf`, `denom_eps`).
    eps: f32,
    bias_1: f32,
    bias_2: f32,
}

/// One chunk of the update, in Burn's order of operations.
#[cfg(feature = "flex")]
#[inline(always)]
fn update_chunk<const FIRST: bool, const DECAY: bool>(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    c: &Constants,
) {
    for (((p, g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = if DECAY { *p * c.penalty + g } else { *g };
        if FIRST {
            *m = g * c.f1;
            *v = g * g * c.f2;
        } else {
            *m = *m * c.b1 + g * c.f1;
            *v = *v * c.b2 + g * g * c.f2;
        }
        let update = *m * c.cf / (v.sqrt() + c.denom_eps);
        *p -= update * c.lr;
    }
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    #[cfg_attr(not(any(feature = "flex", feature = "tch")), allow(unused_variables))]
    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let (b1, b2) = (self.beta_1, self.beta_2);
        let penalty = self.weight_decay;
        match path(&tensor, &grad, state.as_ref().map(|s| &s.momentum)) {
            Path::Burn => self.burn.step(lr, tensor, grad, state),
            #[cfg(feature = "tch")]
            Path::Tch => {
                let (tensor, momentum) =
                    crate::adam_tch::step(tensor, grad, state.map(|s| s.momentum), |time| {
                        let t = time as i32;
                        let bc2 = (1.0 - b2.powi(t)).sqrt();
                        crate::adam_tch::Scalars {
                            b1,
                            b2,
                            penalty: penalty.unwrap_or(0.0),
                            s: 1.0,
                            e: self.epsilon * bc2,
                            k: -(lr as f32) * bc2 / (1.0 - b1.powi(t)),
                            decay: 1.0,
                        }
                    });
                (tensor, Some(AdamState::new(momentum)))
            }
            #[cfg(feature = "flex")]
            Path::Host => {
                let (tensor, momentum) = host_update(
                    tensor,
                    grad,
                    state.map(|s| s.momentum),
                    false,
                    penalty.is_some(),
                    |time| {
                        let t = time as i32;
                        let bc2 = (1.0 - b2.powi(t)).sqrt();
                        Constants {
                            b1,
                            b2,
                            f1: 1.0 - b1,
                            f2: 1.0 - b2,
                            cf: bc2 / (1.0 - b1.powi(t)),
                            denom_eps: self.epsilon * bc2,
                            lr: lr as f32,
                            penalty: penalty.unwrap_or(0.0),
                            eps: self.epsilon,
                            bias_1: 1.0,
                            bias_2: 1.0,
                        }
                    },
                );
                (tensor, Some(AdamState::new(momentum)))
            }
        }
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <Adam as Optimizer>::to_device(state, device)
    }
}

/// AdamW (decoupled weight decay) with a fused host update: Burn's [`AdamW`] arithmetic in
/// Burn's order (moments as Adam's, `u = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)`,
/// `p (1 - lr wd) - u lr`) and Burn's [`AdamWState`]; elsewhere Burn's AdamW.
#[derive(Clone)]
pub struct FusedAdamW {
    beta_1: f32,
    beta_2: f32,
    #[cfg_attr(not(any(feature = "flex", feature = "tch")), allow(dead_code))]
    epsilon: f32,
    weight_decay: f32,
    burn: AdamW,
}

impl FusedAdamW {
    /// AdamW with Burn's default betas (0.9, 0.999), this `epsilon` and decoupled decay.
    pub fn new(epsilon: f32, weight_decay: f32) -> Self {
        let burn = AdamWConfig::new()
            .with_epsilon(epsilon)
            .with_weight_decay(weight_decay)
            .build();
        Self {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon,
            weight_decay,
            burn,
        }
    }

    /// This optimiser for every parameter of a module.
    pub fn init(self) -> ModuleOptimizer {
        ModuleOptimizer::from(self)
    }
}

/// One chunk of the AdamW update, in Burn's order of operations.
#[cfg(feature = "flex")]
#[inline(always)]
fn update_chunk_w<const FIRST: bool, const DECAY: bool>(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    c: &Constants,
) {
    // Here `penalty` is 1 - lr wd.
    for (((p, g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = *g;
        if FIRST {
            *m = g * c.f1;
            *v = g * g * c.f2;
        } else {
            *m = *m * c.b1 + g * c.f1;
            *v = *v * c.b2 + g * g * c.f2;
        }
        let update = (*m / c.bias_1) / ((*v / c.bias_2).sqrt() + c.eps);
        let decayed = if DECAY { *p * c.penalty } else { *p };
        *p = decayed - update * c.lr;
    }
}

impl Optimizer for FusedAdamW {
    type State<const D: usize> = AdamWState<D>;

    #[cfg_attr(not(any(feature = "flex", feature = "tch")), allow(unused_variables))]
    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let (b1, b2) = (self.beta_1, self.beta_2);
        let decay_rate = lr * self.weight_decay as f64;
        match path(&tensor, &grad, state.as_ref().map(|s| &s.momentum)) {
            Path::Burn => self.burn.step(lr, tensor, grad, state),
            #[cfg(feature = "tch")]
            Path::Tch => {
                let (tensor, momentum) =
                    crate::adam_tch::step(tensor, grad, state.map(|s| s.momentum), |time| {
                        let t = time as i32;
                        crate::adam_tch::Scalars {
                            b1,
                            b2,
                            penalty: 0.0,
                            s: 1.0 / (1.0 - b2.powi(t)).sqrt(),
                            e: self.epsilon,
                            k: -(lr as f32) / (1.0 - b1.powi(t)),
                            decay: (1.0 - decay_rate) as f32,
                        }
                    });
                (tensor, Some(AdamWState::new(momentum)))
            }
            #[cfg(feature = "flex")]
            Path::Host => {
                let (tensor, momentum) = host_update(
                    tensor,
                    grad,
                    state.map(|s| s.momentum),
                    true,
                    decay_rate != 0.0,
                    |time| {
                        let t = time as i32;
                        Constants {
                            b1,
                            b2,
                            f1: 1.0 - b1,
                            f2: 1.0 - b2,
                            cf: 1.0,
                            denom_eps: 0.0,
                            lr: lr as f32,
                            penalty: (1.0 - decay_rate) as f32,
                            eps: self.epsilon,
                            bias_1: 1.0 - b1.powi(t),
                            bias_2: 1.0 - b2.powi(t),
                        }
                    },
                );
                (tensor, Some(AdamWState::new(momentum)))
            }
        }
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <AdamW as Optimizer>::to_device(state, device)
    }
}

#[cfg(test)]
// Without a backend feature the fused paths and most helpers do not exist.
#[cfg_attr(not(any(feature = "flex", feature = "tch")), allow(unused))]
mod tests {
    use super::*;
    use burn::{
        module::Param,
        nn::{Linear, LinearConfig},
        optim::GradientsParams,
        tensor::TensorData,
    };

    /// Inputs from a formula, not Burn's process-wide RNG (which parallel tests share).
    fn input(rows: usize, cols: usize, step: usize, device: &Device) -> Tensor<2> {
        let values = (0..rows * cols)
            .map(|i| ((i as f32) * 0.37 + step as f32 * 1.3).sin())
            .collect::<Vec<f32>>();
        Tensor::from_data(TensorData::new(values, [rows, cols]), device)
    }

    #[cfg(feature = "flex")]
    fn train(optim: ModuleOptimizer, steps: usize) -> Linear {
        train_on(optim, steps, Device::flex().autodiff())
    }

    #[cfg(any(feature = "flex", feature = "tch"))]
    fn train_on(mut optim: ModuleOptimizer, steps: usize, device: Device) -> Linear {
        let mut model = LinearConfig::new(7, 5).init(&device);
        // Same initial weights for both runs, whatever else draws from the RNG meanwhile.
        model.weight = Param::from_tensor(input(7, 5, 99, &device).require_grad());
        model.bias = Some(Param::from_tensor(
            input(1, 5, 98, &device).reshape([5]).require_grad(),
        ));
        for step in 0..steps {
            let x = input(4, 7, step, &device);
            let loss = model.forward(x).powi_scalar(2).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            // A zero rate first, as a warm-up starts.
            let lr = if step == 0 { 0.0 } else { 1e-2 };
            model = optim.step(lr, model, grads);
        }
        model
    }

    thread_local! {
        /// Fused host updates taken on this thread (so a test can tell that the fused path
        /// ran for its own optimiser: tests run in parallel threads, and the optimiser's step
        /// runs on the thread that calls it).
        #[cfg(feature = "flex")]
        pub(super) static HOST_STEPS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
        /// LibTorch in-place updates taken on this thread.
        #[cfg(feature = "tch")]
        pub(super) static TCH_STEPS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    /// Updates counted by `counter` while `f` runs on this thread.
    #[cfg(any(feature = "flex", feature = "tch"))]
    fn counted<T>(
        counter: &'static std::thread::LocalKey<std::cell::Cell<usize>>,
        f: impl FnOnce() -> T,
    ) -> (T, usize) {
        let before = counter.with(|n| n.get());
        let out = f();
        (out, counter.with(|n| n.get()) - before)
    }

    /// On LibTorch's CPU device: the in-place ATen update against Burn's Adam and AdamW, with
    /// and without decay, and with a rate that is zero on the first step (a warm-up's start).
    /// The updates run in place: a parameter whose buffer another tensor still holds is copied
    /// first, so that tensor keeps its values, and the parameter still moves (over two steps,
    /// so the moments' buffers are reused too).
    #[cfg(any(feature = "flex", feature = "tch"))]
    fn shared_buffers_are_not_written(device: Device) {
        for mut optim in [
            FusedAdam::new(1e-8, None).init(),
            FusedAdamW::new(1e-8, 0.01).init(),
        ] {
            let mut model = LinearConfig::new(3, 2).init(&device);
            for step in 0..2 {
                let kept = model.weight.val().inner();
                let snapshot = kept.clone().into_data();
                let x = input(4, 3, step, &device);
                let grads = GradientsParams::from_grads(model.forward(x).sum().backward(), &model);
                model = optim.step(1e-2, model, grads);
                assert_eq!(
                    kept.into_data(),
                    snapshot,
                    "an update wrote into a shared buffer"
                );
                assert!(
                    model.weight.val().inner().into_data() != snapshot,
                    "nothing moved"
                );
            }
        }
    }

    #[cfg(feature = "flex")]
    #[test]
    fn flex_updates_leave_shared_buffers_alone() {
        let ((), n) = counted(&HOST_STEPS, || {
            shared_buffers_are_not_written(Device::flex().autodiff())
        });
        // Two optimisers, two steps, two parameters each.
        assert_eq!(n, 8, "the fused update did not run");
    }

    #[cfg(feature = "tch")]
    #[test]
    #[allow(deprecated)]
    fn tch_updates_equal_burns_over_100_steps() {
        let device = || Device::libtorch().autodiff();
        let cases: [(ModuleOptimizer, ModuleOptimizer, &str); 4] = [
            (
                AdamConfig::new().with_epsilon(1e-8).init(),
                FusedAdam::new(1e-8, None).init(),
                "adam",
            ),
            (
                AdamConfig::new()
                    .with_epsilon(1e-8)
                    .with_weight_decay(Some(WeightDecayConfig::new(0.01)))
                    .init(),
                FusedAdam::new(1e-8, Some(0.01)).init(),
                "adam + L2",
            ),
            (
                AdamWConfig::new()
                    .with_epsilon(1e-8)
                    .with_weight_decay(0.0)
                    .init(),
                FusedAdamW::new(1e-8, 0.0).init(),
                "adamw",
            ),
            (
                AdamWConfig::new()
                    .with_epsilon(1e-8)
                    .with_weight_decay(0.01)
                    .init(),
                FusedAdamW::new(1e-8, 0.01).init(),
                "adamw + decay",
            ),
        ];
        for (burn, ours, name) in cases {
            let (fused, n) = counted(&TCH_STEPS, || train_on(ours, 100, device()));
            assert_eq!(n, 200, "{name}: ATen path did not run");
            let d = max_diff(&train_on(burn, 100, device()), &fused);
            assert!(d < 1e-6, "{name}: parameters differ by {d}");
        }
        shared_buffers_are_not_written(device());
    }

    fn max_diff(a: &Linear, b: &Linear) -> f32 {
        let w: f32 = (a.weight.val() - b.weight.val()).abs().max().into_scalar();
        let bias = |l: &Linear| l.bias.as_ref().expect("bias").val();
        let c: f32 = (bias(a) - bias(b)).abs().max().into_scalar();
        w.max(c)
    }

    #[cfg(feature = "flex")]
    #[test]
    fn equals_burns_adam_over_100_steps() {
        for decay in [None, Some(0.01)] {
            let burn = AdamConfig::new()
                .with_epsilon(1e-8)
                .with_weight_decay(decay.map(WeightDecayConfig::new))
                .init();
            let ours = FusedAdam::new(1e-8, decay).init();
            let (fused, n) = counted(&HOST_STEPS, || train(ours, 100));
            // Two parameters (weight, bias) per step took the fused path.
            assert_eq!(n, 200, "the fused update did not run");
            let d = max_diff(&train(burn, 100), &fused);
            assert!(d < 1e-6, "decay {decay:?}: parameters differ by {d}");
        }
    }

    #[cfg(feature = "flex")]
    #[test]
    fn adamw_equals_burns_over_100_steps() {
        for decay in [0.0, 0.01] {
            let burn = AdamWConfig::new()
                .with_epsilon(1e-8)
                .with_weight_decay(decay)
                .init();
            let (fused, n) = counted(&HOST_STEPS, || {
                train(FusedAdamW::new(1e-8, decay).init(), 100)
            });
            assert_eq!(n, 200, "the fused update did not run");
            let d = max_diff(&train(burn, 100), &fused);
            assert!(d < 1e-6, "decay {decay}: parameters differ by {d}");
        }
    }

    #[test]
    fn record_round_trip_resumes_identically() {
        let factories: [fn() -> ModuleOptimizer; 2] = [
            || FusedAdam::new(1e-8, None).init(),
            || FusedAdamW::new(1e-8, 0.01).init(),
        ];
        for make in factories {
            let device = Device::flex().autodiff();
            let mut model = LinearConfig::new(3, 2).init(&device);
            let mut optim = make();
            let step = |model: Linear, optim: &mut ModuleOptimizer, seed: u64| {
                let x = input(4, 3, seed as usize, &device);
                let grads = GradientsParams::from_grads(model.forward(x).sum().backward(), &model);
                optim.step(1e-2, model, grads)
            };
            model = step(model, &mut optim, 5);
            // Resume from the record into a fresh optimiser and compare with carrying on.
            let mut resumed = make().load_record(optim.to_record());
            let a = step(model.clone(), &mut optim, 6);
            let b = step(model.clone(), &mut resumed, 6);
            assert_eq!(max_diff(&a, &b), 0.0);
            // A fresh optimiser (no state) would move differently: the record mattered.
            let c = step(model.clone(), &mut make(), 6);
            assert!(max_diff(&a, &c) > 0.0);
        }
    }
}
