//! The cost of each method per training step, for each model: the real training step
//! (`mixup_train::step::train_step`, the one `mixup train` runs) on TREC-shaped synthetic
//! batches (64 rows, lengths 5 to 30, vocabulary 8680, 6 classes), on `flex`.
//!
//! `cargo bench -p mixup-benches --bench method_step [-- --steps N --models textcnn,bilstm,transformer]`
//! prints, per model and method, the median milliseconds per step and the ratio to the
//! model's plain (`none`) step. SSMix's goal is <= 1.5x a plain step.

use std::{path::Path, time::Instant};

use burn::{optim::AdamConfig, tensor::Device};
use mixup_core::{Layout, MixMethod};
use mixup_data::EncodedExample;
use mixup_models::MixingPoints;
use mixup_train::{
    recipe::Recipe,
    run::build_model,
    step::{StepBatch, StepPlan, train_step},
};
use rand::{RngExt, SeedableRng, rngs::StdRng};

const VOCAB: usize = 8680;
const CLASSES: usize = 6;
const BATCH: usize = 64;

fn rows(rng: &mut StdRng) -> Vec<EncodedExample> {
    (0..BATCH)
        .map(|_| {
            let len = rng.random_range(5..=30);
            EncodedExample {
                ids: (0..len)
                    .map(|_| rng.random_range(2..VOCAB as u32))
                    .collect(),
                label: rng.random_range(0..CLASSES),
            }
        })
        .collect()
}

fn recipe(model: &str, method: MixMethod) -> Recipe {
    let extra = match method {
        MixMethod::Tmix => "alpha = 16.0\n",
        MixMethod::Ssmix => "pairing = \"split-halves\"\n",
        _ => "alpha = 1.0\n",
    };
    let text = format!(
        "name = \"bench\"\n[data]\ndataset = \"synthetic\"\n[model]\nkind = \"{model}\"\n\
         [method]\nkind = \"{}\"\n{extra}",
        method.name()
    );
    match Recipe::parse(&text, Path::new("(bench recipe)")) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

/// Median milliseconds of `steps` training steps (after 3 warm-up steps).
fn time(model_kind: &str, method: MixMethod, steps: usize) -> f64 {
    let device = Device::flex().autodiff();
    device.seed(0);
    let recipe = recipe(model_kind, method);
    let mut model = match build_model(&recipe, VOCAB, CLASSES, &device) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    let plan = match StepPlan::new(&recipe, &model.points(), CLASSES, Layout::PLAIN) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let mut rng = StdRng::seed_from_u64(0);
    let mut times = Vec::with_capacity(steps);
    for i in 0..steps + 3 {
        let a = rows(&mut rng);
        let b = rows(&mut rng);
        let a_refs: Vec<&EncodedExample> = a.iter().collect();
        let b_refs: Vec<&EncodedExample> = b.iter().collect();
        let batch = StepBatch {
            items: &a_refs,
            partner_items: method.separate_batch().then_some(&b_refs[..]),
            mixing: method != MixMethod::None,
        };
        let start = Instant::now();
        let (next, report) =
            match train_step(model, &mut optim, 1e-3, &plan, &batch, &mut rng, &device) {
                Ok(r) => r,
                Err(e) => panic!("{e}"),
            };
        // Reading the loss waits for the step to finish on asynchronous backends.
        let _ = report.loss.into_scalar::<f32>();
        model = next;
        if i >= 3 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let steps: usize = arg("--steps").and_then(|s| s.parse().ok()).unwrap_or(10);
    let models = arg("--models").unwrap_or_else(|| "textcnn,bilstm,transformer".into());
    println!(
        "model        method              ms/step  vs none  (median of {steps} steps, batch {BATCH})"
    );
    for model in models.split(',') {
        let mut base = None;
        for method in MixMethod::ALL {
            if method == MixMethod::Input {
                continue; // the same computation as word
            }
            let ms = time(model, method, steps);
            let base_ms = *base.get_or_insert(ms);
            println!(
                "{model:<12} {:<18} {ms:>8.1} {:>7.2}x",
                method.name(),
                ms / base_ms
            );
        }
    }
}
