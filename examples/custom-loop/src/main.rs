//! Your own Burn training loop with zoo models, without the `mixup` CLI, its recipes or its
//! data loaders, in two ways:
//!
//! 1. Manifold Mixup written out by hand from `mixup-core`'s pieces (draw lambdas and
//!    partners, run the model to a point, mix, continue, mix the targets);
//! 2. the library's training step (`mixup_train::train_step`) for the methods that live in the
//!    step: TMix (mixing with a separate batch) and SSMix (a saliency pass, the clean loss).
//!
//! The task is synthetic so that the example needs no files: a sequence's class is the token
//! (of three "topic" tokens) that occurs most often in it. Run it with
//! `cargo run --release -p custom-loop`.

use burn::{
    module::Module,
    optim::{AdamConfig, GradientsParams},
    tensor::{Device, Int, Tensor, TensorData},
};
use mixup_core::{Layout, MixMethod, MixupConfig, Pairing, mix_targets, soft_cross_entropy};
use mixup_data::EncodedExample;
use mixup_models::{MixingPoints, TextCnnConfig, TransformerClassifierConfig};
use mixup_train::{
    OptimConfig, StepBatch, StepConfig, StepPlan, optim::build_optimizer, train_step,
};
use rand::{Rng, RngExt, SeedableRng, rngs::StdRng};

const VOCAB: usize = 50;
const CLASSES: usize = 3;

/// A batch of `n` random sequences (ids >= 1; 0 is padding) of random lengths up to `max_len`,
/// labelled by their most frequent topic token (ids 1, 2, 3).
fn batch(
    rng: &mut impl Rng,
    n: usize,
    max_len: usize,
    device: &Device,
) -> (Tensor<2, Int>, Tensor<1, Int>) {
    let mut ids = vec![0i64; n * max_len];
    let mut labels = Vec::with_capacity(n);
    for row in 0..n {
        let label = rng.random_range(0..CLASSES);
        let len = rng.random_range(4..=max_len);
        for t in 0..len {
            // Half of the tokens are the topic token, the rest noise.
            ids[row * max_len + t] = if rng.random_bool(0.5) {
                1 + label as i64
            } else {
                rng.random_range(4..VOCAB as i64)
            };
        }
        labels.push(label as i64);
    }
    (
        Tensor::from_data(TensorData::new(ids, [n, max_len]), device),
        Tensor::from_data(TensorData::new(labels, [n]), device),
    )
}

/// `n` rows of the same task as [`batch`], as the library's steps take them.
fn rows(rng: &mut impl Rng, n: usize, max_len: usize) -> Vec<EncodedExample> {
    (0..n)
        .map(|_| {
            let label = rng.random_range(0..CLASSES);
            let len = rng.random_range(4..=max_len);
            let ids = (0..len)
                .map(|_| {
                    if rng.random_bool(0.5) {
                        1 + label as u32
                    } else {
                        rng.random_range(4..VOCAB as u32)
                    }
                })
                .collect();
            EncodedExample { ids, label }
        })
        .collect()
}

/// Trains `model` for 80 steps of batch 32 with the library's step as `config` says (with a
/// separate partner batch when the method mixes with one), and returns its held-out accuracy.
fn with_library_step<M: Module + MixingPoints>(
    mut model: M,
    config: &StepConfig,
    device: &Device,
) -> f64 {
    let plan = StepPlan::new(config, &model.points(), CLASSES, Layout::PLAIN)
        .expect("the method has a mixing point in this model");
    let mut optim = build_optimizer(&OptimConfig::new().with_lr(5e-3), &model);
    let mut rng = StdRng::seed_from_u64(1);
    for step in 1..=80 {
        let own = rows(&mut rng, 32, 12);
        let partners = rows(&mut rng, 32, 12);
        let own: Vec<&EncodedExample> = own.iter().collect();
        let partners: Vec<&EncodedExample> = partners.iter().collect();
        let batch = StepBatch {
            items: &own,
            partner_items: config.method.separate_batch().then_some(&partners[..]),
            mixing: true,
            unlabelled: None,
        };
        let (next, report) = train_step(model, &mut optim, 5e-3, &plan, &batch, &mut rng, device)
            .expect("a step of a valid plan");
        model = next;
        if step % 40 == 0 {
            println!(
                "  step {step}: {} loss {:.4}",
                config.method,
                report.loss.into_scalar::<f32>()
            );
        }
    }
    let held_out = rows(&mut rng, 200, 12);
    let (acc, _) =
        mixup_train::train::evaluate(&model.valid(), &held_out, 200, 12, CLASSES, &Device::flex());
    acc
}

fn main() {
    hand_written_manifold_mixup();
    let device = Device::flex().autodiff();
    mixup_train::seed_device(&device, 0);
    // TMix: mix after an encoder layer with a separate batch (alpha 16, as the paper).
    let transformer = TransformerClassifierConfig::new(VOCAB, CLASSES)
        .with_d_model(32)
        .with_n_heads(2)
        .with_n_layers(2)
        .with_d_ff(64)
        .with_max_positions(12)
        .init(&device);
    let tmix = StepConfig::new()
        .with_method(MixMethod::Tmix)
        .with_alpha(16.0)
        .with_max_len(12);
    let acc = with_library_step(transformer, &tmix, &device);
    println!("held-out accuracy (tmix, library step): {acc:.3}");
    // SSMix: saliency spans swapped between the two halves of the batch, plus the clean loss.
    let cnn = TextCnnConfig::new(VOCAB, CLASSES)
        .with_d_embed(32)
        .with_n_filters(16)
        .init(&device);
    let ssmix = StepConfig::new()
        .with_method(MixMethod::Ssmix)
        .with_pairing(Pairing::SplitHalves)
        .with_max_len(12);
    let acc = with_library_step(cnn, &ssmix, &device);
    println!("held-out accuracy (ssmix, library step): {acc:.3}");
}

/// Manifold Mixup from `mixup-core`'s pieces, in a loop of your own.
fn hand_written_manifold_mixup() {
    let device = Device::flex().autodiff();
    device.seed(0);
    let mut model = TextCnnConfig::new(VOCAB, CLASSES)
        .with_d_embed(32)
        .with_n_filters(16)
        .init(&device);
    let mut optim = AdamConfig::new().init();
    let mixup = MixupConfig {
        alpha: 2.0,
        num_classes: CLASSES,
        ..MixupConfig::default()
    };
    mixup.validate().expect("a valid mixup config");
    // Manifold Mixup: a point drawn per batch from all of the model's mixing points.
    let points = MixMethod::Manifold.eligible(&model.points());
    let mut rng = StdRng::seed_from_u64(0);

    for step in 1..=60 {
        let (ids, labels) = batch(&mut rng, 32, 12, &device);
        let mask = ids.clone().not_equal_elem(0);
        let params = mixup.sample(32, &mut rng);
        let point = points[rng.random_range(0..points.len())];
        let logits = model.forward_mixed(ids, mask, point, &params);
        let targets = mix_targets(labels, &params, CLASSES, 0.0);
        let loss = soft_cross_entropy(logits, targets, None);
        if step % 20 == 0 {
            println!(
                "step {step}: mixed loss {:.4} (point {point})",
                loss.clone().into_scalar::<f32>()
            );
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-2, model, grads);
    }

    // Evaluate without mixing, on the plain (non-autodiff) model.
    let model = model.valid();
    let plain = Device::flex();
    let (ids, labels) = batch(&mut rng, 200, 12, &plain);
    let mask = ids.clone().not_equal_elem(0);
    let predicted = model.forward(ids, mask).argmax(1).reshape([200]);
    let correct: i64 = predicted.equal(labels).int().sum().into_scalar();
    println!(
        "held-out accuracy (manifold, own loop): {:.3}",
        correct as f64 / 200.0
    );
}
