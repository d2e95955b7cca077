//! The training loop: Adam, mixing through [`MixingPoints`], evaluation every epoch.
//!
//! A custom loop rather than burn-train's `SupervisedTraining`, because mixing needs the
//! model's hidden states (run to point k, mix, continue), which `TrainStep` hides.

use std::time::Instant;

use burn::{
    module::Module,
    optim::{AdamConfig, GradientsAccumulator, GradientsParams},
    tensor::{Device, Int, Tensor, TensorData, activation::softmax},
};
use mixup_core::{
    Layout, MixMethod, MixParams, MixState, PointKind, SpanMode, choose_span,
    interpolated_cross_entropy, mix_with, soft_cross_entropy, soft_targets, token_saliency,
};
use mixup_data::{EncodedExample, TextBatch, batch_indices};
use mixup_models::MixingPoints;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde::{Deserialize, Serialize};

use crate::{
    data::Encoded,
    recipe::{LossForm, Recipe},
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
}

/// Everything a training run needs besides the recipe.
pub struct TrainSetup<'a> {
    /// The recipe (method and seed already overridden as asked).
    pub recipe: &'a Recipe,
    /// The encoded data.
    pub data: &'a Encoded,
    /// The (non-autodiff) device to train on.
    pub device: Device,
    /// The device's name, for the report.
    pub device_name: String,
    /// Report progress every this many steps (and at the end of each epoch).
    pub log_every: usize,
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

fn label_tensor(labels: &[usize], device: &Device) -> Tensor<1, Int> {
    let data: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    Tensor::from_data(TensorData::new(data, [labels.len()]), device)
}

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
/// If the recipe's method cannot run on this model (e.g. a Manifold point it does not have).
pub fn train<M>(
    build: impl FnOnce(&Device) -> M,
    setup: &TrainSetup<'_>,
    on_event: &mut dyn FnMut(&Event),
) -> anyhow::Result<Trained<M>>
where
    M: Module + MixingPoints,
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
    ad.seed(t.seed);
    let mut model = build(&ad);
    let points = model.points();
    let eligible = match &recipe.method.points {
        Some(set) => {
            if let Some(bad) = set.iter().find(|&&p| p >= points.len()) {
                anyhow::bail!(
                    "method.points: point {bad} does not exist; this model has points \
                     0..={} ({points:?})",
                    points.len() - 1
                );
            }
            if method == MixMethod::Tmix
                && let Some(bad) = set
                    .iter()
                    .find(|&&p| !matches!(points[p], PointKind::Layer(_)))
            {
                anyhow::bail!(
                    "method.points: point {bad} is {:?}; tmix mixes after encoder layers \
                     (points 1..={})",
                    points[*bad],
                    points.len() - 2
                );
            }
            set.clone()
        }
        None => method.eligible(&points),
    };
    if method != MixMethod::None && eligible.is_empty() {
        anyhow::bail!("method {method} has no mixing point in this model ({points:?})");
    }

    let span_mode = recipe.span_mode().map_err(anyhow::Error::msg)?;
    let mut optim = AdamConfig::new().with_epsilon(t.adam_epsilon as f32).init();
    let max_len = recipe.data.max_len;
    let smoothing = recipe.method.label_smoothing;
    let mut epochs = Vec::with_capacity(t.epochs);

    for epoch in 1..=t.epochs {
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
        for (step, idx) in batches.iter().enumerate() {
            let items: Vec<&EncodedExample> = idx.iter().map(|&i| &data.train[i]).collect();
            let batch = TextBatch::new(&items, max_len, &ad);
            let n = batch.len();
            let own: Vec<usize> = items.iter().map(|e| e.label).collect();
            // `loss` is what this step differentiates; `logged` what it reports (they differ for
            // SSMix, whose clean loss was differentiated in its saliency pass, `pre_grads`).
            let (logits, loss, logged, dominant, pre_grads) = if mixing {
                let mut rng =
                    StdRng::seed_from_u64(derive_seed(t.seed, MIX, epoch as u64, step as u64));
                let mut params: MixParams = mix_config.sample(n, &mut rng);
                let point = eligible[rng.random_range(0..eligible.len())];
                let mut pre_grads = None;
                let mut logged_extra = None;
                let mut surrogate = None;
                let (logits, partner) = if method == MixMethod::Ssmix {
                    let partners = params.effective_partners();
                    let pass = ssmix_saliency(&model, &batch, num_classes, smoothing)?;
                    pre_grads = Some(GradientsParams::from_grads(pass.grads, &model));
                    logged_extra = Some(pass.clean_loss);
                    surrogate = Some(pass.surrogate);
                    let (aug, ratios) = ssmix_rows(
                        &items,
                        &partners,
                        &pass.saliency,
                        &SsmixSettings {
                            mode: span_mode,
                            layout: data.layout,
                            share: recipe.method.span_share,
                        },
                        &mut rng,
                    );
                    let aug_refs: Vec<&EncodedExample> = aug.iter().collect();
                    let aug_batch = TextBatch::new(&aug_refs, max_len, &ad);
                    params = MixParams {
                        lambdas: ratios,
                        partners: partners.clone(),
                    };
                    (
                        model.forward(aug_batch.ids, aug_batch.mask),
                        partners.iter().map(|&j| own[j]).collect::<Vec<_>>(),
                    )
                } else {
                    match partner_batches.get(step) {
                        Some(pidx) => {
                            let pitems: Vec<&EncodedExample> =
                                pidx.iter().map(|&i| &data.train[i]).collect();
                            let pbatch = TextBatch::new(&pitems, max_len, &ad);
                            let logits = model.forward_mixed_pair(
                                (batch.ids.clone(), batch.mask.clone()),
                                (pbatch.ids, pbatch.mask),
                                point,
                                &params.lambdas,
                            );
                            (logits, pitems.iter().map(|e| e.label).collect::<Vec<_>>())
                        }
                        None => (
                            model.forward_mixed(
                                batch.ids.clone(),
                                batch.mask.clone(),
                                point,
                                &params,
                            ),
                            params.partners.iter().map(|&j| own[j]).collect(),
                        ),
                    }
                };
                let mut loss = match recipe.method.loss {
                    LossForm::Soft => soft_cross_entropy(
                        logits.clone(),
                        mix_with(
                            soft_targets(batch.labels.clone(), num_classes, smoothing),
                            soft_targets(label_tensor(&partner, &ad), num_classes, smoothing),
                            &params.lambdas,
                        ),
                        None,
                    ),
                    LossForm::Interpolated => interpolated_cross_entropy(
                        logits.clone(),
                        batch.labels.clone(),
                        label_tensor(&partner, &ad),
                        &params.lambdas,
                    ),
                };
                if recipe.method.clean_loss && method != MixMethod::Ssmix {
                    let clean = model.forward(batch.ids, batch.mask);
                    let targets = soft_targets(batch.labels, num_classes, smoothing);
                    loss = loss + soft_cross_entropy(clean, targets, None);
                }
                let logged = match logged_extra {
                    Some(clean) => loss.clone().detach() + clean,
                    None => loss.clone().detach(),
                };
                if let Some(extra) = surrogate {
                    loss = loss + extra;
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
                (logits, loss, logged, dominant, pre_grads)
            } else {
                let logits = model.forward(batch.ids, batch.mask);
                let targets = soft_targets(batch.labels, num_classes, smoothing);
                let loss = soft_cross_entropy(logits.clone(), targets, None);
                let logged = loss.clone().detach();
                (logits, loss, logged, own, None)
            };
            let hits = logits
                .detach()
                .argmax(1)
                .reshape([n])
                .equal(label_tensor(&dominant, &ad))
                .int()
                .sum();
            let weighted = logged.mul_scalar(n as f32);
            loss_acc = Some(match loss_acc {
                Some(acc) => acc.add(weighted),
                None => weighted,
            });
            hits_acc = Some(match hits_acc {
                Some(acc) => acc.add(hits),
                None => hits,
            });
            let mut grads = GradientsParams::from_grads(loss.backward(), &model);
            if let Some(pre) = pre_grads {
                let mut sum = GradientsAccumulator::new();
                sum.accumulate(&model, pre);
                sum.accumulate(&model, grads);
                grads = sum.grads();
            }
            model = optim.step(t.lr, model, grads);
            seen += n;
            if (step + 1) % setup.log_every.max(1) == 0 || step + 1 == steps {
                let (loss, acc) = read_running(&loss_acc, &hits_acc, seen);
                if !loss.is_finite() {
                    // The running sum turns NaN/inf at the first bad step and stays so.
                    anyhow::bail!(
                        "training diverged: the loss is {loss} by epoch {epoch} step {} (of {steps}); \
                         stopped without writing a checkpoint. Lower train.lr (now {}) or check \
                         the data.",
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
                    samples_per_s: seen as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9),
                });
            }
        }
        let (train_loss, train_acc) = read_running(&loss_acc, &hits_acc, seen);
        let train_seconds = epoch_start.elapsed().as_secs_f64();

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
        total_seconds: started.elapsed().as_secs_f64(),
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

/// What SSMix's saliency pass leaves: the clean loss (its value, for the report), the
/// gradients of the clean loss for every parameter after the embedding output, the term whose
/// gradient gives the embedding's share of it, and the per-token saliency (host, row-major).
struct SaliencyPass {
    clean_loss: Tensor<1>,
    grads: burn::tensor::Gradients,
    surrogate: Tensor<1>,
    saliency: Vec<Vec<f32>>,
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
) -> anyhow::Result<SaliencyPass> {
    let [n, l] = batch.ids.dims();
    let MixState::Sequence { hidden, mask } = model.embed(batch.ids.clone(), batch.mask.clone())
    else {
        anyhow::bail!("ssmix needs a model whose embedding output is a sequence");
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
    let mut grads = clean.backward();
    let grad = leaf
        .grad_remove(&mut grads)
        .ok_or_else(|| anyhow::anyhow!("ssmix: no gradient reached the embedding output"))?
        .autodiff();
    let surrogate = (hidden * grad.clone()).sum();
    // Models may put extra positions (a [CLS] vector) in front of the ids.
    let [_, l_state, _] = grad.dims();
    let offset = l_state.saturating_sub(l);
    let flat: Vec<f32> = token_saliency(grad, mask)
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .map_err(|e| anyhow::anyhow!("reading saliency back: {e:?}"))?;
    let saliency = (0..n)
        .map(|i| flat[i * l_state + offset..(i + 1) * l_state].to_vec())
        .collect();
    Ok(SaliencyPass {
        clean_loss,
        grads,
        surrogate,
        saliency,
    })
}

/// SSMix's settings for one run.
struct SsmixSettings {
    mode: SpanMode,
    layout: Layout,
    share: f64,
}

/// Each row with its partner's span copied in, and each row's label ratio (1 for rows mixed
/// with themselves or left unmixed).
fn ssmix_rows(
    items: &[&EncodedExample],
    partners: &[usize],
    saliency: &[Vec<f32>],
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
            choose_span(
                settings.mode,
                &saliency[i],
                a.ids.len(),
                &saliency[j],
                b.ids.len(),
                settings.layout,
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

    /// SSMix's split backward (clean loss through a cut embedding output, plus the surrogate)
    /// gives exactly the gradient of the clean loss.
    #[test]
    fn ssmix_saliency_pass_reproduces_the_clean_gradient() {
        use mixup_models::TextCnnConfig;
        let ad = Device::flex().autodiff();
        ad.seed(1);
        let model = TextCnnConfig::new(20, 3)
            .with_d_embed(6)
            .with_n_filters(4)
            .with_dropout(0.0)
            .init(&ad);
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
        let pass = ssmix_saliency(&model, &batch, 3, 0.0).expect("saliency pass");
        assert_eq!(pass.saliency.len(), 3);
        assert_eq!(pass.saliency[0].len(), 5);
        assert!(
            pass.saliency[1][3..].iter().all(|&v| v == 0.0),
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
            let diff = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(diff < 1e-6, "{what}: gradients differ by {diff}");
            assert!(
                a.iter().any(|&v| v != 0.0),
                "{what}: zero gradient proves nothing"
            );
        }
    }

    #[test]
    fn derived_seeds_differ_by_stream_and_step() {
        let a = derive_seed(0, MIX, 1, 0);
        assert_ne!(a, derive_seed(0, MIX, 1, 1));
        assert_ne!(a, derive_seed(0, SHUFFLE, 1, 0));
        assert_ne!(a, derive_seed(1, MIX, 1, 0));
        assert_eq!(a, derive_seed(0, MIX, 1, 0));
    }
}
