//! The cost of each method per training step, for each model: `mixup bench`'s measurement
//! (`mixup_cli::bench`, the real `train_step` of `mixup train`) for every method, on
//! TREC-shaped synthetic batches (64 rows of 24 tokens, vocabulary 8680, 6 classes), on `flex`.
//!
//! `cargo bench -p mixup-benches --bench method_step [-- --steps N --seq L --models textcnn,bilstm,transformer]`
//! prints, per model and method, the median milliseconds per step and the ratio to the
//! model's plain (`none`) step. SSMix's goal is <= 1.5x a plain step.

use burn::tensor::Device;
use mixup_cli::bench::{BenchSpec, bench_recipe, default_recipe};
use mixup_core::MixMethod;

fn main() {
    mixup_benches::setup();
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let defaults = BenchSpec::default();
    let spec = BenchSpec {
        steps: arg("--steps")
            .and_then(|s| s.parse().ok())
            .unwrap_or(defaults.steps),
        seq: arg("--seq")
            .and_then(|s| s.parse().ok())
            .unwrap_or(defaults.seq),
        ..defaults
    };
    let models = arg("--models").unwrap_or_else(|| "textcnn,bilstm,transformer".into());
    println!(
        "model        method              ms/step  vs none  (median of {} steps, batch {} x {} tokens)",
        spec.steps, spec.batch, spec.seq
    );
    for model in models.split(',') {
        let mut base = None;
        for method in MixMethod::ALL {
            if method == MixMethod::Input {
                continue; // the same computation as word
            }
            let report = default_recipe(model, method.name())
                .and_then(|r| bench_recipe(&r, &spec, &[Device::flex()], "flex", None));
            let ms = match report {
                Ok(r) => r.ms_per_step_median,
                Err(e) => panic!("{model} {method}: {e}"),
            };
            let base_ms = *base.get_or_insert(ms);
            println!(
                "{model:<12} {:<18} {ms:>8.1} {:>7.2}x",
                method.name(),
                ms / base_ms
            );
        }
    }
}
