//! The training step's wiring, method by method, against losses computed by hand (a unit
//! test module of `step.rs`, in its own file).
//!
//! `Probe` is a model small enough to run on paper: a fixed 2-wide embedding table, one layer
//! that squares every value, a sum over positions and a fixed linear head. Its three mixing
//! points (embedding, layer, pooled) give different results when mixed, so a step that mixes
//! at another point than the one it drew, pairs a row with the wrong partner's label, gives
//! lambda to the wrong label, or weights SSMix's span wrongly, produces another loss than the
//! one computed here in plain `f32` arithmetic. The draws are replayed from the step's seed in
//! the order the step makes them (partners and lambdas, then the point).

use crate::{
    StepBatch, StepConfig, StepPlan,
    step::{SsmixSettings, step_gradients},
};
use burn::{
    module::{Module, Param},
    tensor::{Bool, Device, Int, Tensor, TensorData},
};
use mixup_core::{Layout, MixMethod, MixState, PointKind, SpanMode, choose_span, zero_padding};
use mixup_data::EncodedExample;
use mixup_models::MixingPoints;
use rand::{RngExt, SeedableRng, rngs::StdRng};

const VOCAB: usize = 30;
const CLASSES: usize = 3;
const W: [[f32; CLASSES]; 2] = [[0.5, -0.3, 0.2], [-0.4, 0.6, 0.1]];

fn table_row(v: u32) -> [f32; 2] {
    [
        ((v * 7) % 11) as f32 * 0.1 - 0.5,
        ((v * 3) % 7) as f32 * 0.15 - 0.4,
    ]
}

#[derive(Module, Debug)]
struct Probe {
    table: Param<Tensor<2>>,
    w: Param<Tensor<2>>,
}

impl Probe {
    fn new(device: &Device) -> Self {
        let table: Vec<f32> = (0..VOCAB as u32).flat_map(table_row).collect();
        let w: Vec<f32> = W.iter().flatten().copied().collect();
        Self {
            table: Param::from_tensor(Tensor::from_data(
                TensorData::new(table, [VOCAB, 2]),
                device,
            )),
            w: Param::from_tensor(Tensor::from_data(TensorData::new(w, [2, CLASSES]), device)),
        }
    }
}

impl MixingPoints for Probe {
    fn points(&self) -> Vec<PointKind> {
        vec![PointKind::Embedding, PointKind::Layer(0), PointKind::Pooled]
    }

    fn embed(&self, ids: Tensor<2, Int>, mask: Tensor<2, Bool>) -> MixState {
        let [n, l] = ids.dims();
        let hidden = self
            .table
            .val()
            .select(0, ids.reshape([n * l]))
            .reshape([n, l, 2]);
        MixState::Sequence {
            hidden: zero_padding(hidden, mask.clone()),
            mask,
        }
    }

    fn advance(&self, state: MixState, point: usize) -> MixState {
        match (state, point) {
            (MixState::Sequence { hidden, mask }, 0) => MixState::Sequence {
                hidden: hidden.powf_scalar(2.0),
                mask,
            },
            (MixState::Sequence { hidden, .. }, 1) => {
                let [n, _, d] = hidden.dims();
                MixState::Pooled(hidden.sum_dim(1).reshape([n, d]))
            }
            (_, p) => panic!("Probe has no step from point {p}"),
        }
    }

    fn head(&self, pooled: Tensor<2>) -> Tensor<2> {
        pooled.matmul(self.w.val())
    }
}

// ---------------------------------------------------------------------------------------------
// The same model on paper
// ---------------------------------------------------------------------------------------------

/// A row's state at a point: a sequence of 2-vectors, or the pooled 2-vector.
#[derive(Clone, Debug)]
enum Hand {
    Seq(Vec<[f32; 2]>),
    Pooled([f32; 2]),
}

fn hand_embed(ids: &[u32]) -> Hand {
    Hand::Seq(ids.iter().map(|&v| table_row(v)).collect())
}

fn hand_advance(state: Hand, point: usize) -> Hand {
    match (state, point) {
        (Hand::Seq(h), 0) => Hand::Seq(h.iter().map(|x| [x[0] * x[0], x[1] * x[1]]).collect()),
        (Hand::Seq(h), 1) => Hand::Pooled(
            h.iter()
                .fold([0.0, 0.0], |acc, x| [acc[0] + x[0], acc[1] + x[1]]),
        ),
        (s, p) => panic!("no step from {p} for {s:?}"),
    }
}

fn hand_to(ids: &[u32], point: usize) -> Hand {
    (0..point).fold(hand_embed(ids), hand_advance)
}

/// `lambda * a + (1 - lambda) * b`; the shorter sequence is zero-extended (padding is zero).
fn hand_mix(a: Hand, b: Hand, lambda: f32) -> Hand {
    let m = |x: f32, y: f32| lambda * x + (1.0 - lambda) * y;
    match (a, b) {
        (Hand::Pooled(a), Hand::Pooled(b)) => Hand::Pooled([m(a[0], b[0]), m(a[1], b[1])]),
        (Hand::Seq(a), Hand::Seq(b)) => {
            let at = |s: &[[f32; 2]], t: usize| s.get(t).copied().unwrap_or([0.0, 0.0]);
            Hand::Seq(
                (0..a.len().max(b.len()))
                    .map(|t| {
                        let (x, y) = (at(&a, t), at(&b, t));
                        [m(x[0], y[0]), m(x[1], y[1])]
                    })
                    .collect(),
            )
        }
        _ => panic!("mixing different kinds"),
    }
}

fn hand_logits(mut state: Hand, point: usize) -> [f32; CLASSES] {
    for k in point..2 {
        state = hand_advance(state, k);
    }
    let Hand::Pooled(p) = state else {
        panic!("pooled")
    };
    std::array::from_fn(|c| p[0] * W[0][c] + p[1] * W[1][c])
}

fn softmax(logits: &[f32; CLASSES]) -> [f32; CLASSES] {
    let max = logits.iter().copied().fold(f32::MIN, f32::max);
    let e: Vec<f32> = logits.iter().map(|x| (x - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    std::array::from_fn(|c| e[c] / sum)
}

/// `-sum_c target_c log softmax(logits)_c` with target `lambda * onehot(own) + (1 - lambda) *
/// onehot(other)`.
fn hand_ce(logits: &[f32; CLASSES], own: usize, other: usize, lambda: f32) -> f32 {
    let p = softmax(logits);
    -(lambda * p[own].ln() + (1.0 - lambda) * p[other].ln())
}

fn mean(v: impl Iterator<Item = f32>) -> f32 {
    let v: Vec<f32> = v.collect();
    v.iter().sum::<f32>() / v.len() as f32
}

// ---------------------------------------------------------------------------------------------
// The step
// ---------------------------------------------------------------------------------------------

/// Six rows of 3 to 6 tokens, labels 0, 1, 2 in turn; `stride` varies the ids.
fn rows(stride: u32) -> Vec<EncodedExample> {
    (0..6u32)
        .map(|i| EncodedExample {
            ids: (0..3 + i % 4)
                .map(|t| 2 + (i * stride + t * 5) % 28)
                .collect(),
            label: (i % 3) as usize,
        })
        .collect()
}

struct Outcome {
    loss: f32,
    plan: StepPlan,
}

fn run_step(
    config: &StepConfig,
    own: &[EncodedExample],
    partner: Option<&[EncodedExample]>,
    seed: u64,
) -> Outcome {
    let device = Device::flex().autodiff();
    let model = Probe::new(&device);
    let plan =
        StepPlan::new(config, &model.points(), CLASSES, Layout::PLAIN).expect("a valid plan");
    let items: Vec<&EncodedExample> = own.iter().collect();
    let pitems: Option<Vec<&EncodedExample>> = partner.map(|p| p.iter().collect());
    let batch = StepBatch {
        items: &items,
        partner_items: pitems.as_deref(),
        mixing: true,
        unlabelled: None,
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let (_, report) = step_gradients(&model, &plan, &batch, &mut rng, &device, 1.0).expect("step");
    let loss = report
        .loss
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32")[0];
    Outcome { loss, plan }
}

/// The step's own draws, replayed: partners and lambdas, then the point.
fn replay(plan: &StepPlan, n: usize, seed: u64) -> (Vec<usize>, Vec<f32>, usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let params = plan.mix_config.sample(n, &mut rng);
    let point = plan.eligible[rng.random_range(0..plan.eligible.len())];
    (params.partners, params.lambdas, point)
}

/// The hand loss of a step that mixes row `i` with `partner_rows[partners[i]]` at `point`.
fn hand_mixed_loss(
    own: &[EncodedExample],
    partner_rows: &[EncodedExample],
    partners: &[usize],
    lambdas: &[f32],
    point: usize,
) -> f32 {
    mean(own.iter().enumerate().map(|(i, row)| {
        let b = &partner_rows[partners[i]];
        let state = hand_mix(hand_to(&row.ids, point), hand_to(&b.ids, point), lambdas[i]);
        hand_ce(&hand_logits(state, point), row.label, b.label, lambdas[i])
    }))
}

fn config(method: MixMethod) -> StepConfig {
    StepConfig::new()
        .with_method(method)
        .with_alpha(1.0)
        .with_max_len(16)
}

fn assert_close(got: f32, want: f32, what: &str) {
    assert!(
        (got - want).abs() < 1e-5 * want.abs().max(1.0),
        "{what}: the step's loss is {got}, by hand {want}"
    );
}

/// Input mixup, wordMixup, senMixup and Mixup-Transformer mix at their one point: each row's
/// own label gets lambda, the partner row's label the rest.
#[test]
fn fixed_point_methods_match_the_hand_loss() {
    let own = rows(3);
    for (method, point) in [
        (MixMethod::Input, 0),
        (MixMethod::Word, 0),
        (MixMethod::Sen, 2),
        (MixMethod::MixupTransformer, 2),
    ] {
        let mut told = 0;
        for seed in 0..8 {
            let out = run_step(&config(method), &own, None, seed);
            let (partners, lambdas, drawn) = replay(&out.plan, own.len(), seed);
            assert_eq!(drawn, point, "{method} mixes at point {point}");
            let want = hand_mixed_loss(&own, &own, &partners, &lambdas, point);
            assert_close(out.loss, want, &format!("{method}, seed {seed}"));
            // The loss a miswired step would give: the lambdas on the partner's label.
            let swapped: Vec<f32> = lambdas.iter().map(|l| 1.0 - l).collect();
            let wrong = mean(own.iter().enumerate().map(|(i, row)| {
                let b = &own[partners[i]];
                let state = hand_mix(hand_to(&row.ids, point), hand_to(&b.ids, point), lambdas[i]);
                hand_ce(&hand_logits(state, point), row.label, b.label, swapped[i])
            }));
            if (wrong - want).abs() > 1e-3 {
                told += 1;
            }
        }
        assert!(
            told >= 4,
            "{method}: on {told} of 8 seeds only does a swapped lambda change the loss"
        );
    }
}

/// Manifold Mixup mixes at the point it drew (the embedding or the layer here), and the loss
/// at the other point differs, so a step mixing elsewhere would be caught.
#[test]
fn manifold_mixes_at_the_drawn_point() {
    let own = rows(3);
    let (mut seen, mut told) = (std::collections::BTreeSet::new(), 0);
    for seed in 0..12 {
        let out = run_step(&config(MixMethod::Manifold), &own, None, seed);
        assert_eq!(
            out.plan.eligible,
            vec![0, 1],
            "the paper's set: input and first layer"
        );
        let (partners, lambdas, point) = replay(&out.plan, own.len(), seed);
        seen.insert(point);
        let want = hand_mixed_loss(&own, &own, &partners, &lambdas, point);
        assert_close(
            out.loss,
            want,
            &format!("manifold, seed {seed}, point {point}"),
        );
        let other = hand_mixed_loss(&own, &own, &partners, &lambdas, 1 - point);
        if (other - want).abs() > 1e-4 {
            told += 1;
        }
    }
    assert_eq!(seen.len(), 2, "12 seeds draw both points");
    assert!(
        told >= 8,
        "on {told} of 12 seeds only does the other point give another loss"
    );
}

/// TMix mixes row `i` with row `i` of its separate partner batch, at the drawn layer, with
/// that row's label; it also mixes at point 0 when asked.
#[test]
fn tmix_matches_the_hand_loss_at_every_allowed_point() {
    let (own, other) = (rows(3), rows(11));
    let identity: Vec<usize> = (0..own.len()).collect();
    for points in [None, Some(vec![0]), Some(vec![0, 1])] {
        let mut c = config(MixMethod::Tmix);
        c.points = points.clone();
        for seed in 0..4 {
            let out = run_step(&c, &own, Some(&other), seed);
            let (_, lambdas, point) = replay(&out.plan, own.len(), seed);
            let want = hand_mixed_loss(&own, &other, &identity, &lambdas, point);
            assert_close(out.loss, want, &format!("tmix {points:?}, seed {seed}"));
        }
    }
    // The pooled vector is not a point TMix mixes at.
    let mut c = config(MixMethod::Tmix);
    c.points = Some(vec![2]);
    let model = Probe::new(&Device::flex());
    assert!(StepPlan::new(&c, &model.points(), CLASSES, Layout::PLAIN).is_err());
}

/// The clean loss of every non-SSMix method is averaged with the mixed one by default.
#[test]
fn clean_loss_is_averaged_with_the_mixed_loss() {
    let own = rows(3);
    let mut c = config(MixMethod::Sen);
    c.clean_loss = true;
    let out = run_step(&c, &own, None, 4);
    let (partners, lambdas, point) = replay(&out.plan, own.len(), 4);
    let mixed = hand_mixed_loss(&own, &own, &partners, &lambdas, point);
    let clean = mean(
        own.iter()
            .map(|r| hand_ce(&hand_logits(hand_embed(&r.ids), 0), r.label, r.label, 1.0)),
    );
    assert_close(out.loss, 0.5 * (mixed + clean), "sen + clean loss");
}

/// SSMix: the saliency is the gradient norm of the clean loss at the embedding output; the
/// least salient window of each row takes its partner's most salient window; the row's label
/// ratio is `1 - span / length`; the step's loss is the mean of the mixed and the clean loss.
#[test]
fn ssmix_matches_the_hand_loss() {
    let own = rows(3);
    for share in [0.3, 0.5] {
        for seed in 0..4 {
            let mut c = config(MixMethod::Ssmix);
            c.span_share = share;
            let out = run_step(&c, &own, None, seed);
            let mut rng = StdRng::seed_from_u64(seed);
            let partners = out.plan.mix_config.sample_partners(own.len(), &mut rng);
            assert!(partners.iter().any(|&j| j != partners[j]));
            // The clean loss's gradient at each embedding output h_t: the head's gradient
            // (p - y) W^T, times d(sum_t h_t^2)/dh_t = 2 h_t (the 1/n of the mean does not
            // change the normalised saliency).
            let saliency: Vec<Vec<f32>> = own
                .iter()
                .map(|r| {
                    let p = softmax(&hand_logits(hand_embed(&r.ids), 0));
                    let up: Vec<f32> = (0..2)
                        .map(|d| {
                            (0..CLASSES)
                                .map(|k| (p[k] - f32::from(k == r.label)) * W[d][k])
                                .sum()
                        })
                        .collect();
                    let norms: Vec<f32> = r
                        .ids
                        .iter()
                        .map(|&v| {
                            let h = table_row(v);
                            let g = [2.0 * h[0] * up[0], 2.0 * h[1] * up[1]];
                            ((g[0] * g[0] + g[1] * g[1]) / 2.0).sqrt()
                        })
                        .collect();
                    let max = norms.iter().copied().fold(1e-12, f32::max);
                    norms.iter().map(|x| x / max).collect()
                })
                .collect();
            let settings: SsmixSettings = out.plan.ssmix;
            assert_eq!(settings.mode, SpanMode::Saliency);
            let mut spans = 0;
            let mixed = mean(own.iter().enumerate().map(|(i, a)| {
                let j = partners[i];
                let b = &own[j];
                let mix = if i == j {
                    mixup_core::SpanMix::none()
                } else {
                    choose_span(
                        SpanMode::Saliency,
                        &saliency[i],
                        a.ids.len(),
                        &saliency[j],
                        b.ids.len(),
                        Layout::PLAIN,
                        share,
                        &mut StdRng::seed_from_u64(0),
                    )
                };
                if !mix.positions.is_empty() {
                    spans += 1;
                    let w = mix.positions.len() as f32;
                    assert!((mix.ratio - (1.0 - w / a.ids.len() as f32)).abs() < 1e-6);
                }
                let ids = mix.apply(&a.ids, &b.ids);
                hand_ce(
                    &hand_logits(hand_embed(&ids), 0),
                    a.label,
                    b.label,
                    mix.ratio,
                )
            }));
            assert!(
                spans >= 3,
                "most rows must be mixed for the check to mean anything"
            );
            let clean = mean(
                own.iter()
                    .map(|r| hand_ce(&hand_logits(hand_embed(&r.ids), 0), r.label, r.label, 1.0)),
            );
            assert_close(
                out.loss,
                0.5 * (mixed + clean),
                &format!("ssmix share {share}, seed {seed}"),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// MixText
// ---------------------------------------------------------------------------------------------

/// `p^(1/T)` renormalised.
fn hand_sharpen(p: [f32; CLASSES], t: f32) -> [f32; CLASSES] {
    let q: Vec<f32> = p.iter().map(|x| x.powf(1.0 / t)).collect();
    let s: f32 = q.iter().sum();
    std::array::from_fn(|c| q[c] / s)
}

/// Two unlabelled texts, each with one augmentation.
fn unlabelled_texts() -> Vec<crate::mixtext::UnlabelledExample> {
    [[3u32, 9, 14, 20], [5, 11, 2, 27]]
        .iter()
        .map(|ids| crate::mixtext::UnlabelledExample {
            views: vec![
                EncodedExample {
                    ids: ids.to_vec(),
                    label: 0,
                },
                EncodedExample {
                    ids: ids[1..].to_vec(),
                    label: 0,
                },
            ],
        })
        .collect()
}

/// MixText's step equals its loss by hand: guessed targets (mean softmax over each text's
/// views, sharpened with T), the labelled rows and every view in one batch, the step's
/// partners and `max(lambda, 1 - lambda)`, mixed at the drawn layer; soft cross-entropy on the
/// labelled rows plus the weight times the KL divergence on the unlabelled rows.
#[test]
fn mixtext_matches_the_hand_loss() {
    let own = &rows(5)[..3];
    let texts = unlabelled_texts();
    let refs: Vec<&crate::mixtext::UnlabelledExample> = texts.iter().collect();
    let (t, w) = (0.5f32, 0.7f32);
    for seed in 0..6u64 {
        let c = config(MixMethod::MixText)
            .with_mixtext_temperature(f64::from(t))
            .with_alpha(2.0);
        let device = Device::flex().autodiff();
        let model = Probe::new(&device);
        let plan = StepPlan::new(&c, &model.points(), CLASSES, Layout::PLAIN).expect("plan");
        let items: Vec<&EncodedExample> = own.iter().collect();
        let batch = StepBatch {
            items: &items,
            partner_items: None,
            mixing: true,
            unlabelled: Some((&refs, w)),
        };
        let mut rng = StdRng::seed_from_u64(seed);
        let (_, report) =
            step_gradients(&model, &plan, &batch, &mut rng, &device, 1.0).expect("step");
        let got = report
            .loss
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32")[0];
        // By hand.
        let guesses: Vec<[f32; CLASSES]> = texts
            .iter()
            .map(|u| {
                let probs: Vec<[f32; CLASSES]> = u
                    .views
                    .iter()
                    .map(|v| softmax(&hand_logits(hand_embed(&v.ids), 0)))
                    .collect();
                let mean: [f32; CLASSES] =
                    std::array::from_fn(|k| probs.iter().map(|p| p[k]).sum::<f32>() / 2.0);
                hand_sharpen(mean, t)
            })
            .collect();
        let mut all: Vec<&EncodedExample> = own.iter().collect();
        let mut targets: Vec<[f32; CLASSES]> = own
            .iter()
            .map(|e| std::array::from_fn(|k| if k == e.label { 1.0 } else { 0.0 }))
            .collect();
        for v in 0..2 {
            for (u, g) in texts.iter().zip(&guesses) {
                all.push(&u.views[v]);
                targets.push(*g);
            }
        }
        let (partners, lambdas, point) = replay(&plan, all.len(), seed);
        let lambdas: Vec<f32> = lambdas.iter().map(|l| l.max(1.0 - l)).collect();
        assert!(
            (1..=2).contains(&point),
            "MixText mixes after a layer (points {:?})",
            plan.eligible
        );
        let terms: Vec<f32> = (0..all.len())
            .map(|i| {
                let j = partners[i];
                let state = hand_mix(
                    hand_to(&all[i].ids, point),
                    hand_to(&all[j].ids, point),
                    lambdas[i],
                );
                let p = softmax(&hand_logits(state, point));
                let target: [f32; CLASSES] = std::array::from_fn(|k| {
                    lambdas[i] * targets[i][k] + (1.0 - lambdas[i]) * targets[j][k]
                });
                let ce: f32 = -(0..CLASSES).map(|k| target[k] * p[k].ln()).sum::<f32>();
                if i < own.len() {
                    ce
                } else {
                    // KL(target || p) = CE - H(target).
                    ce + (0..CLASSES)
                        .map(|k| target[k] * target[k].max(1e-12).ln())
                        .sum::<f32>()
                }
            })
            .collect();
        let lx = mean(terms[..3].iter().copied());
        let lu = mean(terms[3..].iter().copied());
        assert_close(got, lx + w * lu, &format!("mixtext, seed {seed}"));
        // A wrong temperature changes the loss (the check can fail).
        let bad: Vec<f32> = guesses.iter().map(|g| g[0]).collect();
        let unsharpened = texts
            .iter()
            .map(|u| softmax(&hand_logits(hand_embed(&u.views[0].ids), 0))[0])
            .collect::<Vec<_>>();
        assert!(
            bad.iter()
                .zip(&unsharpened)
                .any(|(a, b)| (a - b).abs() > 1e-3)
        );
    }
}

/// The unlabelled term gets no gradient through the guessed targets: the step's gradients
/// equal those of the same loss with the guesses given as constants, and differ from those of
/// a loss whose guesses stay attached to the graph (so this check can fail).
#[test]
fn mixtext_guesses_carry_no_gradient() {
    use crate::mixtext::{MixTextSettings, guess_targets, mixtext_loss, sharpen};
    use burn::optim::GradientsParams;
    use mixup_core::{MixParams, soft_targets};
    let own = &rows(7)[..3];
    let texts = unlabelled_texts();
    let refs: Vec<&crate::mixtext::UnlabelledExample> = texts.iter().collect();
    let device = Device::flex().autodiff();
    let model = Probe::new(&device);
    let c = config(MixMethod::MixText).with_alpha(2.0);
    let plan = StepPlan::new(&c, &model.points(), CLASSES, Layout::PLAIN).expect("plan");
    let items: Vec<&EncodedExample> = own.iter().collect();
    let batch = StepBatch {
        items: &items,
        partner_items: None,
        mixing: true,
        unlabelled: Some((&refs, 1.0)),
    };
    let seed = 3;
    let mut rng = StdRng::seed_from_u64(seed);
    let (grads, _) = step_gradients(&model, &plan, &batch, &mut rng, &device, 1.0).expect("step");
    let table_grad = |g: &GradientsParams| -> Vec<f32> {
        g.get::<2>(model.table.id)
            .expect("table gradient")
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32")
    };
    let step = table_grad(&grads);
    let mut all: Vec<&EncodedExample> = own.iter().collect();
    for v in 0..2 {
        all.extend(texts.iter().map(|u| &u.views[v]));
    }
    let (partners, lambdas, point) = replay(&plan, all.len(), seed);
    let params = MixParams {
        lambdas: lambdas.iter().map(|l| l.max(1.0 - l)).collect(),
        partners,
    };
    let labels = Tensor::<1, Int>::from_data(
        TensorData::new(own.iter().map(|e| e.label as i64).collect::<Vec<_>>(), [3]),
        &device,
    );
    let onehot = soft_targets(labels, CLASSES, 0.0);
    let settings = MixTextSettings::default();
    let loss_with = |guess: Tensor<2>| {
        let targets = Tensor::cat(vec![onehot.clone(), guess.clone(), guess], 0);
        let out = mixtext_loss(
            &model, &all, 3, targets, &params, point, &settings, 1.0, 16, &device,
        );
        table_grad(&GradientsParams::from_grads(out.loss.backward(), &model))
    };
    // The guesses as constants (fresh tensors from host values).
    let g = guess_targets(&model, &refs, 0.5, 16, &device);
    let host = g.into_data();
    let constant = loss_with(Tensor::<2>::from_data(host, &device));
    // The same guesses left attached to the model.
    let mut attached: Option<Tensor<2>> = None;
    for v in 0..2 {
        let rows: Vec<&EncodedExample> = texts.iter().map(|u| &u.views[v]).collect();
        let b = mixup_data::TextBatch::new(&rows, 16, &device);
        let p = burn::tensor::activation::softmax(model.forward(b.ids, b.mask), 1);
        attached = Some(match attached {
            Some(a) => a + p,
            None => p,
        });
    }
    let attached = loss_with(sharpen(attached.expect("views").div_scalar(2.0), 0.5));
    let diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    };
    assert!(
        diff(&step, &constant) < 1e-6,
        "step vs constant guesses: {}",
        diff(&step, &constant)
    );
    assert!(
        diff(&attached, &constant) > 1e-4,
        "attached guesses must change the gradient"
    );
}
