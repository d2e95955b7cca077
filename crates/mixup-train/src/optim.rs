//! The optimiser of a run ([`OptimConfig`]'s `optimizer`, `weight_decay`, `adam_epsilon`), its
//! learning-rate schedule (`warmup`, `schedule`) and global gradient-norm clipping
//! ([`clip_grad_norm`]).
//!
//! The defaults (`adam`, no weight decay, no warm-up, a constant rate, no clipping) build
//! exactly the optimiser the loop has always used, so earlier results stay reproducible.

use burn::{
    module::{Module, ModuleVisitor, Param, ParamGroup, ParamId},
    optim::{GradientsParams, ModuleOptimizer},
    tensor::Tensor,
};
use mixup_kernels::{FusedAdam, FusedAdamW};

use crate::config::{OptimConfig, OptimizerKind, Schedule};

/// The learning rate of every step of a run: a linear warm-up from 0 over the first
/// `ceil(warmup * total_steps)` steps, then constant or a linear decay to 0 at the end, as
/// Hugging Face's `get_constant_schedule_with_warmup` / `get_linear_schedule_with_warmup`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrSchedule {
    /// The peak rate ([`OptimConfig::lr`]).
    pub base: f64,
    /// Steps of linear warm-up.
    pub warmup_steps: usize,
    /// Optimiser steps in the whole run.
    pub total_steps: usize,
    /// Decay linearly to 0 after warm-up (else stay at `base`).
    pub linear_decay: bool,
}

impl LrSchedule {
    /// The schedule of `train` for a run of `total_steps` optimiser steps.
    pub fn new(train: &OptimConfig, total_steps: usize) -> Self {
        Self {
            base: train.lr,
            warmup_steps: (train.warmup * total_steps as f64).ceil() as usize,
            total_steps,
            linear_decay: train.schedule == Schedule::Linear,
        }
    }

    /// The rate of 0-based step `step`: `base * step / warmup_steps` during warm-up, then
    /// `base` (constant) or `base * (total - step) / (total - warmup_steps)` (linear). Step 0
    /// of a warm-up has rate 0, and the last step of a linear decay `base / (total - warmup)`,
    /// as in Hugging Face's schedules.
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.base * step as f64 / self.warmup_steps as f64;
        }
        if !self.linear_decay {
            return self.base;
        }
        let left = self.total_steps.saturating_sub(step) as f64;
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        self.base * left / span
    }
}

/// Collects the ids of one-dimensional float parameters (biases, LayerNorm scales and
/// shifts), which weight decay leaves alone.
#[derive(Default)]
struct OneDimensional(Vec<ParamId>);

impl ModuleVisitor for OneDimensional {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if D == 1 {
            self.0.push(param.id);
        }
    }
}

/// The ids of `model`'s one-dimensional float parameters (biases, LayerNorm gains and
/// shifts, the parameters weight decay skips).
pub fn no_decay_params<M: Module>(model: &M) -> Vec<ParamId> {
    let mut v = OneDimensional::default();
    model.visit(&mut v);
    v.0
}

/// The optimiser `train` asks for, for `model`'s parameters: Adam or AdamW with
/// `adam_epsilon`; with `weight_decay > 0`, one-dimensional parameters (biases, LayerNorm)
/// go to a second group of the same optimiser without decay. Gradient clipping is not part
/// of it (see [`clip_grad_norm`]).
pub fn build_optimizer<M: Module>(train: &OptimConfig, model: &M) -> ModuleOptimizer {
    let eps = train.adam_epsilon as f32;
    let decay = train.weight_decay as f32;
    let adamw = train.optimizer == OptimizerKind::AdamW;
    let mut optim = if adamw {
        // Burn's AdamW, fused on Flex (mixup_kernels::FusedAdamW: same arithmetic and state).
        FusedAdamW::new(eps, decay).init()
    } else if decay > 0.0 {
        // Burn's Adam with L2 decay, fused on CPU backends (mixup_kernels::FusedAdam: same
        // arithmetic, same state and records).
        FusedAdam::new(eps, Some(decay)).init()
    } else {
        // The optimiser of runs made before these settings existed (Burn's Adam, fused).
        FusedAdam::new(eps, None).init()
    };
    let skip = no_decay_params(model);
    if decay > 0.0 && !skip.is_empty() {
        let group = ParamGroup::from_ids(skip);
        optim = if adamw {
            optim.with_group(group, FusedAdamW::new(eps, 0.0), None)
        } else {
            optim.with_group(group, FusedAdam::new(eps, None), None)
        };
    }
    optim
}

/// Sums the squared gradients of a module's float parameters.
struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    sum: Option<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let s = g.square().sum();
            self.sum = Some(match self.sum.take() {
                Some(acc) => acc + s,
                None => s,
            });
        }
    }
}

/// Scales every gradient of a module's float parameters by one factor.
struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: Tensor<1>,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            let factor = self.factor.clone().reshape([1; D]);
            self.grads.register(param.id, g * factor);
        }
    }
}

/// Clips the global L2 norm of `model`'s gradients to `max_norm`, as PyTorch's
/// `clip_grad_norm_`: every gradient is multiplied by `min(1, max_norm / (norm + 1e-6))`,
/// `norm` being the L2 norm of all gradients together. Runs on the device (no read-back).
///
/// Burn's own `GradientClippingConfig::Norm` clips each parameter's gradient by its own
/// norm, which is a different (per-tensor) operation.
pub fn clip_grad_norm<M: Module>(
    model: &M,
    mut grads: GradientsParams,
    max_norm: f64,
) -> GradientsParams {
    let mut norm = SquaredNorm {
        grads: &grads,
        sum: None,
    };
    model.visit(&mut norm);
    let Some(sum) = norm.sum else {
        return grads;
    };
    let factor = sum
        .sqrt()
        .add_scalar(1e-6)
        .recip()
        .mul_scalar(max_norm)
        .clamp_max(1.0);
    model.visit(&mut Scale {
        grads: &mut grads,
        factor,
    });
    grads
}

#[cfg(test)]
mod tests {
    use burn::{
        nn::{Linear, LinearConfig},
        tensor::Device,
    };

    use super::*;

    #[test]
    fn default_schedule_is_the_constant_rate() {
        let s = LrSchedule::new(&OptimConfig::new().with_lr(0.002), 100);
        assert_eq!(s.warmup_steps, 0);
        for step in [0, 1, 50, 99] {
            assert_eq!(s.lr(step), 0.002);
        }
    }

    #[test]
    fn linear_schedule_warms_up_then_decays_to_zero() {
        let linear = OptimConfig::new()
            .with_lr(1.0)
            .with_warmup(0.1)
            .with_schedule(Schedule::Linear);
        let s = LrSchedule::new(&linear, 100);
        assert_eq!(s.warmup_steps, 10);
        assert_eq!(s.lr(0), 0.0, "step 0 of a warm-up");
        assert!((s.lr(5) - 0.5).abs() < 1e-12);
        assert_eq!(s.lr(10), 1.0, "end of warm-up: the peak rate");
        assert!((s.lr(55) - 0.5).abs() < 1e-12, "half way down");
        assert!((s.lr(99) - 1.0 / 90.0).abs() < 1e-12, "last step");
        assert_eq!(s.lr(100), 0.0, "after the last step");
        // Warm-up rounds up: 0.1 of 15 steps is 2 steps.
        let s = LrSchedule::new(&OptimConfig::new().with_lr(1.0).with_warmup(0.1), 15);
        assert_eq!(s.warmup_steps, 2);
        assert_eq!((s.lr(0), s.lr(1), s.lr(2), s.lr(14)), (0.0, 0.5, 1.0, 1.0));
        // Linear without warm-up starts at the peak.
        let s = LrSchedule::new(&linear.clone().with_warmup(0.0), 4);
        assert_eq!((s.lr(0), s.lr(3)), (1.0, 0.25));
    }

    fn linear(device: &Device) -> Linear {
        crate::seeded_init(device, 3, || LinearConfig::new(3, 2).init(device))
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_to_vec()
            .unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn grads_of(model: &Linear, device: &Device, scale: f32) -> GradientsParams {
        let x = Tensor::<2>::from_floats([[1.0, -2.0, 3.0], [0.5, 0.25, -1.0]], device);
        let loss = model.forward(x).sum().mul_scalar(scale);
        GradientsParams::from_grads(loss.backward(), model)
    }

    fn global_norm(model: &Linear, grads: &GradientsParams) -> f32 {
        let w: Vec<f32> = values(grads.get::<2>(model.weight.id).expect("weight grad"));
        let b: Vec<f32> = model
            .bias
            .as_ref()
            .map(|b| values(grads.get::<1>(b.id).expect("bias grad")))
            .unwrap_or_default();
        w.iter().chain(&b).map(|v| v * v).sum::<f32>().sqrt()
    }

    #[test]
    fn clipping_scales_all_gradients_to_the_global_norm() {
        let ad = Device::flex().autodiff();
        let model = linear(&ad);
        let before = global_norm(&model, &grads_of(&model, &ad, 1.0));
        assert!(before > 1.0, "norm {before}");
        let clipped = clip_grad_norm(&model, grads_of(&model, &ad, 1.0), 0.5);
        let after = global_norm(&model, &clipped);
        assert!((after - 0.5).abs() < 1e-4, "clipped norm {after}");
        // Directions are kept: every gradient is scaled by the same factor.
        let w0 = values(
            grads_of(&model, &ad, 1.0)
                .get::<2>(model.weight.id)
                .expect("w"),
        );
        let w1 = values(clipped.get::<2>(model.weight.id).expect("w"));
        for (a, b) in w0.iter().zip(&w1) {
            assert!((a * 0.5 / before - b).abs() < 1e-5, "{a} -> {b}");
        }
        // Below the limit nothing changes.
        let untouched = clip_grad_norm(&model, grads_of(&model, &ad, 1.0), 1e6);
        assert_eq!(values(untouched.get::<2>(model.weight.id).expect("w")), w0);
    }

    #[test]
    fn adamw_decays_matrices_but_not_biases() {
        let ad = Device::flex().autodiff();
        let model = linear(&ad);
        let w0 = values(model.weight.val());
        let b0 = values(model.bias.as_ref().expect("bias").val());
        let train = OptimConfig::new()
            .with_optimizer(OptimizerKind::AdamW)
            .with_weight_decay(0.5);
        let mut optim = build_optimizer(&train, &model);
        // Zero gradients: Adam's own update is 0, only the decay moves parameters.
        let grads = grads_of(&model, &ad, 0.0);
        let model = optim.step(0.1, model, grads);
        let w1 = values(model.weight.val());
        let b1 = values(model.bias.as_ref().expect("bias").val());
        for (a, b) in w0.iter().zip(&w1) {
            assert!((a * 0.95 - b).abs() < 1e-6, "weight {a} -> {b}");
        }
        assert_eq!(b0, b1, "biases are not decayed");
        assert_eq!(no_decay_params(&model).len(), 1);
    }
}
