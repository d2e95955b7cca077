//! Training-step benchmarks on synthetic batches: the real [`train_step`] of the training loop
//! (same model, optimiser, clipping and method), timed step by step, for `mixup bench` and
//! the benchmarks in `benches/`.
//!
//! Every row of a synthetic batch has exactly `seq` tokens (none of them padding), so that a
//! peer framework given the same batch and sequence length does the same arithmetic. Token ids
//! are drawn uniformly from the part of the vocabulary above the special tokens; labels
//! uniformly from the classes. A MixText step also gets `batch` synthetic unlabelled texts with
//! two augmentations each (their label guessing, sharpening and unlabelled term are timed with
//! the rest). A step's time runs from the start of [`train_step`] to the
//! moment its loss has been read back to the host, which waits for asynchronous backends.

use std::time::Instant;

use burn::{module::Module, tensor::Device};
use mixup_core::{Layout, MixMethod, Pairing};
use mixup_data::EncodedExample;
use mixup_models::MixingPoints;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde::Serialize;

use crate::{
    TrainError,
    config::{OptimConfig, StepConfig},
    error::Result,
    mixtext::UnlabelledExample,
    optim::build_optimizer,
    step::{StepBatch, StepPlan, train_step},
    train::train_step_split,
};

/// The shape and length of one benchmark.
#[derive(Clone, Debug)]
pub struct BenchSpec {
    /// Rows per step.
    pub batch: usize,
    /// Tokens per row (special tokens included for BERT-family models).
    pub seq: usize,
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps before them (allocator, autotuning, caches).
    pub warmup: usize,
    /// Vocabulary size of word-level models (BERT-family models use their checkpoint's).
    pub vocab: usize,
    /// Number of classes.
    pub classes: usize,
    /// Seeds the weights, the batches and the mixing.
    pub seed: u64,
}

impl Default for BenchSpec {
    /// TREC-6's shape: batch 64, 24 tokens, vocabulary 8680, 6 classes; 20 steps after 3.
    fn default() -> Self {
        Self {
            batch: 64,
            seq: 24,
            steps: 20,
            warmup: 3,
            vocab: 8680,
            classes: 6,
            seed: 0,
        }
    }
}

/// What one benchmark measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Model kind (`textcnn`, `bilstm`, `transformer`, `bert`).
    pub model: String,
    /// Method.
    pub method: String,
    /// Backend the steps ran on.
    pub device: String,
    /// Rows per step.
    pub batch: usize,
    /// Tokens per row.
    pub seq: usize,
    /// Timed steps.
    pub steps: usize,
    /// Trainable and frozen parameters.
    pub parameters: usize,
    /// Median milliseconds per step.
    pub ms_per_step_median: f64,
    /// Fastest step.
    pub ms_per_step_min: f64,
    /// Slowest step.
    pub ms_per_step_max: f64,
    /// `batch` rows per median step.
    pub samples_per_s: f64,
    /// The process's peak resident memory in MiB (host memory; Linux only). On a GPU backend
    /// device memory is not included.
    pub peak_host_memory_mib: Option<f64>,
}

/// The step settings `mixup bench --model` uses for `method`: alpha 16 for TMix (its paper's
/// setting), split-halves pairs for SSMix, the defaults (alpha 1) otherwise.
pub fn default_step_config(method: MixMethod) -> StepConfig {
    let config = StepConfig::new().with_method(method);
    match method {
        MixMethod::Tmix | MixMethod::MixText => config.with_alpha(16.0),
        MixMethod::Ssmix => config.with_pairing(Pairing::SplitHalves),
        _ => config,
    }
}

/// Peak resident memory of this process in MiB, from `/proc/self/status` (`VmHWM`).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// One synthetic batch: `spec.batch` rows of `spec.seq` ids in `first_id..vocab`.
fn synthetic_rows(
    spec: &BenchSpec,
    vocab: usize,
    first_id: u32,
    rng: &mut StdRng,
) -> Vec<EncodedExample> {
    (0..spec.batch)
        .map(|_| EncodedExample {
            ids: (0..spec.seq)
                .map(|_| rng.random_range(first_id..vocab as u32))
                .collect(),
            label: rng.random_range(0..spec.classes),
        })
        .collect()
}

/// What a benchmark runs: the model's kind (reported), its step and optimiser settings, and
/// its rows' layout and vocabulary.
pub struct BenchTarget<'a> {
    /// Model kind, for the report (`textcnn`, `bilstm`, `transformer`, `bert`).
    pub kind: &'a str,
    /// The step (method, mixing, loss, clipping).
    pub step: &'a StepConfig,
    /// The optimiser (its `lr` is the rate of every step).
    pub optim: &'a OptimConfig,
    /// Where the special tokens of a row are.
    pub layout: Layout,
    /// Vocabulary size the ids are drawn below.
    pub vocab: usize,
}

/// Times `spec.steps` training steps of `model` (built on the first of the autodiff
/// `devices`) with the target's method, optimiser, learning rate and clipping. With one
/// device each step is [`train_step`]; with several, [`train_step_split`] as `train` takes it
/// (each batch split into one shard per device; each replica runs on its own thread, inside its
/// own rayon pool with its share of the cores). The model must accept rows of `spec.seq` tokens
/// (a Transformer's position table, a BERT checkpoint's positions).
///
/// # Errors
///
/// [`TrainError::Config`] for a bad spec (zero rows, steps or tokens; a vocabulary too small);
/// a method the model cannot run, or a step that fails.
pub fn bench_model<M: Module + MixingPoints>(
    mut model: M,
    target: &BenchTarget<'_>,
    spec: &BenchSpec,
    devices: &[Device],
    device_name: &str,
) -> Result<BenchReport> {
    let (layout, vocab) = (target.layout, target.vocab);
    for (key, v) in [
        ("batch", spec.batch),
        ("steps", spec.steps),
        ("seq", spec.seq),
    ] {
        if v == 0 {
            return Err(TrainError::config(key, "must be at least 1"));
        }
    }
    if spec.seq <= layout.front + layout.back {
        return Err(TrainError::config(
            "seq",
            format!(
                "{}: a row of this model needs more than its {} special tokens",
                spec.seq,
                layout.front + layout.back
            ),
        ));
    }
    let method = target.step.method;
    let mut plan = StepPlan::new(target.step, &model.points(), spec.classes, layout)?;
    plan.max_len = plan.max_len.max(spec.seq);
    let parameters = model.num_params();
    let mut optim = build_optimizer(target.optim, &model);
    // Word-level models keep ids 0 and 1 for padding and <unk>; BERT vocabularies keep their
    // first 1000 ids for special and unused tokens (a toy vocabulary of at most 2000 ids
    // keeps only the padding id out).
    let first_id: u32 = match layout {
        Layout::PLAIN => 2,
        _ if vocab > 2000 => 1000,
        _ => 1,
    };
    if vocab <= first_id as usize {
        return Err(TrainError::config(
            "vocab",
            format!("{vocab}: must be above {first_id}"),
        ));
    }
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut times = Vec::with_capacity(spec.steps);
    for i in 0..spec.warmup + spec.steps {
        let a = synthetic_rows(spec, vocab, first_id, &mut rng);
        let b = synthetic_rows(spec, vocab, first_id, &mut rng);
        let a_refs: Vec<&EncodedExample> = a.iter().collect();
        let b_refs: Vec<&EncodedExample> = b.iter().collect();
        // MixText: as many unlabelled texts as labelled rows, each with K = 2 views (the
        // recipe default), all synthetic; their labels are never read.
        let texts: Vec<UnlabelledExample> = match method {
            MixMethod::MixText => {
                let views: Vec<Vec<EncodedExample>> = (0..3)
                    .map(|_| synthetic_rows(spec, vocab, first_id, &mut rng))
                    .collect();
                (0..spec.batch)
                    .map(|r| UnlabelledExample {
                        views: views.iter().map(|v| v[r].clone()).collect(),
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        let text_refs: Vec<&UnlabelledExample> = texts.iter().collect();
        let batch = StepBatch {
            items: &a_refs,
            partner_items: method.separate_batch().then_some(&b_refs[..]),
            mixing: plan.mixes(),
            unlabelled: (!text_refs.is_empty()).then_some((&text_refs[..], 1.0)),
        };
        let start = Instant::now();
        let (next, report) = match devices {
            [device] => train_step(
                model,
                &mut optim,
                target.optim.lr,
                &plan,
                &batch,
                &mut rng,
                device,
            )?,
            _ => {
                let mixing_seed = rng.random::<u64>();
                let lr = target.optim.lr;
                train_step_split(model, &mut optim, lr, &plan, &batch, mixing_seed, devices)?
            }
        };
        let loss = report.loss.into_scalar::<f32>();
        let ms = start.elapsed().as_secs_f64() * 1e3;
        if !loss.is_finite() {
            return Err(TrainError::Diverged {
                loss: loss as f64,
                epoch: 1,
                step: i + 1,
                steps: spec.warmup + spec.steps,
                lr: target.optim.lr,
                last_checkpoint: None,
            });
        }
        model = next;
        if i >= spec.warmup {
            times.push(ms);
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    Ok(BenchReport {
        model: target.kind.to_string(),
        method: method.name().to_string(),
        device: device_name.to_string(),
        batch: spec.batch,
        seq: spec.seq,
        steps: spec.steps,
        parameters,
        ms_per_step_median: median,
        ms_per_step_min: times[0],
        ms_per_step_max: times[times.len() - 1],
        samples_per_s: spec.batch as f64 * 1e3 / median,
        peak_host_memory_mib: peak_rss_mib(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benches_a_step_and_names_the_bad_spec_field() {
        let device = Device::flex().autodiff();
        let model = crate::seeded_init(&device, 1, || {
            mixup_models::TextCnnConfig::new(50, 3)
                .with_d_embed(8)
                .with_n_filters(4)
                .init(&device)
        });
        let step = default_step_config(MixMethod::Ssmix);
        let optim = OptimConfig::new();
        let target = BenchTarget {
            kind: "textcnn",
            step: &step,
            optim: &optim,
            layout: Layout::PLAIN,
            vocab: 50,
        };
        let spec = BenchSpec {
            batch: 4,
            seq: 6,
            steps: 2,
            warmup: 1,
            vocab: 50,
            classes: 3,
            seed: 1,
        };
        let one = std::slice::from_ref(&device);
        let r = bench_model(model.clone(), &target, &spec, one, "flex").expect("bench");
        assert_eq!((r.model.as_str(), r.method.as_str()), ("textcnn", "ssmix"));
        assert!(r.ms_per_step_min <= r.ms_per_step_median);
        assert!(r.ms_per_step_median <= r.ms_per_step_max && r.samples_per_s > 0.0);
        let zero = BenchSpec {
            steps: 0,
            ..spec.clone()
        };
        let e = bench_model(model.clone(), &target, &zero, one, "flex").expect_err("0 steps");
        assert!(e.to_string().starts_with("steps:"), "{e}");
        // Two replicas: each batch split in two, each replica on its own thread.
        let two = [device.clone(), device.clone()];
        let r = bench_model(model.clone(), &target, &spec, &two, "flex,flex").expect("replicas");
        assert_eq!((r.device.as_str(), r.batch, r.steps), ("flex,flex", 4, 2));
        assert!(r.samples_per_s > 0.0);
        let e = bench_model(model, &target, &spec, &[], "none").expect_err("no device");
        assert!(e.to_string().contains("no device"), "{e}");
    }
}
