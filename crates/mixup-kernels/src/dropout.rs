//! Dropout with a cheap mask on the CPU backends that were measured (Flex, LibTorch's CPU).
//!
//! Burn's [`Dropout`] draws every mask element through the backend's ChaCha generator and a
//! Bernoulli sampler, then multiplies twice (by the mask, then by `1 / keep`). On the devices of
//! [`has_host_dropout`] (Flex, LibTorch's CPU device, where ATen's Bernoulli kernel draws
//! serially through its Mersenne twister) [`dropout`] instead fills the mask with `0` or `1 / keep`
//! from a SplitMix64 stream (one 32-bit draw per element compared with `keep * 2^32`) and
//! multiplies once. The semantics are Burn's: identity unless the module is in training mode
//! on an autodiff device with a positive probability; each element is kept with probability
//! `keep = 1 - prob` and scaled by `1 / keep`. Other backends keep Burn's dropout.
//!
//! The stream is per thread: [`seed_dropout`] restarts the calling thread's stream (the
//! training loops call it at every step with the step's derived seed, next to `device.seed`),
//! so a run's masks are a function of its seed, step and the order of the dropout calls within
//! the step, whatever other threads train at the same time (two runs in one process, parallel
//! tests). A thread that runs part of a step for its caller (a data-parallel replica) starts
//! its own stream with [`fork_dropout`] from the caller's [`dropout_stream`].

use std::cell::Cell;

use burn::{
    nn::Dropout,
    tensor::{Tensor, TensorData},
};

use rayon::prelude::*;

use crate::{
    device::{has_host_dropout, is_host_device},
    math,
};

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

thread_local! {
    /// State of this thread's SplitMix64 stream that seeds each mask.
    static STREAM: Cell<u64> = const { Cell::new(0) };
}

/// Restarts the calling thread's mask stream at `seed`.
pub fn seed_dropout(seed: u64) {
    STREAM.with(|s| s.set(seed));
}

/// The calling thread's stream position, for [`fork_dropout`] in a helper thread.
pub fn dropout_stream() -> u64 {
    STREAM.with(Cell::get)
}

/// Starts the calling thread's stream as branch `branch` of a stream at position `state`
/// (another thread's [`dropout_stream`]): branches differ from each other and from the
/// parent, and the same `(state, branch)` gives the same masks.
pub fn fork_dropout(state: u64, branch: u64) {
    seed_dropout(mix(state ^ mix(branch.wrapping_add(1).wrapping_mul(GOLDEN))));
}

#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The mask seed at stream position `state` (the stream advances by `GOLDEN` per mask).
fn seed_at(state: u64) -> u64 {
    mix(state.wrapping_add(GOLDEN))
}

/// The next mask's seed from this thread's stream.
fn next_seed() -> u64 {
    STREAM.with(|s| {
        let state = s.get();
        s.set(state.wrapping_add(GOLDEN));
        seed_at(state)
    })
}

/// `len` mask values, each `scale` with probability `keep` and `0` otherwise, drawn from a
/// SplitMix64 generator started at `seed` (two 32-bit draws per 64-bit output). The generator's
/// `k`-th output depends on `k` alone (`mix(seed + (k + 1) * GOLDEN)`), so blocks of the mask are
/// filled on rayon's pool and with the CPU's widest vectors ([`math::vectorized`]), with the
/// values of the sequential stream.
pub fn mask_values(len: usize, keep: f64, seed: u64) -> Vec<f32> {
    fill_mask(len, keep, seed, true)
}

/// [`mask_values`], its blocks on rayon's pool when `parallel`, else on this thread (the same
/// values either way).
fn fill_mask(len: usize, keep: f64, seed: u64, parallel: bool) -> Vec<f32> {
    let threshold = (keep * 4_294_967_296.0).min(4_294_967_295.0) as u64;
    let scale = (1.0 / keep) as f32;
    let mut out = vec![0f32; len];
    let fill = |(b, block): (usize, &mut [f32])| {
        math::vectorized(MaskBlock {
            block,
            first_pair: (b * MASK_BLOCK / 2) as u64,
            seed,
            threshold,
            scale,
        })
    };
    if parallel {
        out.par_chunks_mut(MASK_BLOCK).enumerate().for_each(fill);
    } else {
        out.chunks_mut(MASK_BLOCK).enumerate().for_each(fill);
    }
    out
}

/// Mask values per rayon task (even, so a block starts at a whole 64-bit draw).
const MASK_BLOCK: usize = 1 << 15;

/// One block of [`mask_values`]: its values from generator output `first_pair` on.
struct MaskBlock<'a> {
    block: &'a mut [f32],
    first_pair: u64,
    seed: u64,
    threshold: u64,
    scale: f32,
}

impl pulp::NullaryFnOnce for MaskBlock<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        let value = |draw: u64| {
            if draw < self.threshold {
                self.scale
            } else {
                0.0
            }
        };
        let bits = |k: u64| mix(self.seed.wrapping_add((k + 1).wrapping_mul(GOLDEN)));
        let half = (self.block.len() / 2) as u64;
        let mut pairs = self.block.chunks_exact_mut(2);
        for (k, pair) in (self.first_pair..).zip(&mut pairs) {
            let b = bits(k);
            pair[0] = value(b & 0xFFFF_FFFF);
            pair[1] = value(b >> 32);
        }
        if let [last] = pairs.into_remainder() {
            let k = self.first_pair + half;
            *last = value(bits(k) & 0xFFFF_FFFF);
        }
    }
}

/// `module.forward(input)` with the same semantics, cheaper on Flex and LibTorch's CPU device
/// (see the module documentation).
pub fn dropout<const D: usize>(module: &Dropout, input: Tensor<D>) -> Tensor<D> {
    let device = input.device();
    if !module.training.is_enabled() || !device.is_autodiff() || module.prob == 0.0 {
        return input;
    }
    if !has_host_dropout(&device) {
        return module.forward(input);
    }
    let keep = 1.0 - module.prob;
    let shape = input.shape();
    // On Flex the blocks go to rayon's pool, which Flex's ops use too; LibTorch keeps its own
    // OpenMP threads busy, and rayon's beside them cost more than the mask (measured).
    let values = fill_mask(
        shape.num_elements(),
        keep,
        next_seed(),
        is_host_device(&device),
    );
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
    fn blocks_equal_the_sequential_stream() {
        // The stream drawn one output at a time, as the generator defines it.
        let sequential = |len: usize, keep: f64, seed: u64| {
            let threshold = (keep * 4_294_967_296.0) as u64;
            let mut state = seed;
            let mut out = Vec::new();
            while out.len() < len {
                state = state.wrapping_add(GOLDEN);
                let bits = mix(state);
                for draw in [bits & 0xFFFF_FFFF, bits >> 32] {
                    if out.len() < len {
                        out.push(if draw < threshold {
                            (1.0 / keep) as f32
                        } else {
                            0.0
                        });
                    }
                }
            }
            out
        };
        // Both fills (rayon's blocks, and the calling thread's as on tch) over several blocks.
        for len in [0, 1, 2, 7, MASK_BLOCK - 1, MASK_BLOCK, 2 * MASK_BLOCK + 3] {
            let expected = sequential(len, 0.8, 11);
            for parallel in [true, false] {
                assert_eq!(
                    fill_mask(len, 0.8, 11, parallel),
                    expected,
                    "len {len}, parallel {parallel}"
                );
            }
        }
    }

    #[test]
    fn masks_are_repeatable_and_differ_between_seeds_and_calls() {
        assert_eq!(mask_values(100, 0.5, 3), mask_values(100, 0.5, 3));
        assert_ne!(mask_values(100, 0.5, 3), mask_values(100, 0.5, 4));
        let (a, b) = (seed_at(11), seed_at(11u64.wrapping_add(GOLDEN)));
        assert_ne!(a, b);
        assert_eq!(seed_at(11), a);
        assert_ne!(seed_at(12), a);
    }

    /// The stream is per thread: a thread drawing masks all the time does not move another
    /// thread's stream (with one process-wide stream, it did), and a forked stream is
    /// repeatable, differs between branches and from its parent.
    #[test]
    fn streams_are_per_thread_and_forks_repeat() {
        let ad = Device::flex().autodiff();
        let module = DropoutConfig::new(0.5).init();
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
        // Masks of this thread; with `noise`, each waits until the other thread has drawn
        // another mask, so the two interleave.
        let masks = |noise: Option<&AtomicUsize>| -> Vec<Vec<f32>> {
            seed_dropout(5);
            (0..50)
                .map(|_| {
                    if let Some(n) = noise {
                        let seen = n.load(SeqCst);
                        while n.load(SeqCst) == seen {
                            std::thread::yield_now();
                        }
                    }
                    let x = Tensor::<1>::ones([64], &ad);
                    dropout(&module, x)
                        .into_data()
                        .try_to_vec::<f32>()
                        .expect("f32")
                })
                .collect()
        };
        let alone = masks(None);
        let (stop, drawn) = (AtomicBool::new(false), AtomicUsize::new(0));
        let together = std::thread::scope(|scope| {
            scope.spawn(|| {
                let x = Tensor::<1>::ones([64], &ad);
                while !stop.load(SeqCst) {
                    let _ = dropout(&module, x.clone());
                    drawn.fetch_add(1, SeqCst);
                }
            });
            let mine = masks(Some(&drawn));
            stop.store(true, SeqCst);
            mine
        });
        assert!(
            together == alone,
            "another thread's masks moved this thread's stream"
        );
        seed_dropout(9);
        let parent = dropout_stream();
        let branch = |b: u64| {
            std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        fork_dropout(parent, b);
                        (0..3).map(|_| next_seed()).collect::<Vec<_>>()
                    })
                    .join()
                    .expect("branch")
            })
        };
        assert_eq!(branch(0), branch(0));
        assert_ne!(branch(0), branch(1));
        let own: Vec<u64> = (0..3).map(|_| next_seed()).collect();
        assert_ne!(own, branch(0));
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

    /// On LibTorch's CPU device the mask is the host stream's (so tch runs repeat by seed) and
    /// the gradient is the mask.
    #[cfg(feature = "tch")]
    #[test]
    #[allow(deprecated)]
    fn libtorch_cpu_uses_the_host_masks() {
        let ad = Device::libtorch().autodiff();
        assert!(has_host_dropout(&ad));
        let module = DropoutConfig::new(0.3).init();
        seed_dropout(21);
        let expected = mask_values(300, 0.7, next_seed());
        seed_dropout(21);
        let x = Tensor::<1>::ones([300], &ad).require_grad();
        let y = dropout(&module, x.clone());
        let g: Vec<f32> = x
            .grad(&y.clone().sum().backward())
            .expect("grad")
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        let y: Vec<f32> = y.into_data().try_to_vec::<f32>().expect("f32");
        assert_eq!(y, expected);
        assert_eq!(g, expected);
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
