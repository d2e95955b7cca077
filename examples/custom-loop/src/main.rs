//! Your own Burn training loop with a zoo model and Manifold Mixup from `mixup-core`, without
//! the `mixup` CLI, its recipes or its data loaders.
//!
//! The task is synthetic so that the example needs no files: a sequence's class is the token
//! (of three "topic" tokens) that occurs most often in it. Run it with
//! `cargo run --release -p custom-loop`.

use burn::{
    module::Module,
    optim::{AdamConfig, GradientsParams},
    tensor::{Device, Int, Tensor, TensorData},
};
use mixup_core::{MixMethod, MixupConfig, mix_targets, soft_cross_entropy};
use mixup_models::{MixingPoints, TextCnnConfig};
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

fn main() {
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
    println!("held-out accuracy: {:.3}", correct as f64 / 200.0);
}
