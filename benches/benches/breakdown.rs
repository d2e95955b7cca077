//! Where a TextCNN training step on `flex` spends its time: forward (with the loss read
//! back), backward, and the Adam step, in milliseconds per step, on TREC-sized batches
//! (64 rows of 24 tokens, vocabulary 8680, 6 classes; 10 warm-up steps, 50 timed).
//!
//! `cargo bench -p mixup-benches --bench breakdown`

use burn::{
    optim::{AdamConfig, GradientsParams},
    tensor::{Device, Int, Tensor, TensorData},
};
use mixup_core::{soft_cross_entropy, soft_targets};
use mixup_models::{MixingPoints, TextCnnConfig};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use std::time::Instant;
/// Runs the timed steps and prints the three means.
fn main() {
    mixup_benches::setup();
    let device = Device::flex().autodiff();
    device.seed(0);
    let mut model = TextCnnConfig::new(8680, 6).init(&device);
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let mut rng = StdRng::seed_from_u64(0);
    let l = 24usize;
    let (mut t_fwd, mut t_bwd, mut t_opt) = (0.0, 0.0, 0.0);
    for i in 0..60 {
        let ids: Vec<i64> = (0..64 * l).map(|_| rng.random_range(2..8680i64)).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [64, l]), &device);
        let mask = ids.clone().not_equal_elem(0);
        let labels = Tensor::<1, Int>::from_data(
            TensorData::new((0..64).map(|i| (i % 6) as i64).collect::<Vec<_>>(), [64]),
            &device,
        );
        let a = Instant::now();
        let loss = soft_cross_entropy(model.forward(ids, mask), soft_targets(labels, 6, 0.0), None);
        let _: f32 = loss.clone().into_scalar();
        let b = Instant::now();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let c = Instant::now();
        model = optim.step(1e-3, model, grads);
        // Read a parameter back so that the step has really finished on any backend.
        let _ = model
            .embedding
            .weight
            .val()
            .slice([0..1, 0..1])
            .into_scalar::<f32>();
        let d = Instant::now();
        if i >= 10 {
            t_fwd += (b - a).as_secs_f64();
            t_bwd += (c - b).as_secs_f64();
            t_opt += (d - c).as_secs_f64();
        }
    }
    println!(
        "per step ms: fwd {:.2} bwd {:.2} opt {:.2}",
        t_fwd * 20.0,
        t_bwd * 20.0,
        t_opt * 20.0
    );
}
