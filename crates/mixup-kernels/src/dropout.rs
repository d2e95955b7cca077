//! Dropout with a cheap mask on the Flex backend.
//!
//! Burn's [`Dropout`] draws every mask element through the backend's ChaCha generator and a
//! Bernoulli sampler, then multiplies twice (by the mask, then by `1 / keep`). On the devices of
//! [`is_host_device`] (Flex) [`dropout`] instead fills the mask with `0` or `1 / keep`
//! from a SplitMix64 stream (one 32-bit draw per element compared with `keep * 2^32`) and
//! multiplies once. The semantics are Burn's: identity unless the module is in training mode
//! on an autodiff device with a positive probability; each element is kept with probability
//! `keep = 1 - prob` and scaled by `1 / keep`. Other backends keep Burn's dropout.
//!
//! The stream is process-wide: [`seed_dropout`] restarts it (the training loops call it at
//! every step with the step's derived seed, next to `device.seed`), so a run's masks are a
//! function of its seed, step and the order of the dropout calls within the step.

use std::sync::atomic::{AtomicU64, Ordering};

use burn::{
    nn::Dropout,
    tensor::{Tensor, TensorData},
};

use crate::device::is_host_device;

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// State of the process-wide SplitMix64 stream that seeds each mask.
static STREAM: AtomicU64 = AtomicU64::new(0);

/// Restarts the mask stream at `seed`.
pub fn seed_dropout(seed: u64) {
    STREAM.store(seed, Ordering::SeqCst);
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The mask seed at stream position `state` (the stream advances by `GOLDEN` per mask).
fn seed_at(state: u64) -> u64 {
    mix(state.wrapping_add(GOLDEN))
}

/// The next mask's seed from the process-wide stream.
fn next_seed() -> u64 {
    seed_at(STREAM.fetch_add(GOLDEN, Ordering::SeqCst))
}

/// `len` mask values, each `scale` with probability `keep` and `0` otherwise, drawn from a
/// SplitMix64 generator started at `seed` (two 32-bit draws per 64-bit output).
pub fn mask_values(len: usize, keep: f64, seed: u64) -> Vec<f32> {
    let threshold = (keep * 4_294_967_296.0).min(4_294_967_295.0) as u64;
    let scale = (1.0 / keep) as f32;
    let mut state = seed;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state = state.wrapping_add(GOLDEN);
        let bits = mix(state);
        for draw in [bits & 0xFFFF_FFFF, bits >> 32] {
            if out.len() < len {
                out.push(if draw < threshold { scale } else { 0.0 });
            }
        }
    }
    out
}

/// `module.forward(input)` with the same semantics, cheaper on Flex (see the module
/// documentation).
pub fn dropout<const D: usize>(module: &Dropout, input: Tensor<D>) -> Tensor<D> {
    let device = input.device();
    if !module.training.is_enabled() || !device.is_autodiff() || module.prob == 0.0 {
        return input;
    }
    if !is_host_device(&device) {
        return module.forward(input);
    }
    let keep = 1.0 - module.prob;
    let shape = input.shape();
    let values = mask_values(shape.num_elements(), keep, next_seed());
    let mask = Tensor::<D>::from_data(TensorData::new(values, shape), &device);
    input * mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::{nn::DropoutConfig, tensor::Device};

    #[test]
    fn mask_keeps_the_right_share_and_scales() {
        for prob in [0.1, 0.5, 0.9] {
            let keep = 1.0 - prob;
            let values = mask_values(200_000, keep, 7);
            let kept = values.iter().filter(|v| **v != 0.0).count() as f64 / 2e5;
            // Binomial std of the share is below 0.0012 here: 5 sigma.
            assert!((kept - keep).abs() < 0.006, "prob {prob}: kept {kept}");
            let scale = (1.0 / keep) as f32;
            assert!(values.iter().all(|v| *v == 0.0 || *v == scale));
            // The mean is preserved (inverted dropout).
            let mean = values.iter().map(|v| *v as f64).sum::<f64>() / 2e5;
            assert!((mean - 1.0).abs() < 0.02, "prob {prob}: mean {mean}");
        }
    }

    #[test]
    fn masks_are_repeatable_and_differ_between_seeds_and_calls() {
        assert_eq!(mask_values(100, 0.5, 3), mask_values(100, 0.5, 3));
        assert_ne!(mask_values(100, 0.5, 3), mask_values(100, 0.5, 4));
        // The stream itself is process-wide (other tests draw from it in parallel), so test
        // the pure seed function: repeatable, and different at successive positions.
        let (a, b) = (seed_at(11), seed_at(11u64.wrapping_add(GOLDEN)));
        assert_ne!(a, b);
        assert_eq!(seed_at(11), a);
        assert_ne!(seed_at(12), a);
    }

    #[test]
    fn identity_outside_training_and_masks_in_training() {
        let device = Device::flex();
        let module = DropoutConfig::new(0.5).init();
        let x = Tensor::<2>::ones([8, 64], &device);
        // No autodiff: identity, as Burn's.
        let same: f32 = (dropout(&module, x.clone()) - x).abs().sum().into_scalar();
        assert_eq!(same, 0.0);
        let ad = device.autodiff();
        let x = Tensor::<2>::ones([8, 64], &ad);
        let y = dropout(&module, x.clone());
        let values: Vec<f32> = y
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32");
        assert!(values.iter().all(|v| *v == 0.0 || *v == 2.0));
        let zeros = values.iter().filter(|v| **v == 0.0).count();
        assert!((150..362).contains(&zeros), "{zeros} of 512 dropped");
        // Evaluation mode (`valid()` clears the flag) is the identity too.
        let mut eval = module.clone();
        eval.training = burn::module::Param::from_bool(false);
        let same: f32 = (dropout(&eval, x.clone()) - x).abs().sum().into_scalar();
        assert_eq!(same, 0.0);
    }

    #[test]
    fn gradient_is_the_mask() {
        let ad = Device::flex().autodiff();
        let module = DropoutConfig::new(0.25).init();
        let x = Tensor::<1>::ones([256], &ad).require_grad();
        let y = dropout(&module, x.clone());
        let grads = y.clone().sum().backward();
        let g: Vec<f32> = x
            .grad(&grads)
            .expect("grad")
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        let y: Vec<f32> = y.into_data().try_to_vec::<f32>().expect("f32");
        assert_eq!(g, y);
    }
}
