//! One training step: draw the mixing parameters, run the model mixed (or plain), compute
//! the loss, backpropagate and update. Shared by the training loop ([`crate::train::train`])
//! and the benchmarks, so that what is timed is what trains.

use std::sync::{Arc, Mutex};

use burn::{
    module::Module,
    optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer},
    tensor::{Device, Int, Tensor, TensorData},
};
use mixup_core::{
    Layout, MixMethod, MixParams, MixState, MixupConfig, PointKind, SpanMode, choose_segment_spans,
    interpolated_cross_entropy, mix_with, saliency_span_mix_segments, soft_cross_entropy,
    soft_targets, token_saliency,
};
use mixup_data::{EncodedExample, TextBatch};
use mixup_models::MixingPoints;
use rand::{RngExt, rngs::StdRng};

use crate::{
    TrainError,
    config::{CleanWeighting, LossForm, StepConfig},
    error::Result,
    mixtext::{MixTextSettings, UnlabelledExample, guess_targets, mixtext_loss},
    optim::clip_grad_norm,
};

/// What a run fixes once, from its [`StepConfig`] and model, for every step.
#[derive(Clone, Debug)]
pub struct StepPlan {
    /// The method.
    pub method: MixMethod,
    /// Lambda sampling and pairing.
    pub mix_config: MixupConfig,
    /// The points a mixed step may mix at (one drawn per step).
    pub eligible: Vec<usize>,
    /// Number of classes.
    pub num_classes: usize,
    /// Label smoothing.
    pub smoothing: f64,
    /// Loss form of mixed steps.
    pub loss: LossForm,
    /// Add the clean loss to mixed steps (SSMix always does).
    pub clean_loss: bool,
    /// How the clean loss is added to the mixed one.
    pub clean_weighting: CleanWeighting,
    /// SSMix's span settings.
    pub ssmix: SsmixSettings,
    /// Longest sequence.
    pub max_len: usize,
    /// Clip the global gradient norm to this before the update.
    pub clip_grad_norm: Option<f64>,
    /// MixText's settings (read by [`MixMethod::MixText`] only).
    pub mixtext: MixTextSettings,
    /// The head's parameters and the factor of its learning rate over the others'
    /// (`OptimConfig::head_lr / lr`); `None`: one rate. [`StepPlan::with_head_lr`] sets it.
    pub head_lr: Option<(Vec<burn::module::ParamId>, f64)>,
}

/// SSMix's settings for one run.
#[derive(Clone, Copy, Debug)]
pub struct SsmixSettings {
    /// Saliency or one of the random ablations.
    pub mode: SpanMode,
    /// Where the special tokens of a row are.
    pub layout: Layout,
    /// The span's share of a row's text.
    pub share: f64,
}

impl StepPlan {
    /// The plan of `config` for a model with `points`, `num_classes` classes and rows laid
    /// out as `layout`.
    ///
    /// # Errors
    ///
    /// [`TrainError::Config`] for bad mixing settings or eligible points (key `points`);
    /// [`TrainError::Method`] when the method has no point in this model.
    pub fn new(
        config: &StepConfig,
        points: &[PointKind],
        num_classes: usize,
        layout: Layout,
    ) -> Result<Self> {
        let method = config.method;
        let mix_config = config.mixup_config(num_classes)?;
        let eligible = match &config.points {
            Some(set) => {
                if let Some(bad) = set.iter().find(|&&p| p >= points.len()) {
                    return Err(TrainError::config(
                        "points",
                        format!(
                            "point {bad} does not exist; this model has points 0..={} \
                             ({points:?})",
                            points.len().saturating_sub(1)
                        ),
                    ));
                }
                if matches!(method, MixMethod::Tmix | MixMethod::MixText)
                    && let Some(bad) = set.iter().find(|&&p| {
                        !matches!(points[p], PointKind::Layer(_) | PointKind::Embedding)
                    })
                {
                    return Err(TrainError::config(
                        "points",
                        format!(
                            "point {bad} is {:?}; tmix mixes sequences: the embedding output \
                             or an encoder layer's (points 0..={})",
                            points[*bad],
                            points.len().saturating_sub(2)
                        ),
                    ));
                }
                set.clone()
            }
            None => method.eligible(points),
        };
        if method != MixMethod::None && eligible.is_empty() {
            return Err(TrainError::Method(format!(
                "method {method} has no mixing point in this model ({points:?})"
            )));
        }
        Ok(Self {
            method,
            mix_config,
            eligible,
            num_classes,
            smoothing: config.label_smoothing,
            loss: config.loss,
            clean_loss: config.clean_loss,
            clean_weighting: config.clean_weighting,
            ssmix: SsmixSettings {
                mode: config.span,
                layout,
                share: config.span_share,
            },
            max_len: config.max_len,
            clip_grad_norm: config.clip_grad_norm,
            mixtext: config.mixtext_settings(),
            head_lr: None,
        })
    }
}

impl StepPlan {
    /// Gives `model`'s head ([`MixingPoints::head_params`]) the rate `head_lr` where the rest
    /// has `lr` (both scaled by the schedule alike); `None` leaves one rate.
    ///
    /// # Errors
    ///
    /// A model that names no head parameters, or a rate that is not above 0.
    pub fn with_head_lr<M: MixingPoints>(
        mut self,
        model: &M,
        lr: f64,
        head_lr: Option<f64>,
    ) -> Result<Self> {
        let Some(head) = head_lr else {
            return Ok(self);
        };
        if !(head > 0.0 && head.is_finite() && lr > 0.0) {
            return Err(TrainError::config(
                "head_lr",
                format!("{head} must be above 0"),
            ));
        }
        let ids = model.head_params();
        if ids.is_empty() {
            return Err(TrainError::config(
                "head_lr",
                "this model names no head parameters",
            ));
        }
        self.head_lr = Some((ids, head / lr));
        Ok(self)
    }

    /// Whether this plan mixes at all: any method but `none`, and for the methods that draw
    /// lambda, a config that can draw one (`alpha > 0` and `prob > 0`). SSMix draws no lambda
    /// (its label ratio comes from its span), so `alpha` does not switch it off.
    pub fn mixes(&self) -> bool {
        self.method != MixMethod::None
            && (self.method == MixMethod::Ssmix || self.mix_config.enabled())
    }

    /// The factors of the mixed and the clean loss when both are trained.
    fn loss_weights(&self) -> (f32, f32) {
        match self.clean_weighting {
            CleanWeighting::Mean => (0.5, 0.5),
            CleanWeighting::Sum => (1.0, 1.0),
        }
    }
}

/// The rows of one step.
pub struct StepBatch<'a> {
    /// The batch.
    pub items: &'a [&'a EncodedExample],
    /// The partner batch of methods that mix with a separate batch (TMix); same length.
    pub partner_items: Option<&'a [&'a EncodedExample]>,
    /// Whether this step mixes (false for `none`, and after `off_epoch`).
    pub mixing: bool,
    /// MixText: this step's unlabelled texts (each with its views) and the weight of their
    /// term (`lambda_u` times the ramp).
    pub unlabelled: Option<(&'a [&'a UnlabelledExample], f32)>,
}

/// What a step reports (every tensor detached, still on the device).
pub struct StepReport {
    /// The step's mean loss (mixed loss, plus the clean loss when trained).
    pub loss: Tensor<1>,
    /// Rows whose prediction is their dominant label (own when its share is >= 0.5).
    pub hits: Tensor<1, Int>,
    /// The logits the loss was computed on, `[n, classes]` (of the mixed rows when mixing).
    pub logits: Tensor<2>,
    /// Each row's dominant label `[n]`: its own when its share is >= 0.5, else its partner's.
    pub targets: Tensor<1, Int>,
}

fn label_tensor(labels: &[usize], device: &Device) -> Tensor<1, Int> {
    let data: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    Tensor::from_data(TensorData::new(data, [labels.len()]), device)
}

/// Trains one step on `batch` with the autodiff `device` at learning rate `lr` (the loop's
/// schedule gives it): returns the updated model and what the step measured. With
/// `plan.clip_grad_norm`, the gradients are clipped to that global norm before the update.
/// `rng` draws this step's mixing (lambdas, partners, point, spans).
///
/// # Errors
///
/// SSMix on a model without a sequence embedding (or without a gradient at it).
#[allow(clippy::too_many_arguments)]
pub fn train_step<M: Module + MixingPoints>(
    model: M,
    optim: &mut ModuleOptimizer,
    lr: f64,
    plan: &StepPlan,
    batch: &StepBatch<'_>,
    rng: &mut StdRng,
    device: &Device,
) -> Result<(M, StepReport)> {
    let (grads, report) = step_gradients(&model, plan, batch, rng, device, 1.0)?;
    Ok((update(model, optim, lr, plan, grads), report))
}

/// Clips (with `plan.clip_grad_norm`) and applies `grads`.
fn update<M: Module>(
    model: M,
    optim: &mut ModuleOptimizer,
    lr: f64,
    plan: &StepPlan,
    mut grads: GradientsParams,
) -> M {
    if let Some(max_norm) = plan.clip_grad_norm {
        grads = clip_grad_norm(&model, grads, max_norm);
    }
    match &plan.head_lr {
        None => optim.step(lr, model, grads),
        Some((ids, factor)) => {
            let rates = burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler::new(lr)
                .with_group(burn::module::ParamGroup::from_ids(ids.clone()), lr * factor)
                .step();
            optim.step(rates, model, grads)
        }
    }
}

/// One rayon pool per replica, sharing out the calling context's threads (the first
/// `threads % replicas` pools get one more; every pool at least one), kept for the process per
/// (replicas, threads). A replica's ops run inside its own pool, so on flex its gemm and
/// elementwise tasks stay on its threads instead of queueing with the other replicas' in the
/// global pool. `None` (the replicas then share the caller's pool) when
/// `MIXUP_REPLICA_POOLS=0` or where a pool cannot be built.
fn replica_pools(replicas: usize) -> Option<Arc<Vec<rayon::ThreadPool>>> {
    type Pools = Arc<Vec<rayon::ThreadPool>>;
    static POOLS: Mutex<Vec<((usize, usize), Pools)>> = Mutex::new(Vec::new());
    if std::env::var_os("MIXUP_REPLICA_POOLS").is_some_and(|v| v == "0") {
        return None;
    }
    let replicas = replicas.max(1);
    let threads = rayon::current_num_threads();
    let key = (replicas, threads);
    let mut cached = POOLS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, pools)) = cached.iter().find(|(k, _)| *k == key) {
        return Some(Arc::clone(pools));
    }
    let pools: Vec<rayon::ThreadPool> = (0..replicas)
        .map(|i| {
            let share = (threads / replicas + usize::from(i < threads % replicas)).max(1);
            rayon::ThreadPoolBuilder::new()
                .num_threads(share)
                .thread_name(move |t| format!("mixup-replica-{i}-{t}"))
                .build()
        })
        .collect::<std::result::Result<_, _>>()
        .ok()?;
    let pools = Arc::new(pools);
    cached.push((key, Arc::clone(&pools)));
    Some(pools)
}

/// Restores the calling thread's dropout stream when dropped (on panic too). A pool thread
/// waiting inside one replica's op may run another training's replica job nested on the same
/// thread; that job forks the stream, and this puts the outer job's stream back.
struct KeepDropoutStream(u64);

impl KeepDropoutStream {
    fn new() -> Self {
        Self(mixup_kernels::dropout_stream())
    }
}

impl Drop for KeepDropoutStream {
    fn drop(&mut self) {
        mixup_kernels::seed_dropout(self.0);
    }
}

/// Runs job `i` as replica `i`: each from its own thread, inside that replica's pool of
/// [`replica_pools`] (so the rayon work of its ops stays on its share of the cores), the pool
/// thread's dropout stream restored afterwards. The results in order; `None` for a job that
/// panicked.
fn run_on_replicas<'a, T: Send>(jobs: Vec<Box<dyn FnOnce() -> T + Send + 'a>>) -> Vec<Option<T>> {
    let pools = replica_pools(jobs.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .into_iter()
            .enumerate()
            .map(|(i, job)| {
                let pool = pools.as_ref().map(|p| &p[i]);
                scope.spawn(move || match pool {
                    Some(pool) => pool.install(|| {
                        let _keep = KeepDropoutStream::new();
                        job()
                    }),
                    None => job(),
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().ok()).collect()
    })
}

/// One data-parallel step over several devices, through Burn's own multi-device pieces: each
/// replica (the model forked to `devices[i]` with [`Module::fork`]) runs the forward and
/// backward of `shards[i]` in its own thread, with its own `rngs[i]` for mixing (flex
/// dropout from branch `i` of the caller's mask stream, [`mixup_kernels::fork_dropout`];
/// other backends' from Burn's process-wide RNG, in thread order); the gradients are moved to
/// the first device ([`GradientsParams::to_device`]) and summed there
/// ([`GradientsAccumulator`]), then clipped and applied once, so every replica starts the next
/// step from the same weights. Each shard's loss is weighted by its share of the rows, so the
/// sum is the gradient of the whole batch's mean loss (exactly so when no mixing pairs rows
/// across shards: mixing partners are drawn within each shard).
///
/// `model` must live on `devices[0]`; every shard must be non-empty. With one device this is
/// [`train_step`].
///
/// # Errors
///
/// As [`train_step`], from any replica; a panicking replica is an error too.
#[allow(clippy::too_many_arguments)]
pub fn train_step_replicated<M: Module + MixingPoints + Send>(
    model: M,
    optim: &mut ModuleOptimizer,
    lr: f64,
    plan: &StepPlan,
    shards: &[StepBatch<'_>],
    rngs: &mut [StdRng],
    devices: &[Device],
) -> Result<(M, StepReport)> {
    if devices.is_empty() || shards.len() != devices.len() || rngs.len() != devices.len() {
        return Err(TrainError::Method(format!(
            "train_step_replicated: {} shards, {} rngs and {} devices (one each per device)",
            shards.len(),
            rngs.len(),
            devices.len()
        )));
    }
    if shards.iter().any(|s| s.items.is_empty()) {
        return Err(TrainError::Method(
            "train_step_replicated: an empty shard (fewer rows than devices?)".into(),
        ));
    }
    if devices.len() == 1 {
        return train_step(
            model,
            optim,
            lr,
            plan,
            &shards[0],
            &mut rngs[0],
            &devices[0],
        );
    }
    let total: usize = shards.iter().map(|s| s.items.len()).sum();
    let main = &devices[0];
    // Each replica thread draws its dropout masks from its own branch of this thread's
    // stream (seeded for the step), so a replicated step is repeatable.
    let stream = mixup_kernels::dropout_stream();
    type Job<'a> = Box<dyn FnOnce() -> Result<(GradientsParams, StepReport)> + Send + 'a>;
    let jobs: Vec<Job<'_>> = shards
        .iter()
        .zip(rngs.iter_mut())
        .zip(devices)
        .enumerate()
        .map(|(i, ((shard, rng), device))| {
            let replica = if i == 0 {
                model.clone()
            } else {
                model.clone().fork(device)
            };
            let weight = shard.items.len() as f32 / total as f32;
            Box::new(move || {
                mixup_kernels::fork_dropout(stream, i as u64);
                step_gradients(&replica, plan, shard, rng, device, weight)
            }) as Job<'_>
        })
        .collect();
    let results: Vec<Result<(GradientsParams, StepReport)>> = run_on_replicas(jobs)
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| {
                Err(TrainError::Method(format!(
                    "the replica on device {i} panicked"
                )))
            })
        })
        .collect();
    let mut sum = GradientsAccumulator::new();
    let mut loss: Option<Tensor<1>> = None;
    let mut hits: Option<Tensor<1, Int>> = None;
    let (mut logits, mut targets) = (Vec::new(), Vec::new());
    for (result, shard) in results.into_iter().zip(shards) {
        let (grads, report) = result?;
        sum.accumulate(&model, grads.to_device(main, &model));
        let weighted = report
            .loss
            .mul_scalar(shard.items.len() as f32 / total as f32)
            .to_device(main);
        let h = report.hits.to_device(main);
        logits.push(report.logits.to_device(main));
        targets.push(report.targets.to_device(main));
        loss = Some(match loss {
            Some(l) => l + weighted,
            None => weighted,
        });
        hits = Some(match hits {
            Some(acc) => acc + h,
            None => h,
        });
    }
    let (Some(loss), Some(hits)) = (loss, hits) else {
        return Err(TrainError::Method(
            "train_step_replicated: no replica ran".into(),
        ));
    };
    let model = update(model, optim, lr, plan, sum.grads());
    Ok((
        model,
        StepReport {
            loss,
            hits,
            logits: Tensor::cat(logits, 0),
            targets: Tensor::cat(targets, 0),
        },
    ))
}

/// The gradients of one step on `batch` (not yet clipped nor applied) and its report. The
/// differentiated loss is multiplied by `weight` (a shard's share of a replicated batch; 1
/// otherwise); the reported loss is not.
///
/// # Errors
///
/// As [`train_step`].
pub fn step_gradients<M: Module + MixingPoints>(
    model: &M,
    plan: &StepPlan,
    batch: &StepBatch<'_>,
    rng: &mut StdRng,
    device: &Device,
    weight: f32,
) -> Result<(GradientsParams, StepReport)> {
    let text = TextBatch::new(batch.items, plan.max_len, device);
    let n = text.len();
    let step = if batch.mixing && plan.method == MixMethod::MixText {
        mixtext_step(model, plan, batch, text, rng, device)
    } else if batch.mixing {
        mixed_step(model, plan, batch, text, rng, device, weight)?
    } else {
        let logits = model.forward(text.ids, text.mask);
        let targets = soft_targets(text.labels, plan.num_classes, plan.smoothing);
        let loss = soft_cross_entropy(logits.clone(), targets, None);
        Forward {
            logged: loss.clone().detach(),
            logits,
            loss,
            dominant: batch.items.iter().map(|e| e.label).collect(),
            pre_grads: None,
        }
    };
    let logits = step.logits.detach();
    let targets = label_tensor(&step.dominant, device);
    let hits = logits
        .clone()
        .argmax(1)
        .reshape([n])
        .equal(targets.clone())
        .int()
        .sum();
    let mut grads = GradientsParams::from_grads(step.loss.mul_scalar(weight).backward(), model);
    if let Some(pre) = step.pre_grads {
        let mut sum = GradientsAccumulator::new();
        sum.accumulate(model, pre);
        sum.accumulate(model, grads);
        grads = sum.grads();
    }
    Ok((
        grads,
        StepReport {
            loss: step.logged,
            hits,
            logits,
            targets,
        },
    ))
}

/// The forward half of a step: `loss` is what the step differentiates, `logged` what it
/// reports (they differ for SSMix, whose clean loss was differentiated in its saliency pass,
/// leaving `pre_grads`); `dominant` is each row's dominant label.
struct Forward {
    logits: Tensor<2>,
    loss: Tensor<1>,
    logged: Tensor<1>,
    dominant: Vec<usize>,
    pre_grads: Option<GradientsParams>,
}

/// MixText's forward (see [`crate::mixtext`]): guess the unlabelled texts' targets, mix the
/// labelled rows and every view of those texts in one batch, and return the supervised plus
/// weighted unlabelled loss with the labelled rows' logits.
fn mixtext_step<M: Module + MixingPoints>(
    model: &M,
    plan: &StepPlan,
    batch: &StepBatch<'_>,
    text: TextBatch,
    rng: &mut StdRng,
    device: &Device,
) -> Forward {
    let items = batch.items;
    let (texts, u_weight) = batch.unlabelled.unwrap_or((&[], 0.0));
    let mut rows: Vec<&EncodedExample> = items.to_vec();
    let mut targets = vec![soft_targets(text.labels, plan.num_classes, plan.smoothing)];
    if !texts.is_empty() {
        let guesses = guess_targets(model, texts, plan.mixtext.temperature, plan.max_len, device);
        for v in 0..texts[0].views.len() {
            rows.extend(texts.iter().map(|t| &t.views[v]));
            targets.push(guesses.clone());
        }
    }
    let mut params = plan.mix_config.sample(rows.len(), rng);
    for l in &mut params.lambdas {
        *l = l.max(1.0 - *l);
    }
    let point = plan.eligible[rng.random_range(0..plan.eligible.len())];
    let out = mixtext_loss(
        model,
        &rows,
        items.len(),
        Tensor::cat(targets, 0),
        &params,
        point,
        &plan.mixtext,
        u_weight,
        plan.max_len,
        device,
    );
    Forward {
        logged: out.loss.clone().detach(),
        logits: out.labelled_logits,
        loss: out.loss,
        dominant: items.iter().map(|e| e.label).collect(),
        pre_grads: None,
    }
}

/// The forward of a mixed step: the draws (lambdas and partners, a point), the mixed
/// logits (SSMix's span-mixed rows, a separate partner batch, or partners within the
/// batch), the mixed loss and, when asked, the clean loss.
fn mixed_step<M: Module + MixingPoints>(
    model: &M,
    plan: &StepPlan,
    batch: &StepBatch<'_>,
    text: TextBatch,
    rng: &mut StdRng,
    device: &Device,
    weight: f32,
) -> Result<Forward> {
    let (items, n) = (batch.items, text.len());
    let own: Vec<usize> = items.iter().map(|e| e.label).collect();
    let is_ssmix = plan.method == MixMethod::Ssmix;
    // SSMix draws partners only (its ratio comes from the span); the others lambdas too.
    let (mut params, span_partners) = if is_ssmix {
        let partners = plan.mix_config.sample_partners(n, rng);
        (MixParams::identity(n), Some(partners))
    } else {
        (plan.mix_config.sample(n, rng), None)
    };
    let point = plan.eligible[rng.random_range(0..plan.eligible.len())];
    let trains_clean = is_ssmix || plan.clean_loss;
    let (mixed_w, clean_w) = if trains_clean {
        plan.loss_weights()
    } else {
        (1.0, 1.0)
    };
    let mut ssmix = None;
    let (logits, partner) = if let Some(partners) = span_partners {
        let (logits, ratios, pass) = ssmix_forward(
            model,
            plan,
            items,
            &text,
            &partners,
            rng,
            device,
            weight * clean_w,
        )?;
        params = MixParams {
            lambdas: ratios,
            partners: partners.clone(),
        };
        ssmix = Some(pass);
        (logits, partners.iter().map(|&j| own[j]).collect::<Vec<_>>())
    } else {
        match batch.partner_items {
            Some(pitems) => {
                let pbatch = TextBatch::new(pitems, plan.max_len, device);
                let logits = model.forward_mixed_pair(
                    (text.ids.clone(), text.mask.clone()),
                    (pbatch.ids, pbatch.mask),
                    point,
                    &params.lambdas,
                );
                (logits, pitems.iter().map(|e| e.label).collect::<Vec<_>>())
            }
            None => (
                model.forward_mixed(text.ids.clone(), text.mask.clone(), point, &params),
                params.partners.iter().map(|&j| own[j]).collect(),
            ),
        }
    };
    let (classes, smoothing) = (plan.num_classes, plan.smoothing);
    let mut loss = match plan.loss {
        LossForm::Soft => soft_cross_entropy(
            logits.clone(),
            mix_with(
                soft_targets(text.labels.clone(), classes, smoothing),
                soft_targets(label_tensor(&partner, device), classes, smoothing),
                &params.lambdas,
            ),
            None,
        ),
        LossForm::Interpolated => interpolated_cross_entropy(
            logits.clone(),
            text.labels.clone(),
            label_tensor(&partner, device),
            &params.lambdas,
        ),
    };
    if trains_clean {
        loss = loss.mul_scalar(mixed_w);
    }
    if plan.clean_loss && !is_ssmix {
        let clean = model.forward(text.ids, text.mask);
        let targets = soft_targets(text.labels, classes, smoothing);
        loss = loss + soft_cross_entropy(clean, targets, None).mul_scalar(clean_w);
    }
    let dominant: Vec<usize> = (0..n)
        .map(|i| {
            if params.lambdas[i] >= 0.5 {
                own[i]
            } else {
                partner[i]
            }
        })
        .collect();
    Ok(match ssmix {
        Some(pass) => Forward {
            logged: loss.clone().detach() + pass.clean_loss.mul_scalar(clean_w),
            // The surrogate comes from the saliency pass's gradient, which already carries
            // `weight` (and the clean loss's factor); the whole loss is multiplied by `weight`
            // later, so undo that here.
            loss: loss + pass.surrogate.div_scalar(weight),
            logits,
            dominant,
            pre_grads: Some(GradientsParams::from_grads(pass.grads, model)),
        },
        None => Forward {
            logged: loss.clone().detach(),
            logits,
            loss,
            dominant,
            pre_grads: None,
        },
    })
}

/// SSMix's forward: the saliency pass (its clean loss differentiated with factor `weight`),
/// then each row with its partner's most salient span copied over its own least salient one
/// (chosen on the device; the random ablations mix the ids on the host). Returns the mixed
/// logits, each row's label ratio and the saliency pass.
#[allow(clippy::too_many_arguments)]
fn ssmix_forward<M: MixingPoints>(
    model: &M,
    plan: &StepPlan,
    items: &[&EncodedExample],
    text: &TextBatch,
    partners: &[usize],
    rng: &mut StdRng,
    device: &Device,
    weight: f32,
) -> Result<(Tensor<2>, Vec<f32>, SaliencyPass)> {
    let mut pass = ssmix_saliency(model, text, plan.num_classes, plan.smoothing, weight)?;
    let (aug_ids, aug_mask, ratios) = if plan.ssmix.mode == SpanMode::Saliency {
        let l = text.ids.dims()[1];
        let segments: Vec<_> = items
            .iter()
            .map(|e| plan.ssmix.layout.segments(&e.ids[..e.ids.len().min(l)]))
            .collect();
        let saliency = pass.saliency.take().ok_or_else(|| {
            TrainError::Method("ssmix: the saliency pass left no saliency".into())
        })?;
        let (ids, ratios) = saliency_span_mix_segments(
            text.ids.clone(),
            saliency,
            &segments,
            partners,
            plan.ssmix.share,
        );
        (ids, text.mask.clone(), ratios)
    } else {
        let (aug, ratios) = ssmix_random_rows(items, partners, &plan.ssmix, rng);
        let aug_refs: Vec<&EncodedExample> = aug.iter().collect();
        let aug_batch = TextBatch::new(&aug_refs, plan.max_len, device);
        (aug_batch.ids, aug_batch.mask, ratios)
    };
    Ok((model.forward(aug_ids, aug_mask), ratios, pass))
}

/// What SSMix's saliency pass leaves: the clean loss (its value, for the report), the
/// gradients of the clean loss for every parameter after the embedding output, the term whose
/// gradient gives the embedding's share of it, and the per-token saliency `[n, L]` (on the
/// device, aligned with the ids).
struct SaliencyPass {
    clean_loss: Tensor<1>,
    grads: burn::tensor::Gradients,
    surrogate: Tensor<1>,
    /// Taken (once) by the span choice.
    saliency: Option<Tensor<2>>,
}

/// The clean forward and backward of SSMix: the embedding output is cut from the graph
/// (`detach().require_grad()`) so that the backward yields its gradient, from which the
/// saliency is taken; `sum(embedding_output * grad)` is then returned as a surrogate whose
/// gradient, added to the next backward, completes the clean loss's gradient for the
/// embedding parameters (the chain rule through the cut). The clean loss is thus trained
/// without a second clean forward.
fn ssmix_saliency<M: MixingPoints>(
    model: &M,
    batch: &TextBatch,
    num_classes: usize,
    smoothing: f64,
    weight: f32,
) -> Result<SaliencyPass> {
    let [_, l] = batch.ids.dims();
    let MixState::Sequence { hidden, mask } = model.embed(batch.ids.clone(), batch.mask.clone())
    else {
        return Err(TrainError::Method(
            "ssmix needs a model whose embedding output is a sequence".into(),
        ));
    };
    let leaf = hidden.clone().detach().require_grad();
    let logits = model.forward_from(
        MixState::Sequence {
            hidden: leaf.clone(),
            mask: mask.clone(),
        },
        0,
    );
    let clean = soft_cross_entropy(
        logits,
        soft_targets(batch.labels.clone(), num_classes, smoothing),
        None,
    );
    let clean_loss = clean.clone().detach();
    // The weight scales the gradient (and so the surrogate below), not the per-row normalised
    // saliency.
    let mut grads = clean.mul_scalar(weight).backward();
    let grad = leaf
        .grad_remove(&mut grads)
        .ok_or_else(|| {
            TrainError::Method("ssmix: no gradient reached the embedding output".into())
        })?
        .autodiff();
    let surrogate = (hidden * grad.clone()).sum();
    // Models may put extra positions (a [CLS] vector) in front of the ids.
    let [_, l_state, _] = grad.dims();
    let offset = l_state.saturating_sub(l);
    let saliency = token_saliency(grad, mask).narrow(1, offset, l);
    Ok(SaliencyPass {
        clean_loss,
        grads,
        surrogate,
        saliency: Some(saliency),
    })
}

/// The random-span and random-token ablations of SSMix on the host: each row with its
/// partner's positions copied in, and each row's label ratio (1 for rows mixed with
/// themselves or left unmixed).
fn ssmix_random_rows(
    items: &[&EncodedExample],
    partners: &[usize],
    settings: &SsmixSettings,
    rng: &mut StdRng,
) -> (Vec<EncodedExample>, Vec<f32>) {
    let mut rows = Vec::with_capacity(items.len());
    let mut ratios = Vec::with_capacity(items.len());
    for (i, a) in items.iter().enumerate() {
        let j = partners[i];
        let b = items[j];
        let mix = if j == i {
            mixup_core::SpanMix::none()
        } else {
            choose_segment_spans(
                settings.mode,
                &[],
                &settings.layout.segments(&a.ids),
                &[],
                &settings.layout.segments(&b.ids),
                settings.share,
                rng,
            )
        };
        rows.push(EncodedExample {
            ids: mix.apply(&a.ids, &b.ids),
            label: a.label,
        });
        ratios.push(mix.ratio);
    }
    (rows, ratios)
}

#[cfg(test)]
#[path = "wiring_tests.rs"]
mod wiring_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::GradientsAccumulator;

    /// SSMix's split backward (clean loss through a cut embedding output, plus the surrogate)
    /// gives exactly the gradient of the clean loss.
    #[test]
    fn ssmix_saliency_pass_reproduces_the_clean_gradient() {
        use mixup_models::TextCnnConfig;
        let ad = Device::flex().autodiff();
        let model = crate::seeded_init(&ad, 1, || {
            TextCnnConfig::new(20, 3)
                .with_d_embed(6)
                .with_n_filters(4)
                .with_dropout(0.0)
                .init(&ad)
        });
        let rows = [
            EncodedExample {
                ids: vec![2, 3, 4, 5, 6],
                label: 0,
            },
            EncodedExample {
                ids: vec![7, 8, 9],
                label: 1,
            },
            EncodedExample {
                ids: vec![10, 11, 12, 13],
                label: 2,
            },
        ];
        let refs: Vec<&EncodedExample> = rows.iter().collect();
        let batch = TextBatch::new(&refs, 8, &ad);
        let reference = soft_cross_entropy(
            model.forward(batch.ids.clone(), batch.mask.clone()),
            soft_targets(batch.labels.clone(), 3, 0.0),
            None,
        );
        let want = GradientsParams::from_grads(reference.backward(), &model);
        let pass = ssmix_saliency(&model, &batch, 3, 0.0, 1.0).expect("saliency pass");
        let tensor = pass.saliency.clone().expect("saliency");
        assert_eq!(tensor.dims(), [3, 5]);
        let saliency: Vec<f32> = tensor
            .into_data()
            .convert::<f32>()
            .try_to_vec()
            .expect("f32");
        assert!(
            saliency[5 + 3..10].iter().all(|&v| v == 0.0),
            "padding has no saliency"
        );
        let mut sum = GradientsAccumulator::new();
        sum.accumulate(&model, GradientsParams::from_grads(pass.grads, &model));
        sum.accumulate(
            &model,
            GradientsParams::from_grads(pass.surrogate.backward(), &model),
        );
        let got = sum.grads();
        let read = |g: &GradientsParams, id| -> Vec<f32> {
            let t: Tensor<2> = g.get(id).expect("gradient");
            t.into_data().convert::<f32>().try_to_vec().expect("f32")
        };
        for (what, id) in [
            ("embedding", model.embedding.weight.id),
            ("output", model.output.weight.id),
        ] {
            let (a, b) = (read(&want, id), read(&got, id));
            let diff = max_diff(&a, &b);
            assert!(diff < 1e-6, "{what}: gradients differ by {diff}");
            assert!(
                a.iter().any(|&v| v != 0.0),
                "{what}: zero gradient proves nothing"
            );
        }
    }

    /// Two replicas, each with half the batch, make the update one device makes with the whole
    /// batch (no dropout, no mixing: the sum of the weighted shard gradients is the gradient of
    /// the batch mean). Both "devices" are the flex CPU here; on GPUs they are distinct.
    #[test]
    fn replicated_step_matches_the_single_device_step() {
        use crate::optim::build_optimizer;
        let (ad, model) = tiny_cnn(3);
        let config = crate::bench::default_step_config(MixMethod::None);
        let plan = StepPlan::new(&config, &model.points(), 3, Layout::PLAIN).expect("plan");
        let optim_config = crate::OptimConfig::new();
        let rows = toy_rows(5);
        let refs: Vec<&EncodedExample> = rows.iter().collect();
        let whole = StepBatch {
            items: &refs,
            partner_items: None,
            mixing: false,
            unlabelled: None,
        };
        let mut optim = build_optimizer(&optim_config, &model);
        let (single, r1) = train_step(
            model.clone(),
            &mut optim,
            1e-2,
            &plan,
            &whole,
            &mut rand::SeedableRng::seed_from_u64(0),
            &ad,
        )
        .expect("single step");
        let shards = [
            StepBatch {
                items: &refs[..2],
                partner_items: None,
                mixing: false,
                unlabelled: None,
            },
            StepBatch {
                items: &refs[2..],
                partner_items: None,
                mixing: false,
                unlabelled: None,
            },
        ];
        let mut optim = build_optimizer(&optim_config, &model);
        let mut rngs = [0, 1].map(rand::SeedableRng::seed_from_u64);
        let (split, r2) = train_step_replicated(
            model.clone(),
            &mut optim,
            1e-2,
            &plan,
            &shards,
            &mut rngs,
            &[ad.clone(), ad.clone()],
        )
        .expect("replicated step");
        let l1: f32 = r1.loss.into_scalar();
        let l2: f32 = r2.loss.into_scalar();
        assert!((l1 - l2).abs() < 1e-5, "mean loss {l1} vs {l2}");
        assert_eq!(r1.hits.into_scalar::<i64>(), r2.hits.into_scalar::<i64>());
        let weights = |m: &mixup_models::TextCnn| -> Vec<f32> {
            m.output
                .weight
                .val()
                .into_data()
                .convert::<f32>()
                .try_to_vec()
                .expect("f32")
        };
        let (before, a, b) = (weights(&model), weights(&single), weights(&split));
        let moved = max_diff(&before, &a);
        assert!(moved > 1e-4, "the step must change the weights ({moved})");
        let diff = max_diff(&a, &b);
        assert!(
            diff < 1e-5,
            "replicated and single updates differ by {diff}"
        );
        // The update above is Adam's, which hides a uniform scale error; the summed gradients
        // themselves must be the whole batch's.
        let full = step_gradients(&model, &plan, &whole, &mut seeded(0), &ad, 1.0)
            .expect("full")
            .0;
        let mut sum = GradientsAccumulator::new();
        for shard in &shards {
            let w = shard.items.len() as f32 / refs.len() as f32;
            let g = step_gradients(&model, &plan, shard, &mut seeded(0), &ad, w).expect("shard");
            sum.accumulate(&model, g.0);
        }
        let summed = sum.grads();
        for id in [model.embedding.weight.id, model.output.weight.id] {
            let (a, b) = (grad_of(&full, id), grad_of(&summed, id));
            assert!(a.iter().any(|&v| v != 0.0), "zero gradient proves nothing");
            let diff = max_diff(&a, &b);
            assert!(
                diff < 1e-6,
                "shard gradients sum to the batch's: off by {diff}"
            );
        }
        let bad = train_step_replicated(
            model,
            &mut optim,
            1e-2,
            &plan,
            &shards[..1],
            &mut rngs,
            &[ad.clone(), ad],
        );
        assert!(
            bad.is_err(),
            "mismatched shards and devices must be refused"
        );
    }

    /// With dropout, a replicated step is a function of the step's dropout seed: the same
    /// seed gives the same update however the replica threads are scheduled, another seed
    /// another update (each replica thread draws from its own branch of the caller's stream).
    #[test]
    #[cfg_attr(
        not(feature = "flex"),
        ignore = "needs the `flex` feature (host dropout masks); `cargo test --workspace` has it"
    )]
    fn replicated_dropout_is_repeatable() {
        use crate::optim::build_optimizer;
        let (ad, model) = tiny_cnn_dropout(4, 0.5);
        let config = crate::bench::default_step_config(MixMethod::None);
        let plan = StepPlan::new(&config, &model.points(), 3, Layout::PLAIN).expect("plan");
        let rows = toy_rows(5);
        let refs: Vec<&EncodedExample> = rows.iter().collect();
        let shards = [&refs[..3], &refs[3..]].map(|items| StepBatch {
            items,
            partner_items: None,
            mixing: false,
            unlabelled: None,
        });
        let update = |dropout_seed: u64| -> Vec<f32> {
            let mut optim = build_optimizer(&crate::OptimConfig::new(), &model);
            let mut rngs = [0, 1].map(rand::SeedableRng::seed_from_u64);
            mixup_kernels::seed_dropout(dropout_seed);
            let (next, _) = train_step_replicated(
                model.clone(),
                &mut optim,
                1e-2,
                &plan,
                &shards,
                &mut rngs,
                &[ad.clone(), ad.clone()],
            )
            .expect("replicated step");
            next.output
                .weight
                .val()
                .into_data()
                .convert::<f32>()
                .try_to_vec()
                .expect("f32")
        };
        let first = update(7);
        for _ in 0..4 {
            assert_eq!(update(7), first, "the same dropout seed, another update");
        }
        assert_ne!(update(8), first, "another dropout seed, the same update");
    }

    /// A small TextCNN without dropout (vocabulary 30, 3 classes) on an autodiff flex device
    /// seeded with `seed`.
    fn tiny_cnn(seed: u64) -> (Device, mixup_models::TextCnn) {
        tiny_cnn_dropout(seed, 0.0)
    }

    /// [`tiny_cnn`] with dropout `dropout` before its output layer.
    fn tiny_cnn_dropout(seed: u64, dropout: f64) -> (Device, mixup_models::TextCnn) {
        let ad = Device::flex().autodiff();
        let model = crate::seeded_init(&ad, seed, || {
            mixup_models::TextCnnConfig::new(30, 3)
                .with_d_embed(8)
                .with_n_filters(4)
                .with_dropout(dropout)
                .init(&ad)
        });
        (ad, model)
    }

    /// Six rows of 3 to 6 ids below 30, labels 0, 1, 2 in turn; `stride` varies the ids.
    fn toy_rows(stride: u32) -> Vec<EncodedExample> {
        (0..6u32)
            .map(|i| EncodedExample {
                ids: (0..3 + i % 4).map(|t| 2 + (i * stride + t) % 28).collect(),
                label: (i % 3) as usize,
            })
            .collect()
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    fn seeded(seed: u64) -> StdRng {
        rand::SeedableRng::seed_from_u64(seed)
    }

    fn grad_of(g: &GradientsParams, id: burn::module::ParamId) -> Vec<f32> {
        let t: Tensor<2> = g.get(id).expect("gradient");
        t.into_data().convert::<f32>().try_to_vec().expect("f32")
    }

    /// A shard's weight scales every part of its gradient, SSMix's saliency-pass share and
    /// surrogate included (the same draws, the same step, weight 0.25 against 1).
    /// `head_lr` gives the output layer its own rate: with Adam's first step (an update of about
    /// the rate per weight), the head moves ten times as far at ten times the rate, every
    /// other parameter exactly as with one rate.
    #[test]
    fn head_lr_moves_only_the_head_faster() {
        let rows = toy_rows(3);
        let refs: Vec<&EncodedExample> = rows.iter().collect();
        let run = |head_lr: Option<f64>| -> (f32, f32) {
            let (ad, model) = tiny_cnn(4);
            let host = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().expect("host");
            let (head0, emb0) = (
                host(model.output.weight.val()),
                host(model.embedding.weight.val()),
            );
            let plan = StepPlan::new(&StepConfig::new(), &model.points(), 3, Layout::PLAIN)
                .expect("plan")
                .with_head_lr(&model, 1e-3, head_lr)
                .expect("head rate");
            let mut optim = crate::optim::build_optimizer(&crate::OptimConfig::new(), &model);
            let batch = StepBatch {
                items: &refs,
                partner_items: None,
                mixing: false,
                unlabelled: None,
            };
            let (model, _) =
                train_step(model, &mut optim, 1e-3, &plan, &batch, &mut seeded(1), &ad)
                    .expect("step");
            (
                max_diff(&head0, &host(model.output.weight.val())),
                max_diff(&emb0, &host(model.embedding.weight.val())),
            )
        };
        let (head_one, emb_one) = run(None);
        let (head_ten, emb_ten) = run(Some(1e-2));
        assert!(
            (head_ten / head_one - 10.0).abs() < 0.5,
            "head moved {head_ten} vs {head_one}"
        );
        assert!(
            (emb_ten - emb_one).abs() < 1e-9,
            "the encoder's rate changed"
        );
        let (_, model) = tiny_cnn(4);
        let plan =
            StepPlan::new(&StepConfig::new(), &model.points(), 3, Layout::PLAIN).expect("plan");
        assert!(plan.clone().with_head_lr(&model, 1e-3, Some(0.0)).is_err());
    }

    #[test]
    fn the_shard_weight_scales_the_whole_gradient() {
        let (ad, model) = tiny_cnn(5);
        let rows = toy_rows(7);
        let refs: Vec<&EncodedExample> = rows.iter().collect();
        for method in ["none", "word", "ssmix"] {
            let config = crate::bench::default_step_config(method.parse().expect("method"));
            let plan = StepPlan::new(&config, &model.points(), 3, Layout::PLAIN).expect("plan");
            let batch = StepBatch {
                items: &refs,
                partner_items: None,
                mixing: method != "none",
                unlabelled: None,
            };
            let one = step_gradients(&model, &plan, &batch, &mut seeded(9), &ad, 1.0)
                .expect("weight 1")
                .0;
            let quarter = step_gradients(&model, &plan, &batch, &mut seeded(9), &ad, 0.25)
                .expect("weight 0.25")
                .0;
            for id in [model.embedding.weight.id, model.output.weight.id] {
                let (a, b) = (grad_of(&one, id), grad_of(&quarter, id));
                assert!(a.iter().any(|&v| v != 0.0), "{method}: zero gradient");
                let diff = a
                    .iter()
                    .zip(&b)
                    .map(|(x, y)| (0.25 * x - y).abs())
                    .fold(0.0, f32::max);
                assert!(diff < 1e-6, "{method}: weighted gradient off by {diff}");
            }
        }
    }

    /// SSMix draws no lambda, so alpha = 0 must not turn it into clean training (it did: the
    /// partners of rows with lambda 1 were the rows themselves); and with the clean loss, a
    /// step trains their mean by default (the official code), half the gradient of the sum.
    #[test]
    fn ssmix_mixes_at_alpha_zero_and_the_clean_loss_is_averaged() {
        use crate::config::CleanWeighting;
        let (ad, model) = tiny_cnn(5);
        let rows = toy_rows(7);
        let refs: Vec<&EncodedExample> = rows.iter().collect();
        let run = |config: &StepConfig, mixing: bool| {
            let plan = StepPlan::new(config, &model.points(), 3, Layout::PLAIN).expect("plan");
            let batch = StepBatch {
                items: &refs,
                partner_items: None,
                mixing,
                unlabelled: None,
            };
            let (g, r) =
                step_gradients(&model, &plan, &batch, &mut seeded(4), &ad, 1.0).expect("step");
            (plan.mixes(), g, r.loss.into_scalar::<f32>())
        };
        let ssmix = crate::bench::default_step_config(MixMethod::Ssmix)
            .with_alpha(0.0)
            .with_clean_weighting(CleanWeighting::Sum);
        let (mixes, at_zero, _) = run(&ssmix, true);
        assert!(mixes, "ssmix with alpha 0 still mixes");
        let (_, clean, _) = run(&StepConfig::new(), false);
        let id = model.embedding.weight.id;
        let (a, c) = (grad_of(&at_zero, id), grad_of(&clean, id));
        let off = a
            .iter()
            .zip(&c)
            .map(|(x, y)| (x - 2.0 * y).abs())
            .fold(0.0, f32::max);
        assert!(
            off > 1e-4,
            "the span-mixed rows must differ from the clean ones ({off})"
        );
        for config in [
            crate::bench::default_step_config(MixMethod::Ssmix),
            StepConfig::new()
                .with_method(MixMethod::Word)
                .with_clean_loss(true),
        ] {
            assert_eq!(
                config.clean_weighting,
                CleanWeighting::Mean,
                "the paper's default"
            );
            let (_, mean, l_mean) = run(&config, true);
            let (_, sum, l_sum) = run(
                &config.clone().with_clean_weighting(CleanWeighting::Sum),
                true,
            );
            assert!(
                (2.0 * l_mean - l_sum).abs() < 1e-5,
                "{:?}: {l_mean} vs {l_sum}",
                config.method
            );
            for id in [model.embedding.weight.id, model.output.weight.id] {
                let (m, s) = (grad_of(&mean, id), grad_of(&sum, id));
                assert!(s.iter().any(|&v| v != 0.0));
                let diff = m
                    .iter()
                    .zip(&s)
                    .map(|(x, y)| (2.0 * x - y).abs())
                    .fold(0.0, f32::max);
                assert!(
                    diff < 1e-5,
                    "{:?}: mean is not half the sum ({diff})",
                    config.method
                );
            }
        }
    }

    /// TMix mixes each row with the row of the same index in its separate partner batch:
    /// changing partner row 1 changes the mixed logits of row 1 and of no other row (a
    /// Transformer without dropout treats rows independently), and so the partner is used.
    #[test]
    fn tmix_mixes_each_row_with_its_own_partner_row() {
        let ad = Device::flex().autodiff();
        let model = crate::seeded_init(&ad, 2, || {
            mixup_models::TransformerClassifierConfig::new(30, 3)
                .with_d_model(8)
                .with_n_heads(2)
                .with_n_layers(2)
                .with_d_ff(16)
                .with_dropout(0.0)
                .with_max_positions(8)
                .init(&ad)
        });
        let config = StepConfig::new()
            .with_method(MixMethod::Tmix)
            .with_alpha(16.0)
            .with_max_len(8);
        let plan = StepPlan::new(&config, &model.points(), 3, Layout::PLAIN).expect("plan");
        let own = toy_rows(3);
        let partners = toy_rows(11);
        let mut changed = partners.clone();
        changed[1].ids = vec![29, 28, 27, 26];
        let logits = |partner_rows: &[EncodedExample]| -> Vec<Vec<f32>> {
            let items: Vec<&EncodedExample> = own.iter().collect();
            let pitems: Vec<&EncodedExample> = partner_rows.iter().collect();
            let batch = StepBatch {
                items: &items,
                partner_items: Some(&pitems),
                mixing: true,
                unlabelled: None,
            };
            let (_, report) =
                step_gradients(&model, &plan, &batch, &mut seeded(5), &ad, 1.0).expect("step");
            let flat: Vec<f32> = report
                .logits
                .into_data()
                .convert::<f32>()
                .try_to_vec()
                .expect("f32");
            flat.chunks(3).map(<[f32]>::to_vec).collect()
        };
        let (a, b) = (logits(&partners), logits(&changed));
        for (row, (x, y)) in a.iter().zip(&b).enumerate() {
            let diff = max_diff(x, y);
            if row == 1 {
                assert!(
                    diff > 1e-4,
                    "row 1's partner changed, its logits must ({diff})"
                );
            } else {
                assert!(
                    diff < 1e-5,
                    "row {row} does not mix with partner row 1 ({diff})"
                );
            }
        }
    }

    #[test]
    fn replicas_run_on_their_own_share_of_the_threads() {
        if std::env::var_os("MIXUP_REPLICA_POOLS").is_some_and(|v| v == "0") {
            eprintln!("skipped: MIXUP_REPLICA_POOLS=0 turns the pools off");
            return;
        }
        // Each job reports the pool it ran in (its thread's name and size) and leaves its
        // thread's dropout stream moved.
        let probe = |fail: bool| {
            Box::new(move || {
                mixup_kernels::fork_dropout(7, 1);
                assert!(!fail, "a replica that panics");
                let name = std::thread::current().name().map(str::to_string);
                (name, rayon::current_num_threads())
            }) as Box<dyn FnOnce() -> (Option<String>, usize) + Send>
        };
        let total = rayon::current_num_threads();
        for n in [2, 3] {
            let seen = run_on_replicas((0..n).map(|_| probe(false)).collect());
            let mut threads = 0;
            for (i, s) in seen.iter().enumerate() {
                let (name, t) = s.clone().expect("no panic");
                let name = name.expect("a named pool thread");
                assert!(name.starts_with(&format!("mixup-replica-{i}-")), "{name}");
                let share = total / n + usize::from(i < total % n);
                assert_eq!(t, share.max(1), "{n} replicas, replica {i}");
                threads += t;
            }
            // Every thread of the caller's pool is handed out, none twice.
            assert_eq!(threads, total.max(n), "{n} replicas");
        }
        // The pools outlive the step: the next job on replica 0's pool finds the stream it
        // had before the probe forked it.
        let before = run_on_replicas(vec![
            Box::new(mixup_kernels::dropout_stream) as Box<dyn FnOnce() -> u64 + Send>,
            Box::new(mixup_kernels::dropout_stream),
        ]);
        let fork = |state: u64| {
            Box::new(move || mixup_kernels::fork_dropout(state, 0)) as Box<dyn FnOnce() + Send>
        };
        run_on_replicas(vec![fork(99), fork(100)]);
        let after = run_on_replicas(vec![
            Box::new(mixup_kernels::dropout_stream) as Box<dyn FnOnce() -> u64 + Send>,
            Box::new(mixup_kernels::dropout_stream),
        ]);
        assert_eq!(
            before, after,
            "a replica job left its pool thread's stream moved"
        );
        // A panicking job is reported, not propagated.
        let seen = run_on_replicas(vec![probe(false), probe(true), probe(false)]);
        assert!(seen[0].is_some() && seen[1].is_none() && seen[2].is_some());
    }
}
