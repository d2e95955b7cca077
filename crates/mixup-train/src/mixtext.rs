//! MixText (Chen, Yang and Yang 2020, "MixText: Linguistically-Informed Interpolation of
//! Hidden Space for Semi-Supervised Text Classification", <https://arxiv.org/abs/2004.12239>):
//! TMix over labelled and unlabelled rows together, the unlabelled rows with guessed targets.
//!
//! One step ([`crate::step::step_gradients`] with [`mixup_core::MixMethod::MixText`]):
//! 1. **Guess** ([`guess_targets`]): the model (in training mode, as the official code) reads
//!    each unlabelled text and its K augmentations; the mean of the K + 1 softmax outputs,
//!    sharpened with temperature T ([`sharpen`]: `p^(1/T)`, renormalised), is the text's
//!    target, detached: no gradient flows through a guessed target.
//! 2. **Mix**: the labelled rows (one-hot targets) and every view of every unlabelled text (its
//!    guessed target) form one batch; each row is paired with a random row of that batch
//!    (the recipe's pairing), lambda ~ Beta(alpha, alpha) taken as `max(lambda, 1 - lambda)`
//!    (the paper's MixText: each mixed row stays closer to its own row), and the hidden states
//!    are mixed after a layer drawn from the eligible set (by default TMix's {7, 9, 12} scaled
//!    to the depth), under the union of the padding masks; the targets are mixed likewise.
//! 3. **Loss** ([`mixtext_loss`]): soft cross-entropy on the mixed rows that started labelled,
//!    plus `lambda_u · ramp` times the KL divergence from the mixed target to the prediction on
//!    the mixed rows that started unlabelled (`ramp` rises linearly from 0 to 1 over
//!    `rampup_epochs`, [`rampup`]), plus, as an option, the paper's entropy margin
//!    `margin_weight · mean(max(0, margin - ||p||²))` on those rows.
//!
//! The official code pairs the original unlabelled copy only with itself (its permutation
//! leaves the last block in place); here every row may be any row's partner.

use burn::tensor::{Device, Int, Tensor, TensorData, activation::softmax};
use mixup_core::{MixParams, soft_cross_entropy};
use mixup_data::{EncodedExample, TextBatch};
use mixup_models::MixingPoints;

/// An unlabelled text for semi-supervised training: its encoding and those of its K
/// augmentations (their labels are never read).
#[derive(Clone, Debug, PartialEq)]
pub struct UnlabelledExample {
    /// `views[0]` is the text, `views[1..]` its augmentations.
    pub views: Vec<EncodedExample>,
}

/// MixText's settings for one run (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MixTextSettings {
    /// Sharpening temperature T of the guessed targets.
    pub temperature: f64,
    /// Weight of the unlabelled term once ramped up.
    pub lambda_u: f64,
    /// Epochs over which the unlabelled weight rises linearly from 0 (0: at once).
    pub rampup_epochs: f64,
    /// The entropy margin gamma (`None`: no margin term).
    pub margin: Option<f64>,
    /// Weight of the margin term.
    pub margin_weight: f64,
}

impl Default for MixTextSettings {
    fn default() -> Self {
        Self {
            temperature: 0.5,
            lambda_u: 1.0,
            rampup_epochs: 0.0,
            margin: None,
            margin_weight: 0.0,
        }
    }
}

/// `p^(1/T)` renormalised per row (`T = 1` leaves `p` as it is; `T -> 0` approaches one-hot).
pub fn sharpen(probs: Tensor<2>, temperature: f64) -> Tensor<2> {
    let p = probs.powf_scalar((1.0 / temperature) as f32);
    let z = p.clone().sum_dim(1);
    p / z
}

/// The linear ramp of the unlabelled weight after `progress` epochs (fractional): `progress /
/// length`, clamped to `[0, 1]`; 1 when `length` is 0.
pub fn rampup(progress: f64, length: f64) -> f64 {
    if length <= 0.0 {
        return 1.0;
    }
    (progress / length).clamp(0.0, 1.0)
}

/// The guessed targets `[n, classes]` of unlabelled texts: the mean of the model's softmax over
/// each text's views, sharpened with `temperature`, detached.
///
/// # Panics
///
/// No texts, or texts with different numbers of views.
pub fn guess_targets<M: MixingPoints>(
    model: &M,
    texts: &[&UnlabelledExample],
    temperature: f64,
    max_len: usize,
    device: &Device,
) -> Tensor<2> {
    let k = texts.first().map_or(0, |t| t.views.len());
    assert!(
        k > 0 && texts.iter().all(|t| t.views.len() == k),
        "guess_targets: every text needs the same number (>= 1) of views"
    );
    let mut sum: Option<Tensor<2>> = None;
    for v in 0..k {
        let rows: Vec<&EncodedExample> = texts.iter().map(|t| &t.views[v]).collect();
        let batch = TextBatch::new(&rows, max_len, device);
        let p = softmax(model.forward(batch.ids, batch.mask).detach(), 1);
        sum = Some(match sum {
            Some(s) => s + p,
            None => p,
        });
    }
    let mean = sum.expect("at least one view").div_scalar(k as f32);
    sharpen(mean, temperature).detach()
}

/// What [`mixtext_loss`] computed.
pub struct MixTextLoss {
    /// The loss to differentiate: `supervised + weight · unlabelled (+ margin term)`.
    pub loss: Tensor<1>,
    /// Soft cross-entropy of the mixed labelled rows.
    pub supervised: Tensor<1>,
    /// KL divergence of the mixed unlabelled rows (before its weight).
    pub unlabelled: Tensor<1>,
    /// Logits of the mixed labelled rows `[n_labelled, classes]`.
    pub labelled_logits: Tensor<2>,
}

/// MixText's loss on `rows` (the labelled rows first, `n_labelled` of them, then the unlabelled
/// ones) with their `targets` `[rows, classes]` (one-hot, then guessed), mixed at `point` with
/// `params` (partners index into `rows`); `unlabelled_weight` is `lambda_u · ramp`.
#[allow(clippy::too_many_arguments)]
pub fn mixtext_loss<M: MixingPoints>(
    model: &M,
    rows: &[&EncodedExample],
    n_labelled: usize,
    targets: Tensor<2>,
    params: &MixParams,
    point: usize,
    settings: &MixTextSettings,
    unlabelled_weight: f32,
    max_len: usize,
    device: &Device,
) -> MixTextLoss {
    let n = rows.len();
    let batch = TextBatch::new(rows, max_len, device);
    let logits = model.forward_mixed(batch.ids, batch.mask, point, params);
    let partners: Vec<i64> = params.partners.iter().map(|&j| j as i64).collect();
    let partners = Tensor::<1, Int>::from_data(TensorData::new(partners, [n]), device);
    // The targets are taken as given: guessed ones come detached from [`guess_targets`].
    let mixed = mixup_core::mix_with(
        targets.clone(),
        targets.select(0, partners),
        &params.lambdas,
    );
    let labelled_logits = logits.clone().narrow(0, 0, n_labelled);
    let supervised = soft_cross_entropy(
        labelled_logits.clone(),
        mixed.clone().narrow(0, 0, n_labelled),
        None,
    );
    let nu = n - n_labelled;
    if nu == 0 {
        return MixTextLoss {
            loss: supervised.clone(),
            unlabelled: Tensor::zeros([1], device),
            supervised,
            labelled_logits,
        };
    }
    let logits_u = logits.narrow(0, n_labelled, nu);
    let target_u = mixed.narrow(0, n_labelled, nu);
    // KL(target || p) = cross-entropy - entropy(target); the entropy is a constant.
    let entropy = target_u
        .clone()
        .mul(target_u.clone().clamp_min(1e-12).log())
        .sum_dim(1)
        .mean()
        .reshape([1])
        .neg();
    let unlabelled = soft_cross_entropy(logits_u.clone(), target_u, None) - entropy;
    let mut loss = supervised.clone() + unlabelled.clone().mul_scalar(unlabelled_weight);
    if let Some(gamma) = settings.margin
        && settings.margin_weight > 0.0
    {
        let p = softmax(logits_u, 1);
        let sq = p.clone().mul(p).sum_dim(1).reshape([nu]);
        let hinge = sq.neg().add_scalar(gamma as f32).clamp_min(0.0).mean();
        loss = loss + hinge.mul_scalar(settings.margin_weight as f32);
    }
    MixTextLoss {
        loss,
        supervised,
        unlabelled,
        labelled_logits,
    }
}

/// The unlabelled texts of global step `step` (0-based): `per_step` of them, the texts in a
/// fresh seeded order each pass over them (pass `p` is shuffled by `seed` and `p`), so that a
/// resumed run reads the same texts.
pub fn unlabelled_batch(n_texts: usize, per_step: usize, step: usize, seed: u64) -> Vec<usize> {
    use rand::{SeedableRng, seq::SliceRandom};
    if n_texts == 0 || per_step == 0 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(per_step);
    let order_of = |pass: usize| {
        let mut order: Vec<usize> = (0..n_texts).collect();
        let mut rng =
            rand::rngs::StdRng::seed_from_u64(crate::train::derive_seed(seed, 31, pass as u64, 0));
        order.shuffle(&mut rng);
        order
    };
    let start = step * per_step;
    let mut pass = start / n_texts;
    let mut order = order_of(pass);
    for k in start..start + per_step {
        if k / n_texts != pass {
            pass = k / n_texts;
            order = order_of(pass);
        }
        out.push(order[k % n_texts]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharpening_and_ramp_on_hand_values() {
        let device = Device::flex();
        let p = Tensor::<2>::from_data(
            TensorData::new(vec![0.6f32, 0.4, 0.25, 0.75], [2, 2]),
            &device,
        );
        let s: Vec<f32> = sharpen(p.clone(), 0.5)
            .into_data()
            .try_to_vec::<f32>()
            .expect("host");
        // 0.36 / 0.52 and 0.16 / 0.52; 0.0625 / 0.625 and 0.5625 / 0.625.
        let want = [0.692_307_7, 0.307_692_3, 0.1, 0.9];
        for (a, b) in s.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{s:?}");
        }
        let same: Vec<f32> = sharpen(p, 1.0)
            .into_data()
            .try_to_vec::<f32>()
            .expect("host");
        assert!((same[0] - 0.6).abs() < 1e-6);
        assert_eq!(rampup(0.0, 4.0), 0.0);
        assert_eq!(rampup(1.0, 4.0), 0.25);
        assert_eq!(rampup(9.0, 4.0), 1.0);
        assert_eq!(rampup(0.0, 0.0), 1.0);
    }

    /// Unlabelled batches depend on the global step only (a resumed run reads the same texts),
    /// cover every text once per pass, and passes are shuffled differently.
    #[test]
    fn unlabelled_batches_are_a_function_of_the_step() {
        let a: Vec<Vec<usize>> = (0..5).map(|s| unlabelled_batch(10, 4, s, 9)).collect();
        let b: Vec<Vec<usize>> = (0..5).map(|s| unlabelled_batch(10, 4, s, 9)).collect();
        assert_eq!(a, b);
        let flat: Vec<usize> = a.concat();
        let mut first: Vec<usize> = flat[..10].to_vec();
        first.sort_unstable();
        assert_eq!(first, (0..10).collect::<Vec<_>>());
        assert_ne!(flat[..10], flat[10..20]);
        assert!(unlabelled_batch(0, 4, 3, 1).is_empty());
    }

    /// A toy task where unlabelled text measurably helps: two classes, each with ten words of
    /// its own; the two labelled examples per class use only two of those words, the test
    /// texts only the other eight. Trained on labelled data alone, a TextCNN has never seen a
    /// test word with a label; MixText's guesses on unlabelled texts (where the words
    /// co-occur) carry the labels over. Paired over 3 seeds.
    #[test]
    fn unlabelled_data_helps_with_two_labels_per_class() {
        use crate::{StepConfig, TextData, TrainConfig, TrainSetup, train};
        use mixup_core::{Layout, MixMethod};
        use rand::{RngExt, SeedableRng, seq::SliceRandom};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let filler = |rng: &mut rand::rngs::StdRng| 2 + rng.random_range(0..10u32);
        let word = |class: usize, pool: std::ops::Range<u32>, rng: &mut rand::rngs::StdRng| {
            12 + 10 * class as u32 + rng.random_range(pool)
        };
        let text = |class: usize, pool: std::ops::Range<u32>, rng: &mut rand::rngs::StdRng| {
            let mut ids: Vec<u32> = (0..4).map(|_| word(class, pool.clone(), rng)).collect();
            ids.push(filler(rng));
            ids.shuffle(rng);
            EncodedExample { ids, label: class }
        };
        let train_rows: Vec<EncodedExample> = (0..4).map(|i| text(i % 2, 0..2, &mut rng)).collect();
        let test_rows: Vec<EncodedExample> =
            (0..200).map(|i| text(i % 2, 2..10, &mut rng)).collect();
        let unlabelled: Vec<UnlabelledExample> = (0..300)
            .map(|i| {
                let t = text(i % 2, 0..10, &mut rng);
                let mut views = vec![t.clone()];
                // Word dropout: each view keeps a random half of the words, so that a
                // view without the labelled words must agree with the text's guess.
                for _ in 0..2 {
                    let mut v = t.clone();
                    for _ in 0..2 {
                        v.ids.remove(rng.random_range(0..v.ids.len()));
                    }
                    views.push(v);
                }
                UnlabelledExample { views }
            })
            .collect();
        let accuracy = |method: MixMethod, seed: u64| -> f64 {
            let config = TrainConfig::new()
                .with_step(
                    StepConfig::new()
                        .with_method(method)
                        .with_alpha(2.0)
                        .with_max_len(8)
                        // No sharpening: from a random start with two labels per class, sharpened
                        // early guesses collapse every text onto one class (with T = 0.5, and
                        // dropout 0.5, two of these three seeds ended at chance).
                        .with_mixtext_temperature(1.0)
                        .with_mixtext_rampup(60.0),
                )
                .with_epochs(120)
                .with_batch_size(4)
                .with_unlabelled_batch_size(16)
                .with_seed(seed)
                .with_optim(crate::OptimConfig::new().with_lr(0.01));
            let setup = TrainSetup {
                config: &config,
                name: "toy",
                data: TextData {
                    train: &train_rows,
                    dev: None,
                    test: &test_rows,
                    num_classes: 2,
                    vocab_size: 32,
                    layout: Layout::PLAIN,
                    unlabelled: &unlabelled,
                },
                device: Device::flex(),
                device_name: "flex".into(),
                replicas: Vec::new(),
                checkpoint_dir: None,
                resume: None,
            };
            let build = |d: &Device| {
                Ok(mixup_models::TextCnnConfig::new(32, 2)
                    .with_d_embed(16)
                    .with_n_filters(8)
                    .with_widths(vec![1, 2])
                    // No dropout: with dropout 0.5 (and T = 0.5) the sharpened early guesses
                    // of the random model collapsed onto one class (README, MixText).
                    .with_dropout(0.0)
                    .init(d))
            };
            train(build, &setup, &mut |_| {})
                .expect("train")
                .report
                .test_accuracy
        };
        let mut gains = Vec::new();
        for seed in 0..3 {
            let (none, mixtext) = (
                accuracy(MixMethod::None, seed),
                accuracy(MixMethod::MixText, seed),
            );
            eprintln!("seed {seed}: none {none:.3}, mixtext {mixtext:.3}");
            gains.push(mixtext - none);
        }
        // Initial weights depend on the seed alone (`seeded_try_init`), so these runs repeat;
        // the margins leave room for other CPUs' rounding (one seed may tie: it collapses).
        let mean = gains.iter().sum::<f64>() / 3.0;
        assert!(
            mean > 0.1 && gains.iter().all(|&g| g > -0.05),
            "unlabelled data should help: gains {gains:?}"
        );
    }
}
