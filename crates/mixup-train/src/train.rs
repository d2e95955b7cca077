//! The training loop: Adam or AdamW with a per-step learning rate ([`crate::optim`]), mixing
//! through [`MixingPoints`], evaluation every epoch.
//!
//! A custom loop rather than burn-train's `SupervisedTraining`, because mixing needs the
//! model's hidden states (run to point k, mix, continue), which `TrainStep` hides.

use std::{path::Path, time::Instant};

use burn::{
    module::Module,
    tensor::{Device, Int, Tensor, TensorData, activation::softmax},
};
use mixup_core::{MixMethod, soft_cross_entropy, soft_targets};
use mixup_data::{EncodedExample, TextBatch, batch_indices};
use mixup_models::MixingPoints;
use rand::{SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use crate::{
    checkpoint::{self, Checkpoint, TrainState},
    data::Encoded,
    optim::{LrSchedule, build_optimizer},
    recipe::Recipe,
    step::{StepBatch, StepPlan, train_step, train_step_replicated},
};

/// Metrics of one epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Whether this epoch mixed (false for `none` and after `off_epoch`).
    pub mixing: bool,
    /// Mean training loss (on mixed batches when mixing).
    pub train_loss: f64,
    /// Training accuracy against each row's dominant label (its own when lambda >= 0.5, else
    /// its partner's). Under mixup this is a rough signal, not an accuracy.
    pub train_acc_dominant: f64,
    /// Development loss, when there is a dev split.
    pub dev_loss: Option<f64>,
    /// Development accuracy, when there is a dev split.
    pub dev_acc: Option<f64>,
    /// Test loss of this epoch's model (reported, never used to select a model).
    pub test_loss: f64,
    /// Test accuracy of this epoch's model.
    pub test_acc: f64,
    /// Wall-clock seconds of the training phase of the epoch (batching, forward, backward,
    /// optimiser step; evaluation excluded).
    pub train_seconds: f64,
    /// Training examples per second in this epoch.
    pub samples_per_s: f64,
}

/// What a finished run reports (the last epoch's model; no selection on test).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinalMetrics {
    /// Recipe name.
    pub recipe: String,
    /// Mixing method.
    pub method: String,
    /// Seed.
    pub seed: u64,
    /// Backend the run trained on.
    pub device: String,
    /// Epochs trained.
    pub epochs: usize,
    /// Test accuracy of the final model.
    pub test_accuracy: f64,
    /// Test loss of the final model.
    pub test_loss: f64,
    /// Development accuracy of the final model, when there is a dev split.
    pub dev_accuracy: Option<f64>,
    /// Training examples per second over all epochs (training phase only).
    pub train_samples_per_s: f64,
    /// Median seconds of an epoch's training phase.
    pub median_epoch_seconds: f64,
    /// Wall-clock seconds of the whole run.
    pub total_seconds: f64,
    /// Training examples.
    pub train_size: usize,
    /// Test examples.
    pub test_size: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Number of classes.
    pub num_classes: usize,
}

/// Progress reported while training.
#[derive(Clone, Debug)]
pub enum Event {
    /// Some steps are done.
    Step {
        /// 1-based epoch.
        epoch: usize,
        /// Steps done in this epoch.
        step: usize,
        /// Steps in this epoch.
        steps: usize,
        /// Mean loss so far this epoch.
        loss: f64,
        /// Dominant-label accuracy so far this epoch.
        acc: f64,
        /// Examples per second so far this epoch.
        samples_per_s: f64,
    },
    /// An epoch is done and evaluated.
    Epoch(EpochMetrics),
    /// A checkpoint was written.
    Checkpoint {
        /// The file.
        path: std::path::PathBuf,
        /// Optimiser steps taken so far.
        global_step: usize,
    },
}

/// Everything a training run needs besides the recipe.
pub struct TrainSetup<'a> {
    /// The recipe (method and seed already overridden as asked).
    pub recipe: &'a Recipe,
    /// Its file, named in errors about its settings.
    pub recipe_path: Option<&'a Path>,
    /// The encoded data.
    pub data: &'a Encoded,
    /// The (non-autodiff) device to train on.
    pub device: Device,
    /// The device's name, for the report.
    pub device_name: String,
    /// More (non-autodiff) devices for data-parallel training: each batch is split into
    /// `1 + replicas.len()` shards, one per device (see [`train_step_replicated`]). Empty:
    /// one device.
    pub replicas: Vec<Device>,
    /// Report progress every this many steps (and at the end of each epoch).
    pub log_every: usize,
    /// Write checkpoints into this run folder (every `checkpoint_every` steps and at the end
    /// of each epoch); none when `None`.
    pub checkpoint_dir: Option<&'a Path>,
    /// Optimiser steps between checkpoints within an epoch (0: only at epoch ends).
    pub checkpoint_every: usize,
    /// Continue from this checkpoint instead of starting afresh.
    pub resume: Option<Checkpoint>,
}

/// A trained model and its metrics.
pub struct Trained<M> {
    /// The model after the last epoch, in evaluation mode.
    pub model: M,
    /// Per-epoch metrics.
    pub epochs: Vec<EpochMetrics>,
    /// The final report.
    pub report: FinalMetrics,
}

/// Seeds everything random in a training step: Burn's RNG on `device` (weights, dropout on other backends)
/// and the host dropout-mask stream of `mixup-kernels` (Flex).
pub fn seed_device(device: &burn::tensor::Device, seed: u64) {
    device.seed(seed);
    mixup_kernels::seed_dropout(seed);
}

/// Derives an independent RNG seed for a `(seed, stream, a, b)` tuple (splitmix64), so that
/// shuffling and mixing draws do not depend on each other or on thread timing.
pub fn derive_seed(seed: u64, stream: u64, a: u64, b: u64) -> u64 {
    let mut x = seed;
    for v in [stream, a, b] {
        x = x
            .wrapping_add(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(v.wrapping_mul(0xBF58_476D_1CE4_E5B9));
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
    }
    x
}

const SHUFFLE: u64 = 1;
const MIX: u64 = 2;
const PARTNER: u64 = 3;
/// The device RNG (dropout) is re-seeded from this stream before every step, so that a run
/// resumed from a checkpoint draws exactly the masks the uninterrupted run draws.
const DROPOUT: u64 = 4;
/// Replicas of a data-parallel step draw their mixing from this stream, keyed by the step's
/// own seed. (Their dropout masks come from Burn's one process-wide RNG, seeded once per step
/// above, in whatever order the replica threads draw: data-parallel runs with dropout are not
/// repeatable draw for draw.)
const REPLICA: u64 = 5;

/// Accuracy and mean loss of `model` on `examples`.
pub fn evaluate<M: MixingPoints>(
    model: &M,
    examples: &[EncodedExample],
    batch_size: usize,
    max_len: usize,
    num_classes: usize,
    device: &Device,
) -> (f64, f64) {
    if examples.is_empty() {
        return (0.0, 0.0);
    }
    let mut correct = 0i64;
    let mut loss_sum = 0.0f64;
    for idx in batch_indices::<StdRng>(examples.len(), batch_size, None) {
        let items: Vec<&EncodedExample> = idx.iter().map(|&i| &examples[i]).collect();
        let batch = TextBatch::new(&items, max_len, device);
        let n = batch.len();
        let logits = model.forward(batch.ids, batch.mask);
        let loss = soft_cross_entropy(
            logits.clone(),
            soft_targets(batch.labels.clone(), num_classes, 0.0),
            None,
        );
        let hits = logits
            .argmax(1)
            .reshape([n])
            .equal(batch.labels)
            .int()
            .sum();
        correct += hits.into_scalar::<i64>();
        loss_sum += loss.into_scalar::<f64>() * n as f64;
    }
    (
        correct as f64 / examples.len() as f64,
        loss_sum / examples.len() as f64,
    )
}

/// Class probabilities of `examples` (their labels are ignored), one row of `classes` per
/// example.
///
/// # Errors
///
/// If the backend cannot read the probabilities back.
pub fn predict_proba<M: MixingPoints>(
    model: &M,
    examples: &[EncodedExample],
    batch_size: usize,
    max_len: usize,
    device: &Device,
) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(examples.len());
    for idx in batch_indices::<StdRng>(examples.len(), batch_size, None) {
        let items: Vec<&EncodedExample> = idx.iter().map(|&i| &examples[i]).collect();
        let batch = TextBatch::new(&items, max_len, device);
        let probs = softmax(model.forward(batch.ids, batch.mask), 1);
        let [n, c] = probs.dims();
        let flat: Vec<f32> = probs
            .into_data()
            .convert::<f32>()
            .try_to_vec()
            .map_err(|e| anyhow::anyhow!("reading probabilities back: {e:?}"))?;
        out.extend((0..n).map(|i| flat[i * c..(i + 1) * c].to_vec()));
    }
    Ok(out)
}

/// Builds a model with `build` (on the seeded autodiff device) and trains it as the recipe
/// says, reporting progress through `on_event`.
///
/// # Errors
///
/// If `build` fails, or the recipe's method cannot run on this model (e.g. a Manifold point
/// it does not have).
pub fn train<M>(
    build: impl FnOnce(&Device) -> anyhow::Result<M>,
    setup: &TrainSetup<'_>,
    on_event: &mut dyn FnMut(&Event),
) -> anyhow::Result<Trained<M>>
where
    M: Module + MixingPoints + Send,
{
    let started = Instant::now();
    let recipe = setup.recipe;
    let data = setup.data;
    let t = &recipe.train;
    let num_classes = data.labels.len();
    let method = recipe.method_kind().map_err(anyhow::Error::msg)?;
    let mix_config = recipe
        .mixup_config(num_classes)
        .map_err(|(field, reason)| anyhow::anyhow!("{field}: {reason}"))?;
    let device = setup.device.clone();
    let ad = device.clone().autodiff();
    // Seed before initialisation: the seed picks the initial weights, then dropout.
    crate::train::seed_device(&ad, t.seed);
    let mut model = build(&ad)?;
    let replica_devices: Vec<Device> = std::iter::once(ad.clone())
        .chain(setup.replicas.iter().map(|d| d.clone().autodiff()))
        .collect();
    let plan =
        StepPlan::new(recipe, &model.points(), num_classes, data.layout).map_err(
            |e| match setup.recipe_path {
                Some(p) => anyhow::anyhow!("{}: {e}", p.display()),
                None => e,
            },
        )?;
    let mut optim = build_optimizer(t, &model);
    let steps_per_epoch = data.train.len().div_ceil(t.batch_size.max(1));
    let schedule = LrSchedule::new(t, steps_per_epoch * t.epochs);
    let mut global_step = 0usize;
    let max_len = recipe.data.max_len;
    let mut epochs = Vec::with_capacity(t.epochs);
    let mut first_epoch = 1;
    let mut resumed: Option<TrainState> = None;
    let mut elapsed_before = 0.0;
    if let Some(ck) = &setup.resume {
        let st = &ck.state;
        if st.recipe != recipe.name || st.seed != t.seed {
            anyhow::bail!(
                "the checkpoint is of recipe {:?} seed {}, not of recipe {:?} seed {}",
                st.recipe,
                st.seed,
                recipe.name,
                t.seed
            );
        }
        if st.global_step > steps_per_epoch * t.epochs || st.next_step > steps_per_epoch {
            anyhow::bail!(
                "the checkpoint is at step {} (epoch {}, batch {}), beyond this run's {} steps \
                 of {} per epoch: the data or batch size changed",
                st.global_step,
                st.epoch,
                st.next_step,
                steps_per_epoch * t.epochs,
                steps_per_epoch
            );
        }
        let record = burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(
            ck.model.clone(),
        ))
        .map_err(|e| anyhow::anyhow!("the checkpoint's model does not load: {e:?}"))?;
        model = model.try_load_record(record).map_err(|e| {
            anyhow::anyhow!("the checkpoint's model does not match the recipe's model: {e:?}")
        })?;
        optim = optim
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(ck.optim.clone()))
            .map_err(|e| {
                anyhow::anyhow!("the checkpoint's optimiser state does not load: {e:?}")
            })?;
        global_step = st.global_step;
        epochs = st.epochs.clone();
        first_epoch = st.epoch;
        elapsed_before = st.elapsed_seconds;
        resumed = Some(st.clone());
    }
    let save = |model: &M,
                optim: &burn::optim::ModuleOptimizer,
                state: TrainState,
                on_event: &mut dyn FnMut(&Event)|
     -> anyhow::Result<Option<std::path::PathBuf>> {
        let Some(dir) = setup.checkpoint_dir else {
            return Ok(None);
        };
        let model_bytes = model
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| anyhow::anyhow!("serialising the model for a checkpoint: {e:?}"))?;
        let optim_bytes = optim
            .into_bytes()
            .map_err(|e| anyhow::anyhow!("serialising the optimiser for a checkpoint: {e:?}"))?;
        let global_step = state.global_step;
        let path = checkpoint::write(
            dir,
            &Checkpoint {
                state,
                model: model_bytes.to_vec(),
                optim: optim_bytes.to_vec(),
            },
        )?;
        on_event(&Event::Checkpoint {
            path: path.clone(),
            global_step,
        });
        Ok(Some(path))
    };
    let mut last_checkpoint: Option<std::path::PathBuf> = None;

    for epoch in first_epoch..=t.epochs {
        let mixing = method != MixMethod::None
            && mix_config.enabled()
            && recipe.method.off_epoch.is_none_or(|off| epoch < off);
        let mut shuffle = StdRng::seed_from_u64(derive_seed(t.seed, SHUFFLE, epoch as u64, 0));
        let batches = batch_indices(data.train.len(), t.batch_size, Some(&mut shuffle));
        // A second, independent order of the training set: the partner batches of methods that
        // mix with a separate batch (TMix). Batch sizes match step by step.
        let partner_batches = if mixing && method.separate_batch() {
            let mut order = StdRng::seed_from_u64(derive_seed(t.seed, PARTNER, epoch as u64, 0));
            batch_indices(data.train.len(), t.batch_size, Some(&mut order))
        } else {
            Vec::new()
        };
        let steps = batches.len();
        let epoch_start = Instant::now();
        let mut loss_acc: Option<Tensor<1>> = None;
        let mut hits_acc: Option<Tensor<1, Int>> = None;
        let mut seen = 0usize;
        let mut start_step = 0;
        let mut seconds_before = 0.0;
        if let Some(st) = resumed.take().filter(|st| st.epoch == epoch) {
            start_step = st.next_step;
            seen = st.seen;
            seconds_before = st.epoch_train_seconds;
            loss_acc = st.loss_sum_bits.map(|bits| {
                Tensor::<1>::from_data(TensorData::new(vec![f32::from_bits(bits)], [1]), &ad)
            });
            hits_acc = st
                .hits_sum
                .map(|h| Tensor::<1, Int>::from_data(TensorData::new(vec![h], [1]), &ad));
        }
        for (step, idx) in batches.iter().enumerate().skip(start_step) {
            let items: Vec<&EncodedExample> = idx.iter().map(|&i| &data.train[i]).collect();
            let partner_items: Option<Vec<&EncodedExample>> = partner_batches
                .get(step)
                .map(|pidx| pidx.iter().map(|&i| &data.train[i]).collect());
            let n = items.len();
            let mut rng =
                StdRng::seed_from_u64(derive_seed(t.seed, MIX, epoch as u64, step as u64));
            let lr = schedule.lr(global_step);
            global_step += 1;
            crate::train::seed_device(&ad, derive_seed(t.seed, DROPOUT, epoch as u64, step as u64));
            let (next, report) = if replica_devices.len() == 1 {
                train_step(
                    model,
                    &mut optim,
                    lr,
                    &plan,
                    &StepBatch {
                        items: &items,
                        partner_items: partner_items.as_deref(),
                        mixing,
                    },
                    &mut rng,
                    &ad,
                )?
            } else {
                // One contiguous shard per device (as even as the batch allows; a last batch
                // with fewer rows than devices uses fewer devices), each with its own mixing
                // draws.
                let k = replica_devices.len().min(n);
                let bounds: Vec<usize> = (0..=k).map(|i| i * n / k).collect();
                let shards: Vec<StepBatch<'_>> = bounds
                    .windows(2)
                    .map(|w| StepBatch {
                        items: &items[w[0]..w[1]],
                        partner_items: partner_items.as_deref().map(|p| &p[w[0]..w[1]]),
                        mixing,
                    })
                    .collect();
                let mut rngs: Vec<StdRng> = (0..k as u64)
                    .map(|r| {
                        StdRng::seed_from_u64(derive_seed(
                            derive_seed(t.seed, MIX, epoch as u64, step as u64),
                            REPLICA,
                            r,
                            0,
                        ))
                    })
                    .collect();
                train_step_replicated(
                    model,
                    &mut optim,
                    lr,
                    &plan,
                    &shards,
                    &mut rngs,
                    &replica_devices[..k],
                )?
            };
            model = next;
            let weighted = report.loss.mul_scalar(n as f32);
            loss_acc = Some(match loss_acc {
                Some(acc) => acc.add(weighted),
                None => weighted,
            });
            hits_acc = Some(match hits_acc {
                Some(acc) => acc.add(report.hits),
                None => report.hits,
            });
            seen += n;
            let checkpoint_now = setup.checkpoint_every > 0
                && global_step.is_multiple_of(setup.checkpoint_every)
                && step + 1 < steps;
            if checkpoint_now || (step + 1) % setup.log_every.max(1) == 0 || step + 1 == steps {
                let (loss, acc) = read_running(&loss_acc, &hits_acc, seen);
                if !loss.is_finite() {
                    // The running sum turns NaN/inf at the first bad step and stays so, so no
                    // checkpoint is ever written after it.
                    let last = match &last_checkpoint {
                        Some(p) => format!(
                            "the last good checkpoint is {} (`mixup train --resume` continues \
                             from it)",
                            p.display()
                        ),
                        None => "no checkpoint was written".to_string(),
                    };
                    anyhow::bail!(
                        "training diverged: the loss is {loss} by epoch {epoch} step {} (of \
                         {steps}); stopped, {last}. Lower train.lr (now {}) or check the data.",
                        step + 1,
                        t.lr
                    );
                }
                on_event(&Event::Step {
                    epoch,
                    step: step + 1,
                    steps,
                    loss,
                    acc,
                    samples_per_s: seen as f64
                        / (seconds_before + epoch_start.elapsed().as_secs_f64()).max(1e-9),
                });
            }
            if checkpoint_now {
                let state = TrainState {
                    recipe: recipe.name.clone(),
                    seed: t.seed,
                    epoch,
                    next_step: step + 1,
                    global_step,
                    seen,
                    loss_sum_bits: loss_acc.clone().map(|l| l.into_scalar::<f32>().to_bits()),
                    hits_sum: hits_acc.clone().map(|h| h.into_scalar::<i64>()),
                    epoch_train_seconds: seconds_before + epoch_start.elapsed().as_secs_f64(),
                    epochs: epochs.clone(),
                    elapsed_seconds: elapsed_before + started.elapsed().as_secs_f64(),
                };
                last_checkpoint = save(&model, &optim, state, on_event)?.or(last_checkpoint);
            }
        }
        let (train_loss, train_acc) = read_running(&loss_acc, &hits_acc, seen);
        let train_seconds = seconds_before + epoch_start.elapsed().as_secs_f64();

        let eval_model = model.valid();
        let eb = t.eval_batch_size;
        let (dev_acc, dev_loss) = match &data.dev {
            Some(dev) => {
                let (a, l) = evaluate(&eval_model, dev, eb, max_len, num_classes, &device);
                (Some(a), Some(l))
            }
            None => (None, None),
        };
        let (test_acc, test_loss) =
            evaluate(&eval_model, &data.test, eb, max_len, num_classes, &device);
        let metrics = EpochMetrics {
            epoch,
            mixing,
            train_loss,
            train_acc_dominant: train_acc,
            dev_loss,
            dev_acc,
            test_loss,
            test_acc,
            train_seconds,
            samples_per_s: seen as f64 / train_seconds.max(1e-9),
        };
        on_event(&Event::Epoch(metrics.clone()));
        epochs.push(metrics);
        let state = TrainState {
            recipe: recipe.name.clone(),
            seed: t.seed,
            epoch: epoch + 1,
            next_step: 0,
            global_step,
            seen: 0,
            loss_sum_bits: None,
            hits_sum: None,
            epoch_train_seconds: 0.0,
            epochs: epochs.clone(),
            elapsed_seconds: elapsed_before + started.elapsed().as_secs_f64(),
        };
        last_checkpoint = save(&model, &optim, state, on_event)?.or(last_checkpoint);
    }

    let model = model.valid();
    let last = epochs
        .last()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no epoch ran"))?;
    let train_total: f64 = epochs.iter().map(|e| e.train_seconds).sum();
    let mut secs: Vec<f64> = epochs.iter().map(|e| e.train_seconds).collect();
    secs.sort_by(f64::total_cmp);
    let report = FinalMetrics {
        recipe: recipe.name.clone(),
        method: method.to_string(),
        seed: t.seed,
        device: setup.device_name.clone(),
        epochs: t.epochs,
        test_accuracy: last.test_acc,
        test_loss: last.test_loss,
        dev_accuracy: last.dev_acc,
        train_samples_per_s: (data.train.len() * t.epochs) as f64 / train_total.max(1e-9),
        median_epoch_seconds: secs[secs.len() / 2],
        total_seconds: elapsed_before + started.elapsed().as_secs_f64(),
        train_size: data.train.len(),
        test_size: data.test.len(),
        vocab_size: data.tokenizer.vocab_size(),
        num_classes,
    };
    Ok(Trained {
        model,
        epochs,
        report,
    })
}

fn read_running(
    loss: &Option<Tensor<1>>,
    hits: &Option<Tensor<1, Int>>,
    seen: usize,
) -> (f64, f64) {
    let seen = seen.max(1) as f64;
    let l = loss.clone().map(|t| t.into_scalar::<f64>()).unwrap_or(0.0);
    let h = hits.clone().map(|t| t.into_scalar::<i64>()).unwrap_or(0);
    (l / seen, h as f64 / seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_seeds_differ_by_stream_and_step() {
        let a = derive_seed(0, MIX, 1, 0);
        assert_ne!(a, derive_seed(0, MIX, 1, 1));
        assert_ne!(a, derive_seed(0, SHUFFLE, 1, 0));
        assert_ne!(a, derive_seed(1, MIX, 1, 0));
        assert_eq!(a, derive_seed(0, MIX, 1, 0));
    }
}
