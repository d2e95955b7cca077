//! The training loop of a classifier: Adam or AdamW with a per-step learning rate
//! ([`crate::optim`]), mixing through [`MixingPoints`] ([`crate::step`]), evaluation every
//! epoch, checkpoints that resume exactly ([`crate::checkpoint`]). Progress goes to a
//! callback as [`Event`]s; nothing is printed.
//!
//! [`crate::learner`] runs the same step under burn-train's `Learner` instead.

use std::{cell::Cell, path::Path, sync::Mutex, time::Instant};

use burn::{
    module::{Module, ModuleVisitor, Param},
    tensor::{Bool, Device, Int, Tensor, TensorData, activation::softmax},
};
use mixup_core::{Layout, MixMethod};
use mixup_core::{soft_cross_entropy, soft_targets};
use mixup_data::{EncodedExample, TextBatch, batch_indices};
use mixup_models::MixingPoints;
use rand::{SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use crate::{
    TrainError,
    checkpoint::{self, Checkpoint, TrainState},
    config::{Selection, TrainConfig},
    error::Result,
    mixtext::UnlabelledExample,
    optim::{LrSchedule, build_optimizer},
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
    /// Development loss, when there is a dev split and the epoch was evaluated.
    pub dev_loss: Option<f64>,
    /// Development accuracy, when there is a dev split and the epoch was evaluated.
    pub dev_acc: Option<f64>,
    /// Test loss of this epoch's model (reported, never used to select a model); none when
    /// the epoch was not evaluated ([`TrainConfig::eval_every`]).
    pub test_loss: Option<f64>,
    /// Test accuracy of this epoch's model; none when the epoch was not evaluated.
    pub test_acc: Option<f64>,
    /// Wall-clock seconds of the training phase of the epoch (batching, forward, backward,
    /// optimiser step; evaluation excluded).
    pub train_seconds: f64,
    /// Training examples per second in this epoch.
    pub samples_per_s: f64,
}

/// What a finished run reports (the last epoch's model; no selection on test).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinalMetrics {
    /// The run's name ([`TrainSetup::name`]; the recipe name in the CLI).
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
    /// The epoch whose model is reported and kept: the last, or the best on dev
    /// (`select = "best-dev"`). 0 in reports written before selection existed.
    #[serde(default)]
    pub selected_epoch: usize,
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

/// A classification dataset, encoded: the examples of each split, borrowed.
#[derive(Clone, Copy)]
pub struct TextData<'a> {
    /// Training examples.
    pub train: &'a [EncodedExample],
    /// Development examples, when there is a dev split.
    pub dev: Option<&'a [EncodedExample]>,
    /// Test examples (evaluated every epoch, never used to select a model).
    pub test: &'a [EncodedExample],
    /// Number of classes (labels are `0..num_classes`).
    pub num_classes: usize,
    /// Vocabulary size (reported in [`FinalMetrics`]).
    pub vocab_size: usize,
    /// Where the special tokens of a row are ([`Layout::PLAIN`] for word vocabularies,
    /// [`Layout::BERT`] for `[CLS] ... [SEP]` rows); SSMix never replaces them.
    pub layout: Layout,
    /// Unlabelled texts with their augmentations, for MixText (empty otherwise).
    pub unlabelled: &'a [UnlabelledExample],
}

/// Everything a training run needs besides the model.
pub struct TrainSetup<'a> {
    /// The run's configuration.
    pub config: &'a TrainConfig,
    /// The run's name (checked on resume, reported).
    pub name: &'a str,
    /// The encoded data.
    pub data: TextData<'a>,
    /// The (non-autodiff) device to train on.
    pub device: Device,
    /// The device's name, for the report.
    pub device_name: String,
    /// More (non-autodiff) devices for data-parallel training: each batch is split into
    /// `1 + replicas.len()` shards, one per device (see [`train_step_replicated`]). Empty:
    /// one device.
    pub replicas: Vec<Device>,
    /// Write checkpoints into this run folder (every [`TrainConfig::checkpoint_every`] steps
    /// and at the end of each epoch); none when `None`.
    pub checkpoint_dir: Option<&'a Path>,
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

/// Serialises seeding and weight initialisation across the threads of this process: Burn's
/// device RNG is one per process, so two trainings started in parallel (tests, sweeps in one
/// process) would otherwise interleave their draws and get different initial weights each run.
static DEVICE_RNG: Mutex<()> = Mutex::new(());

thread_local! {
    /// Whether this thread holds [`DEVICE_RNG`] (inside [`seeded_init`]), so that a
    /// [`seed_device`] call from the build closure does not wait on itself.
    static HOLDS_RNG: Cell<bool> = const { Cell::new(false) };
}

fn seed_unlocked(device: &Device, seed: u64) {
    device.seed(seed);
    mixup_kernels::seed_dropout(seed);
}

/// Seeds everything random in a training step: Burn's RNG on `device` (weights, dropout on other backends)
/// and the host dropout-mask stream of `mixup-kernels` (Flex).
pub fn seed_device(device: &Device, seed: u64) {
    if HOLDS_RNG.with(Cell::get) {
        return seed_unlocked(device, seed);
    }
    let _guard = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
    seed_unlocked(device, seed);
}

/// Seeds `device` with `seed`, runs `build` (which initialises a model) and draws every
/// parameter the model left lazy (Burn initialises a parameter on its first use), all while
/// no other thread of this process seeds or initialises through this function or
/// [`seed_device`]: the same seed gives the same weights however many trainings run in
/// parallel, and the weights do not depend on what is seeded between building and the first
/// forward. Code that draws from Burn's RNG directly (`device.seed`, `Tensor::random`) on
/// another thread is not held back; route it through here to make it repeatable too.
pub fn seeded_init<M: Module>(device: &Device, seed: u64, build: impl FnOnce() -> M) -> M {
    match seeded_try_init(device, seed, || Ok::<_, std::convert::Infallible>(build())) {
        Ok(model) => model,
        Err(never) => match never {},
    }
}

/// [`seeded_init`] for a `build` that can fail.
pub fn seeded_try_init<M: Module, E>(
    device: &Device,
    seed: u64,
    build: impl FnOnce() -> std::result::Result<M, E>,
) -> std::result::Result<M, E> {
    let init = || {
        seed_unlocked(device, seed);
        let model = build()?;
        model.visit(&mut Materialise);
        Ok(model)
    };
    if HOLDS_RNG.with(Cell::get) {
        return init();
    }
    let _guard = DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner());
    struct Release;
    impl Drop for Release {
        fn drop(&mut self) {
            HOLDS_RNG.with(|h| h.set(false));
        }
    }
    HOLDS_RNG.with(|h| h.set(true));
    let _release = Release;
    init()
}

/// Initialises every lazy parameter of a module (by reading it once).
struct Materialise;

impl ModuleVisitor for Materialise {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<D, Int>>) {
        let _ = param.val();
    }
    fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<D, Bool>>) {
        let _ = param.val();
    }
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
/// own seed. (On flex their dropout masks come from branches of the step's per-thread mask
/// stream, so flex runs repeat; other backends draw from Burn's one process-wide RNG, seeded
/// once per step above, in whatever order the replica threads draw.)
const REPLICA: u64 = 5;

/// One optimiser step on one device, or split across several (one contiguous shard per
/// device, as even as the batch allows; a batch with fewer rows than devices uses fewer
/// devices), each shard with its own mixing draws derived from `mixing_seed`. This is the
/// step [`train`] takes for every batch; `devices` are autodiff devices, the model on the
/// first.
///
/// # Errors
///
/// As [`train_step`] and [`train_step_replicated`].
pub fn train_step_split<M: Module + MixingPoints + Send>(
    model: M,
    optim: &mut burn::optim::ModuleOptimizer,
    lr: f64,
    plan: &StepPlan,
    batch: &StepBatch<'_>,
    mixing_seed: u64,
    devices: &[Device],
) -> Result<(M, crate::step::StepReport)> {
    if devices.len() <= 1 {
        let mut rng = StdRng::seed_from_u64(mixing_seed);
        let Some(device) = devices.first() else {
            return Err(TrainError::Method("train_step_split: no device".into()));
        };
        return train_step(model, optim, lr, plan, batch, &mut rng, device);
    }
    let n = batch.items.len();
    let k = devices.len().min(n);
    let bounds: Vec<usize> = (0..=k).map(|i| i * n / k).collect();
    let shards: Vec<StepBatch<'_>> = bounds
        .windows(2)
        .map(|w| StepBatch {
            items: &batch.items[w[0]..w[1]],
            partner_items: batch.partner_items.map(|p| &p[w[0]..w[1]]),
            mixing: batch.mixing,
            // Each shard takes its share of the unlabelled texts.
            unlabelled: batch.unlabelled.map(|(u, weight)| {
                let m = u.len();
                (&u[w[0] * m / n..w[1] * m / n], weight)
            }),
        })
        .collect();
    let mut rngs: Vec<StdRng> = (0..k as u64)
        .map(|r| StdRng::seed_from_u64(derive_seed(mixing_seed, REPLICA, r, 0)))
        .collect();
    train_step_replicated(model, optim, lr, plan, &shards, &mut rngs, &devices[..k])
}

/// Accuracy and mean loss of `model` on `examples` (rows cut to `max_len`).
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
/// [`TrainError::Backend`] if the backend cannot read the probabilities back.
pub fn predict_proba<M: MixingPoints>(
    model: &M,
    examples: &[EncodedExample],
    batch_size: usize,
    max_len: usize,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
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
            .map_err(|e| TrainError::Backend(format!("reading probabilities back: {e:?}")))?;
        out.extend((0..n).map(|i| flat[i * c..(i + 1) * c].to_vec()));
    }
    Ok(out)
}

/// Builds a model with `build` (on the seeded autodiff device) and trains it as
/// `setup.config` says, reporting progress through `on_event`.
///
/// # Errors
///
/// A [`TrainError`]: a bad config, a failing `build`, a method that cannot run on this model
/// (e.g. a Manifold point it does not have), a checkpoint of another run, a diverged loss, or
/// a checkpoint that cannot be written.
pub fn train<M>(
    build: impl FnOnce(&Device) -> Result<M>,
    setup: &TrainSetup<'_>,
    on_event: &mut dyn FnMut(&Event),
) -> Result<Trained<M>>
where
    M: Module + MixingPoints + Send,
{
    let started = Instant::now();
    let t = setup.config;
    t.validate()?;
    check_data(&setup.data)?;
    let ad = setup.device.clone().autodiff();
    // Seed before initialisation: the seed picks the initial weights, then dropout.
    let mut model = seeded_try_init(&ad, t.seed, || build(&ad))?;
    let plan = StepPlan::new(
        &t.step,
        &model.points(),
        setup.data.num_classes,
        setup.data.layout,
    )?
    .with_head_lr(&model, t.optim.lr, t.optim.head_lr)?;
    let mut optim = build_optimizer(&t.optim, &model);
    let steps_per_epoch = setup.data.train.len().div_ceil(t.batch_size.max(1));
    let mut run = Run {
        setup,
        plan,
        schedule: LrSchedule::new(&t.optim, steps_per_epoch * t.epochs),
        devices: std::iter::once(ad.clone())
            .chain(setup.replicas.iter().map(|d| d.clone().autodiff()))
            .collect(),
        started,
        global_step: 0,
        epochs: Vec::with_capacity(t.epochs),
        elapsed_before: 0.0,
        last_checkpoint: None,
        best: None,
        best_bytes: None,
    };
    if t.select == Selection::BestDev && setup.data.dev.is_none() {
        return Err(TrainError::config(
            "select",
            "best-dev selects on the dev split, and this data has none",
        ));
    }
    let mut first_epoch = 1;
    let mut resumed = None;
    // The best dev epoch's model so far (`select = "best-dev"`).
    let mut best: Option<(usize, M)> = None;
    if let Some(ck) = &setup.resume {
        (model, optim) = run.restore(ck, model, optim, steps_per_epoch)?;
        first_epoch = ck.state.epoch;
        resumed = Some(ck.state.clone());
        if let (Some(epoch), Some(bytes)) = (ck.state.best_epoch, &ck.best_model) {
            best = Some((epoch, load_model_bytes(model.clone(), bytes)?));
            run.best = Some(epoch);
            run.best_bytes = Some(bytes.clone());
        }
    }
    for epoch in first_epoch..=t.epochs {
        let within = resumed.take().filter(|st| st.epoch == epoch);
        let (next, sums) = run.train_epoch(model, &mut optim, epoch, within, on_event)?;
        model = next;
        let metrics = run.evaluate_epoch(&model, epoch, sums);
        on_event(&Event::Epoch(metrics.clone()));
        if t.select == Selection::BestDev && t.evaluates(epoch) {
            let dev = |e: usize| run.epochs.get(e - 1).and_then(|m| m.dev_acc);
            let better = match (&best, metrics.dev_acc) {
                (None, _) => true,
                (Some((b, _)), Some(now)) => dev(*b).is_none_or(|was| now > was),
                (Some(_), None) => false,
            };
            if better {
                if setup.checkpoint_dir.is_some() {
                    run.best_bytes = Some(model_bytes(&model)?);
                }
                best = Some((epoch, model.clone()));
                run.best = Some(epoch);
            }
        }
        run.epochs.push(metrics);
        let state = run.state(epoch + 1, 0, None);
        run.save(&model, &optim, state, on_event)?;
    }
    let report = run.final_report()?;
    let model = match best {
        Some((_, m)) => m,
        None => model,
    };
    Ok(Trained {
        model: model.valid(),
        epochs: run.epochs,
        report,
    })
}

/// A model's record as bytes (a checkpoint's section).
fn model_bytes<M: Module>(model: &M) -> Result<Vec<u8>> {
    model
        .clone()
        .into_record()
        .into_bytes()
        .map(|b| b.to_vec())
        .map_err(|e| TrainError::Backend(format!("serialising the model for a checkpoint: {e:?}")))
}

/// `model` with the weights of a record's bytes (a checkpoint's section).
fn load_model_bytes<M: Module>(model: M, bytes: &[u8]) -> Result<M> {
    let record =
        burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes.to_vec()))
            .map_err(|e| {
                TrainError::Checkpoint(format!("a model in the checkpoint does not load: {e:?}"))
            })?;
    model.try_load_record(record).map_err(|e| {
        TrainError::Checkpoint(format!(
            "a model in the checkpoint does not match the configured model: {e:?}"
        ))
    })
}

/// Refuses data the loop cannot train on: no training rows, or a label out of range.
fn check_data(data: &TextData<'_>) -> Result<()> {
    if data.train.is_empty() {
        return Err(TrainError::config(
            "data",
            "the training split has no examples",
        ));
    }
    let num_classes = data.num_classes;
    let splits = [
        ("train", Some(data.train)),
        ("dev", data.dev),
        ("test", Some(data.test)),
    ];
    if let Some(text) = data.unlabelled.iter().find(|u| u.views.is_empty()) {
        return Err(TrainError::config(
            "data",
            format!("an unlabelled text has no encoding ({text:?})"),
        ));
    }
    if let Some(first) = data.unlabelled.first()
        && data
            .unlabelled
            .iter()
            .any(|u| u.views.len() != first.views.len())
    {
        return Err(TrainError::config(
            "data",
            "every unlabelled text needs the same number of augmentations",
        ));
    }
    for (split, examples) in splits {
        if let Some(bad) = examples
            .into_iter()
            .flatten()
            .find(|e| e.label >= num_classes)
        {
            return Err(TrainError::config(
                "data",
                format!(
                    "a {split} example has label {} but there are {num_classes} classes",
                    bad.label
                ),
            ));
        }
    }
    Ok(())
}

/// The state of one training run between steps.
struct Run<'a> {
    setup: &'a TrainSetup<'a>,
    plan: StepPlan,
    schedule: LrSchedule,
    /// The autodiff devices: the first holds the model, the others its replicas.
    devices: Vec<Device>,
    started: Instant,
    /// Optimiser steps taken in the whole run.
    global_step: usize,
    /// Metrics of the finished epochs.
    epochs: Vec<EpochMetrics>,
    /// Seconds the run had taken before it was resumed.
    elapsed_before: f64,
    last_checkpoint: Option<std::path::PathBuf>,
    /// The best dev epoch so far (`select = "best-dev"`).
    best: Option<usize>,
    /// Its model's record, for checkpoints.
    best_bytes: Option<Vec<u8>>,
}

/// An epoch's running sums (on the device until read).
struct EpochSums {
    loss: Option<Tensor<1>>,
    hits: Option<Tensor<1, Int>>,
    seen: usize,
    mixing: bool,
    train_seconds: f64,
}

impl Run<'_> {
    /// Loads the model and optimiser of `ck` after checking it belongs to this run.
    fn restore<M: Module>(
        &mut self,
        ck: &Checkpoint,
        model: M,
        optim: burn::optim::ModuleOptimizer,
        steps_per_epoch: usize,
    ) -> Result<(M, burn::optim::ModuleOptimizer)> {
        let (t, st) = (self.setup.config, &ck.state);
        if st.recipe != self.setup.name || st.seed != t.seed {
            return Err(TrainError::Checkpoint(format!(
                "the checkpoint is of recipe {:?} seed {}, not of recipe {:?} seed {}",
                st.recipe, st.seed, self.setup.name, t.seed
            )));
        }
        if st.global_step > steps_per_epoch * t.epochs || st.next_step > steps_per_epoch {
            return Err(TrainError::Checkpoint(format!(
                "the checkpoint is at step {} (epoch {}, batch {}), beyond this run's {} steps \
                 of {} per epoch: the data or batch size changed",
                st.global_step,
                st.epoch,
                st.next_step,
                steps_per_epoch * t.epochs,
                steps_per_epoch
            )));
        }
        let model = load_model_bytes(model, &ck.model)?;
        let optim = optim
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(ck.optim.clone()))
            .map_err(|e| {
                TrainError::Checkpoint(format!(
                    "the checkpoint's optimiser state does not load: {e:?}"
                ))
            })?;
        self.global_step = st.global_step;
        self.epochs = st.epochs.clone();
        self.elapsed_before = st.elapsed_seconds;
        Ok((model, optim))
    }

    /// The loop's position for a checkpoint: the next step is `next_step` of `epoch`, with the
    /// epoch's running sums so far.
    fn state(&self, epoch: usize, next_step: usize, sums: Option<&EpochSums>) -> TrainState {
        TrainState {
            recipe: self.setup.name.to_string(),
            seed: self.setup.config.seed,
            epoch,
            next_step,
            global_step: self.global_step,
            seen: sums.map_or(0, |s| s.seen),
            loss_sum_bits: sums
                .and_then(|s| s.loss.clone())
                .map(|l| l.into_scalar::<f32>().to_bits()),
            hits_sum: sums
                .and_then(|s| s.hits.clone())
                .map(|h| h.into_scalar::<i64>()),
            epoch_train_seconds: sums.map_or(0.0, |s| s.train_seconds),
            epochs: self.epochs.clone(),
            elapsed_seconds: self.elapsed_before + self.started.elapsed().as_secs_f64(),
            best_epoch: self.best,
        }
    }

    /// Writes a checkpoint of `model` and `optim` at `state` when the run has a checkpoint
    /// folder.
    fn save<M: Module>(
        &mut self,
        model: &M,
        optim: &burn::optim::ModuleOptimizer,
        state: TrainState,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<()> {
        let Some(dir) = self.setup.checkpoint_dir else {
            return Ok(());
        };
        let model_bytes = model_bytes(model)?;
        let best_model = self.best_bytes.clone();
        let optim_bytes = optim.into_bytes().map_err(|e| {
            TrainError::Backend(format!("serialising the optimiser for a checkpoint: {e:?}"))
        })?;
        let global_step = state.global_step;
        let path = checkpoint::write(
            dir,
            &Checkpoint {
                state,
                model: model_bytes,
                optim: optim_bytes.to_vec(),
                best_model,
            },
        )?;
        on_event(&Event::Checkpoint {
            path: path.clone(),
            global_step,
        });
        self.last_checkpoint = Some(path);
        Ok(())
    }

    /// Trains epoch `epoch` (from step `resumed.next_step` when resuming inside it): returns
    /// the model and the epoch's running sums.
    fn train_epoch<M: Module + MixingPoints + Send>(
        &mut self,
        mut model: M,
        optim: &mut burn::optim::ModuleOptimizer,
        epoch: usize,
        resumed: Option<TrainState>,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<(M, EpochSums)> {
        let (t, data) = (self.setup.config, self.setup.data);
        let method = self.plan.method;
        let mixing = self.plan.mixes() && t.off_epoch.is_none_or(|off| epoch <= off);
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
        let ad = self.devices[0].clone();
        let mut sums = EpochSums {
            loss: None,
            hits: None,
            seen: 0,
            mixing,
            train_seconds: 0.0,
        };
        let mut start_step = 0;
        let mut seconds_before = 0.0;
        if let Some(st) = resumed {
            start_step = st.next_step;
            sums.seen = st.seen;
            seconds_before = st.epoch_train_seconds;
            sums.loss = st.loss_sum_bits.map(|bits| {
                Tensor::<1>::from_data(TensorData::new(vec![f32::from_bits(bits)], [1]), &ad)
            });
            sums.hits = st
                .hits_sum
                .map(|h| Tensor::<1, Int>::from_data(TensorData::new(vec![h], [1]), &ad));
        }
        for (step, idx) in batches.iter().enumerate().skip(start_step) {
            let items: Vec<&EncodedExample> = idx.iter().map(|&i| &data.train[i]).collect();
            let partner_items: Option<Vec<&EncodedExample>> = partner_batches
                .get(step)
                .map(|pidx| pidx.iter().map(|&i| &data.train[i]).collect());
            let n = items.len();
            let lr = self.schedule.lr(self.global_step);
            self.global_step += 1;
            seed_device(&ad, derive_seed(t.seed, DROPOUT, epoch as u64, step as u64));
            let mixing_seed = derive_seed(t.seed, MIX, epoch as u64, step as u64);
            let texts: Vec<&UnlabelledExample> = if mixing && method == MixMethod::MixText {
                let per_step = if t.unlabelled_batch_size == 0 {
                    t.batch_size
                } else {
                    t.unlabelled_batch_size
                };
                crate::mixtext::unlabelled_batch(
                    data.unlabelled.len(),
                    per_step,
                    self.global_step - 1,
                    t.seed,
                )
                .into_iter()
                .map(|i| &data.unlabelled[i])
                .collect()
            } else {
                Vec::new()
            };
            let progress = (epoch - 1) as f64 + step as f64 / steps.max(1) as f64;
            let m = &self.plan.mixtext;
            let u_weight = (m.lambda_u * crate::mixtext::rampup(progress, m.rampup_epochs)) as f32;
            let batch = StepBatch {
                items: &items,
                partner_items: partner_items.as_deref(),
                mixing,
                unlabelled: (!texts.is_empty()).then_some((texts.as_slice(), u_weight)),
            };
            let (next, report) = train_step_split(
                model,
                optim,
                lr,
                &self.plan,
                &batch,
                mixing_seed,
                &self.devices,
            )?;
            model = next;
            let weighted = report.loss.mul_scalar(n as f32);
            sums.loss = Some(match sums.loss.take() {
                Some(acc) => acc.add(weighted),
                None => weighted,
            });
            sums.hits = Some(match sums.hits.take() {
                Some(acc) => acc.add(report.hits),
                None => report.hits,
            });
            sums.seen += n;
            sums.train_seconds = seconds_before + epoch_start.elapsed().as_secs_f64();
            let checkpoint_now = t.checkpoint_every > 0
                && self.global_step.is_multiple_of(t.checkpoint_every)
                && step + 1 < steps;
            if checkpoint_now || (step + 1) % t.log_every.max(1) == 0 || step + 1 == steps {
                let (loss, acc) = read_running(&sums.loss, &sums.hits, sums.seen);
                if !loss.is_finite() {
                    // The running sum turns NaN/inf at the first bad step and stays so, so no
                    // checkpoint is ever written after it.
                    return Err(TrainError::Diverged {
                        loss,
                        epoch,
                        step: step + 1,
                        steps,
                        lr: t.optim.lr,
                        last_checkpoint: self.last_checkpoint.clone(),
                    });
                }
                on_event(&Event::Step {
                    epoch,
                    step: step + 1,
                    steps,
                    loss,
                    acc,
                    samples_per_s: sums.seen as f64 / sums.train_seconds.max(1e-9),
                });
            }
            if checkpoint_now {
                let state = self.state(epoch, step + 1, Some(&sums));
                self.save(&model, optim, state, on_event)?;
            }
        }
        sums.train_seconds = seconds_before + epoch_start.elapsed().as_secs_f64();
        Ok((model, sums))
    }

    /// The metrics of a finished epoch: its training sums, and the model evaluated on dev and
    /// test.
    fn evaluate_epoch<M: Module + MixingPoints>(
        &self,
        model: &M,
        epoch: usize,
        sums: EpochSums,
    ) -> EpochMetrics {
        let (t, data, device) = (self.setup.config, self.setup.data, &self.setup.device);
        let (train_loss, train_acc) = read_running(&sums.loss, &sums.hits, sums.seen);
        let mut metrics = EpochMetrics {
            epoch,
            mixing: sums.mixing,
            train_loss,
            train_acc_dominant: train_acc,
            dev_loss: None,
            dev_acc: None,
            test_loss: None,
            test_acc: None,
            train_seconds: sums.train_seconds,
            samples_per_s: sums.seen as f64 / sums.train_seconds.max(1e-9),
        };
        if !t.evaluates(epoch) {
            return metrics;
        }
        let eval_model = model.valid();
        let (eb, max_len, classes) = (t.eval_batch_size, t.step.max_len, data.num_classes);
        if let Some(dev) = data.dev {
            let (a, l) = evaluate(&eval_model, dev, eb, max_len, classes, device);
            (metrics.dev_acc, metrics.dev_loss) = (Some(a), Some(l));
        }
        let (a, l) = evaluate(&eval_model, data.test, eb, max_len, classes, device);
        (metrics.test_acc, metrics.test_loss) = (Some(a), Some(l));
        metrics
    }

    /// The report of a finished run: its selected epoch's model (the last, or the best on
    /// dev).
    fn final_report(&self) -> Result<FinalMetrics> {
        let (t, data) = (self.setup.config, self.setup.data);
        let chosen = match self.best {
            Some(e) => self.epochs.get(e - 1),
            None => self.epochs.last(),
        };
        let last = chosen.cloned().ok_or_else(|| {
            TrainError::Checkpoint(
                "the checkpoint is of a finished run: no epoch left to train".into(),
            )
        })?;
        let (Some(test_accuracy), Some(test_loss)) = (last.test_acc, last.test_loss) else {
            return Err(TrainError::config(
                "eval_every",
                format!(
                    "epoch {} was not evaluated, yet it is the one reported",
                    last.epoch
                ),
            ));
        };
        let train_total: f64 = self.epochs.iter().map(|e| e.train_seconds).sum();
        let mut secs: Vec<f64> = self.epochs.iter().map(|e| e.train_seconds).collect();
        secs.sort_by(f64::total_cmp);
        Ok(FinalMetrics {
            recipe: self.setup.name.to_string(),
            method: self.plan.method.to_string(),
            seed: t.seed,
            device: self.setup.device_name.clone(),
            epochs: t.epochs,
            test_accuracy,
            test_loss,
            dev_accuracy: last.dev_acc,
            selected_epoch: last.epoch,
            train_samples_per_s: (data.train.len() * t.epochs) as f64 / train_total.max(1e-9),
            median_epoch_seconds: secs[secs.len() / 2],
            total_seconds: self.elapsed_before + self.started.elapsed().as_secs_f64(),
            train_size: data.train.len(),
            test_size: data.test.len(),
            vocab_size: data.vocab_size,
            num_classes: data.num_classes,
        })
    }
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
    use mixup_core::MixMethod;

    #[test]
    fn derived_seeds_differ_by_stream_and_step() {
        let a = derive_seed(0, MIX, 1, 0);
        assert_ne!(a, derive_seed(0, MIX, 1, 1));
        assert_ne!(a, derive_seed(0, SHUFFLE, 1, 0));
        assert_ne!(a, derive_seed(1, MIX, 1, 0));
        assert_eq!(a, derive_seed(0, MIX, 1, 0));
    }

    /// Initialisations seeded through [`seeded_init`] give the same weights while other
    /// threads seed and initialise at the same time (Burn's device RNG is one per process;
    /// before the lock, parallel tests got different initial weights from run to run).
    #[test]
    fn seeded_init_is_repeatable_while_other_threads_seed() {
        use burn::nn::LinearConfig;
        let device = Device::flex().autodiff();
        let weights = |device: &Device| -> Vec<f32> {
            let layer = seeded_init(device, 7, || LinearConfig::new(64, 64).init(device));
            layer
                .weight
                .val()
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .expect("f32")
        };
        let expected = weights(&device);
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let noise = scope.spawn(|| {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    seed_device(&device, n);
                    n += 1;
                }
            });
            let inits: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| (0..25).map(|_| weights(&device)).collect::<Vec<_>>()))
                .collect();
            let inits: Vec<_> = inits.into_iter().map(|init| init.join()).collect();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            noise.join().expect("noise thread");
            for init in inits {
                for w in init.expect("init thread") {
                    assert_eq!(
                        w, expected,
                        "an initialisation drew from another thread's seed"
                    );
                }
            }
        });
    }

    fn rows() -> Vec<EncodedExample> {
        (0..12u32)
            .map(|i| EncodedExample {
                ids: (0..3 + i % 3).map(|t| 2 + (i * 5 + t) % 27).collect(),
                label: (i % 3) as usize,
            })
            .collect()
    }

    /// A run of `config` on `rows` (train and test) with `dev`, on flex, without replicas.
    fn toy_setup<'a>(
        config: &'a TrainConfig,
        rows: &'a [EncodedExample],
        dev: Option<&'a [EncodedExample]>,
        checkpoint_dir: Option<&'a Path>,
        resume: Option<Checkpoint>,
    ) -> TrainSetup<'a> {
        TrainSetup {
            config,
            name: "t",
            data: TextData {
                train: rows,
                dev,
                test: rows,
                num_classes: 3,
                vocab_size: 30,
                layout: Layout::PLAIN,
                unlabelled: &[],
            },
            device: Device::flex(),
            device_name: "flex".into(),
            replicas: Vec::new(),
            checkpoint_dir,
            resume,
        }
    }

    /// Dev: the training rows with other labels, so that dev accuracy moves by epoch.
    fn dev_rows(rows: &[EncodedExample]) -> Vec<EncodedExample> {
        rows.iter()
            .map(|e| EncodedExample {
                ids: e.ids.clone(),
                label: (e.label + e.ids.len()) % 3,
            })
            .collect()
    }

    /// The tiny TextCNN of these tests.
    fn toy_cnn(d: &Device) -> Result<mixup_models::TextCnn> {
        Ok(mixup_models::TextCnnConfig::new(30, 3)
            .with_d_embed(8)
            .with_n_filters(4)
            .init(d))
    }

    fn run(step: crate::StepConfig, epochs: usize, off_epoch: Option<usize>) -> Vec<bool> {
        let rows = rows();
        let config = TrainConfig::new()
            .with_step(step.with_max_len(8))
            .with_epochs(epochs)
            .with_batch_size(4)
            .with_off_epoch(off_epoch);
        let setup = toy_setup(&config, &rows, None, None, None);
        let trained = train(toy_cnn, &setup, &mut |_| {}).expect("train");
        trained.epochs.iter().map(|e| e.mixing).collect()
    }

    /// `off_epoch = N` mixes N epochs, as timm's `mixup_off_epoch = N` (it mixed N - 1).
    #[test]
    fn off_epoch_n_mixes_the_first_n_epochs() {
        let word = crate::StepConfig::new().with_method(MixMethod::Word);
        assert_eq!(run(word.clone(), 3, Some(2)), [true, true, false]);
        assert_eq!(run(word.clone(), 2, Some(1)), [true, false]);
        assert_eq!(run(word, 2, None), [true, true]);
        // SSMix mixes whatever alpha is (it used to train clean at alpha 0).
        let ssmix = crate::bench::default_step_config(MixMethod::Ssmix).with_alpha(0.0);
        assert_eq!(run(ssmix, 1, None), [true]);
    }

    /// `select = "best-dev"` keeps and reports the epoch of the highest dev accuracy (the
    /// first of equals), never looking at test; a run resumed from a checkpoint taken before
    /// the end selects the same epoch and ends with the same model. Without a dev split it
    /// is refused.
    #[test]
    fn best_dev_selects_on_dev_and_survives_a_resume() {
        use crate::Selection;
        let rows = rows();
        let dev = dev_rows(&rows);
        let dir = crate::test_util::tmp_dir("best-dev");
        let config = TrainConfig::new()
            .with_step(crate::StepConfig::new().with_max_len(8))
            .with_epochs(6)
            .with_batch_size(4)
            .with_checkpoint_every(0)
            .with_select(Selection::BestDev);
        let setup = |dev: Option<&'static [EncodedExample]>, resume| {
            toy_setup(&config, &rows, dev, Some(&dir.0), resume)
        };
        let build = toy_cnn;
        let dev: &'static [EncodedExample] = Box::leak(dev.into_boxed_slice());
        let whole = train(build, &setup(Some(dev), None), &mut |_| {}).expect("train");
        let accs: Vec<f64> = whole.epochs.iter().filter_map(|e| e.dev_acc).collect();
        let best = accs.iter().copied().fold(f64::MIN, f64::max);
        let first_best = accs.iter().position(|&a| a == best).expect("a best") + 1;
        let report = &whole.report;
        assert_eq!(report.selected_epoch, first_best);
        assert!(
            first_best < 6,
            "the dev set must pick another epoch than the last for the test to tell ({accs:?})"
        );
        assert_eq!(
            Some(report.test_accuracy),
            whole.epochs[first_best - 1].test_acc
        );
        assert_eq!(report.dev_accuracy, Some(best));
        let eval = |m: &mixup_models::TextCnn| evaluate(m, &rows, 8, 8, 3, &Device::flex());
        assert_eq!(
            eval(&whole.model).0,
            report.test_accuracy,
            "the selected epoch's model"
        );
        // Resume from the checkpoint of epoch 5's end (the older of the two kept).
        let files = crate::checkpoint::tests_support::files(&dir.0);
        let older = files.last().expect("two checkpoints");
        let ck = crate::checkpoint::tests_support::read(older);
        assert_eq!(ck.state.epoch, 6, "taken after epoch 5");
        assert!(ck.best_model.is_some() && ck.state.best_epoch.is_some());
        let resumed = train(build, &setup(Some(dev), Some(ck)), &mut |_| {}).expect("resume");
        assert_eq!(resumed.report.selected_epoch, report.selected_epoch);
        assert_eq!(resumed.report.test_accuracy, report.test_accuracy);
        assert_eq!(eval(&resumed.model), eval(&whole.model));
        let e = train(build, &setup(None, None), &mut |_| {})
            .err()
            .expect("no dev");
        assert!(e.to_string().contains("select"), "{e}");
    }

    /// `eval_every = 2` over 5 epochs evaluates epochs 2, 4 and 5 (the last) and no other;
    /// `best-dev` chooses among those, and the report is the chosen model's. 0 is refused.
    #[test]
    fn eval_every_evaluates_every_nth_epoch_and_the_last() {
        use crate::Selection;
        let rows = rows();
        let dev = dev_rows(&rows);
        let run = |every: usize, select: Selection| {
            let config = TrainConfig::new()
                .with_step(crate::StepConfig::new().with_max_len(8))
                .with_epochs(5)
                .with_batch_size(4)
                .with_eval_every(every)
                .with_select(select);
            train(
                toy_cnn,
                &toy_setup(&config, &rows, Some(&dev), None, None),
                &mut |_| {},
            )
        };
        for select in [Selection::Last, Selection::BestDev] {
            let t = run(2, select).expect("train");
            let evaluated: Vec<usize> = t
                .epochs
                .iter()
                .filter(|e| e.test_acc.is_some())
                .map(|e| e.epoch)
                .collect();
            assert_eq!(evaluated, [2, 4, 5], "{select:?}");
            for e in &t.epochs {
                let on = evaluated.contains(&e.epoch);
                assert_eq!(e.dev_acc.is_some(), on);
                assert_eq!(e.test_loss.is_some(), on);
                assert!(e.train_loss.is_finite(), "training figures stay");
            }
            assert!(evaluated.contains(&t.report.selected_epoch), "{select:?}");
            let chosen = &t.epochs[t.report.selected_epoch - 1];
            assert_eq!(chosen.test_acc, Some(t.report.test_accuracy));
            let eval = evaluate(&t.model, &rows, 8, 8, 3, &Device::flex()).0;
            assert_eq!(
                eval, t.report.test_accuracy,
                "the reported model, {select:?}"
            );
        }
        // Every epoch evaluated with 1; 0 refused by key.
        let all = run(1, Selection::Last).expect("train");
        assert!(all.epochs.iter().all(|e| e.test_acc.is_some()));
        // (Two runs are not compared value for value here: their initial weights come from
        // Burn's process-wide RNG, which tests running in parallel also draw from.)
        let e = run(0, Selection::Last).err().expect("0 refused");
        assert!(e.to_string().contains("eval_every"), "{e}");
    }
}
