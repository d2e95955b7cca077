//! Times TextCNN training steps (forward, backward, Adam) on `flex`, with and without mixing,
//! on TREC-shaped synthetic batches (64 rows, lengths 5 to 30, vocabulary 8680, 6 classes).
//!
//! `cargo bench -p mixup-benches` (add `-- --steps N` for a longer run). Prints one line per
//! configuration: steps/s and samples/s. Speed against PyTorch is measured by
//! `benches/compare_torch.sh`, which runs both on the real data in one go.

use std::time::Instant;

use burn::{
    optim::{AdamConfig, GradientsParams},
    tensor::{Device, Int, Tensor, TensorData},
};
use mixup_core::{MixupConfig, mix_targets, soft_cross_entropy, soft_targets};
use mixup_models::{MixingPoints, TextCnnConfig};
use rand::{RngExt, SeedableRng, rngs::StdRng};

const VOCAB: usize = 8680;
const CLASSES: usize = 6;
const BATCH: usize = 64;

fn batch(
    rng: &mut StdRng,
    device: &Device,
) -> (
    Tensor<2, Int>,
    Tensor<2, burn::tensor::Bool>,
    Tensor<1, Int>,
) {
    let lens: Vec<usize> = (0..BATCH).map(|_| rng.random_range(5..=30)).collect();
    let l = lens.iter().copied().max().unwrap_or(1);
    let mut ids = vec![0i64; BATCH * l];
    for (r, &len) in lens.iter().enumerate() {
        for t in 0..len {
            ids[r * l + t] = rng.random_range(2..VOCAB as i64);
        }
    }
    let labels: Vec<i64> = (0..BATCH)
        .map(|_| rng.random_range(0..CLASSES as i64))
        .collect();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [BATCH, l]), device);
    let mask = ids.clone().not_equal_elem(0);
    (
        ids,
        mask,
        Tensor::from_data(TensorData::new(labels, [BATCH]), device),
    )
}

fn run(name: &str, point: Option<usize>, steps: usize) {
    let device = Device::flex().autodiff();
    device.seed(0);
    let mut model = TextCnnConfig::new(VOCAB, CLASSES).init(&device);
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let mixup = MixupConfig {
        num_classes: CLASSES,
        ..MixupConfig::default()
    };
    let mut rng = StdRng::seed_from_u64(0);
    let batches: Vec<_> = (0..steps + 5).map(|_| batch(&mut rng, &device)).collect();
    let mut start = Instant::now();
    for (i, (ids, mask, labels)) in batches.into_iter().enumerate() {
        if i == 5 {
            start = Instant::now(); // five warm-up steps
        }
        let (logits, targets) = match point {
            Some(p) => {
                let params = mixup.sample(BATCH, &mut rng);
                let logits = model.forward_mixed(ids, mask, p, &params);
                (logits, mix_targets(labels, &params, CLASSES, 0.0))
            }
            None => (model.forward(ids, mask), soft_targets(labels, CLASSES, 0.0)),
        };
        let loss = soft_cross_entropy(logits, targets, None);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model, grads);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "textcnn {name:<5} {:>8.1} steps/s {:>9.0} samples/s ({steps} steps, {secs:.2} s)",
        steps as f64 / secs,
        (steps * BATCH) as f64 / secs
    );
}

fn main() {
    mixup_benches::setup();
    let args: Vec<String> = std::env::args().collect();
    let steps = args
        .iter()
        .position(|a| a == "--steps")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    run("none", None, steps);
    run("word", Some(0), steps);
    run("sen", Some(2), steps);
}
