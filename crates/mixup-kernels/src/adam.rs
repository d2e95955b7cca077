//! Adam as one pass over parameter, gradient and both moments (Flex).
//!
//! Burn's [`Adam`] updates a parameter with about ten tensor operations, each a full pass
//! over memory. [`FusedAdam`] implements Burn's public [`Optimizer`] trait with the same state
//! type ([`AdamState`]), so it slots into [`ModuleOptimizer`] (groups, learning-rate schedules,
//! records and therefore checkpoints and resume) exactly where Burn's Adam does. On the
//! devices of [`is_host_device`] (Flex) with `f32` tensors it runs one loop that performs Burn's
//! arithmetic in Burn's order (L2 decay `p * penalty + g`, moments `m b1 + g (1 - b1)` and
//! `v b2 + g^2 (1 - b2)`, update `m c / (sqrt v + eps sqrt(1 - b2^t))`, `p - u lr`); elsewhere,
//! or with AMSGrad, it calls Burn's Adam.

use burn::{
    optim::{
        Adam, AdamConfig, AdamState, AdaptiveMomentumState, LearningRate, ModuleOptimizer,
        Optimizer, decay::WeightDecayConfig,
    },
    tensor::{DType, Device, Tensor, TensorData},
};
use rayon::prelude::*;

use crate::device::is_host_device;

/// Elements per rayon task of the update loop.
const CHUNK: usize = 1 << 14;

/// Adam (optionally with L2 weight decay) with a fused host update; see the module docs.
#[derive(Clone)]
pub struct FusedAdam {
    beta_1: f32,
    beta_2: f32,
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

    fn host_step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamState<D>>,
    ) -> (Tensor<D>, AdamState<D>) {
        let device = tensor.device();
        let shape = tensor.shape();
        let values = |t: Tensor<D>| -> Vec<f32> {
            t.into_data()
                .try_into_vec::<f32>()
                .expect("FusedAdam: f32 tensors (checked by the caller)")
        };
        let mut p = values(tensor);
        let g = values(grad);
        let (time, mut m, mut v) = match state {
            Some(s) => (
                s.momentum.time + 1,
                values(s.momentum.moment_1),
                values(s.momentum.moment_2),
            ),
            None => (1, Vec::new(), Vec::new()),
        };
        let first = m.is_empty();
        if first {
            m = vec![0.0; p.len()];
            v = vec![0.0; p.len()];
        }
        let (b1, b2, eps) = (self.beta_1, self.beta_2, self.epsilon);
        let (f1, f2) = (1.0 - b1, 1.0 - b2);
        let t = time as i32;
        let bc2 = (1.0 - b2.powi(t)).sqrt();
        let cf = bc2 / (1.0 - b1.powi(t));
        let denom_eps = eps * bc2;
        let lr = lr as f32;
        let c = Constants {
            b1,
            b2,
            f1,
            f2,
            cf,
            denom_eps,
            lr,
            penalty: self.weight_decay.unwrap_or(0.0),
        };
        // Four branch-free loops (first step or not, decay or not), so each vectorises.
        let update = match (first, self.weight_decay.is_some()) {
            (true, true) => update_chunk::<true, true>,
            (true, false) => update_chunk::<true, false>,
            (false, true) => update_chunk::<false, true>,
            (false, false) => update_chunk::<false, false>,
        };
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .for_each(|(((p, g), m), v)| update(p, g, m, v, &c));
        let tensor = |values: Vec<f32>| {
            Tensor::<D>::from_data(TensorData::new(values, shape.clone()), &device)
        };
        let state = AdamState::new(AdaptiveMomentumState::new(time, tensor(m), tensor(v)));
        (tensor(p), state)
    }
}

/// The scalars of one update.
struct Constants {
    b1: f32,
    b2: f32,
    f1: f32,
    f2: f32,
    cf: f32,
    denom_eps: f32,
    lr: f32,
    penalty: f32,
}

/// One chunk of the update, in Burn's order of operations.
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

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let amsgrad = state
            .as_ref()
            .is_some_and(|s| s.momentum.max_moment_2.is_some());
        let host = is_host_device(&tensor.device())
            && tensor.dtype() == DType::F32
            && grad.dtype() == DType::F32
            && state.as_ref().is_none_or(|s| {
                s.momentum.moment_1.dtype() == DType::F32
                    && s.momentum.moment_2.dtype() == DType::F32
            });
        if !host || amsgrad {
            return self.burn.step(lr, tensor, grad, state);
        }
        #[cfg(test)]
        tests::HOST_STEPS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (tensor, state) = self.host_step(lr, tensor, grad, state);
        (tensor, Some(state))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <Adam as Optimizer>::to_device(state, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::{
        module::{Module, Param},
        nn::{Linear, LinearConfig},
        optim::GradientsParams,
    };

    /// Inputs from a formula, not Burn's process-wide RNG (which parallel tests share).
    fn input(rows: usize, cols: usize, step: usize, device: &Device) -> Tensor<2> {
        let values = (0..rows * cols)
            .map(|i| ((i as f32) * 0.37 + step as f32 * 1.3).sin())
            .collect::<Vec<f32>>();
        Tensor::from_data(TensorData::new(values, [rows, cols]), device)
    }

    fn train(mut optim: ModuleOptimizer, steps: usize) -> Linear {
        let device = Device::flex().autodiff();
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
            model = optim.step(1e-2, model, grads);
        }
        model
    }

    /// Fused host updates taken (so a test can tell that the fused path ran).
    pub(super) static HOST_STEPS: std::sync::atomic::AtomicUsize =
        std::sync::atomic::AtomicUsize::new(0);

    fn max_diff(a: &Linear, b: &Linear) -> f32 {
        let w: f32 = (a.weight.val() - b.weight.val()).abs().max().into_scalar();
        let bias = |l: &Linear| l.bias.as_ref().expect("bias").val();
        let c: f32 = (bias(a) - bias(b)).abs().max().into_scalar();
        w.max(c)
    }

    #[test]
    fn equals_burns_adam_over_100_steps() {
        for decay in [None, Some(0.01)] {
            let burn = AdamConfig::new()
                .with_epsilon(1e-8)
                .with_weight_decay(decay.map(WeightDecayConfig::new))
                .init();
            let ours = FusedAdam::new(1e-8, decay).init();
            let before = HOST_STEPS.load(std::sync::atomic::Ordering::SeqCst);
            let fused = train(ours, 100);
            // Two parameters (weight, bias) per step took the fused path.
            let after = HOST_STEPS.load(std::sync::atomic::Ordering::SeqCst);
            assert!(after - before >= 200, "the fused update did not run");
            let d = max_diff(&train(burn, 100), &fused);
            assert!(d < 1e-6, "decay {decay:?}: parameters differ by {d}");
        }
    }

    #[test]
    fn record_round_trip_resumes_identically() {
        let device = Device::flex().autodiff();
        let mut model = LinearConfig::new(3, 2).init(&device);
        let mut optim = FusedAdam::new(1e-8, None).init();
        let step = |model: Linear, optim: &mut ModuleOptimizer, seed: u64| {
            let x = input(4, 3, seed as usize, &device);
            let grads = GradientsParams::from_grads(model.forward(x).sum().backward(), &model);
            optim.step(1e-2, model, grads)
        };
        model = step(model, &mut optim, 5);
        // Resume from the record into a fresh optimiser and compare with carrying on.
        let mut resumed = FusedAdam::new(1e-8, None).init();
        resumed = resumed.load_record(optim.to_record());
        let a = step(model.clone(), &mut optim, 6);
        let b = step(model.clone(), &mut resumed, 6);
        let _ = model.num_params();
        assert_eq!(max_diff(&a, &b), 0.0);
    }
}
