//! Training-step benchmarks on synthetic batches: the real [`train_step`] of `mixup train`
//! (same model, optimiser, clipping and method), timed step by step, for `mixup bench` and
//! the benchmarks in `benches/`.
//!
//! Every row of a synthetic batch has exactly `seq` tokens (none of them padding), so that a
//! peer framework given the same batch and sequence length does the same arithmetic. Token ids
//! are drawn uniformly from the part of the vocabulary above the special tokens; labels
//! uniformly from the classes. A step's time runs from the start of [`train_step`] to the
//! moment its loss has been read back to the host, which waits for asynchronous backends.

use std::{path::Path, time::Instant};

use burn::{module::Module, tensor::Device};
use mixup_core::{Layout, MixMethod};
use mixup_data::EncodedExample;
use mixup_models::{BertEncoder, MixingPoints};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde::Serialize;

use crate::{
    fetch,
    optim::build_optimizer,
    recipe::{ModelSection, Recipe},
    run::{ZooModel, bert_classifier, build_model, prepare_bert},
    step::{StepBatch, StepPlan, train_step},
};

/// The shape and length of one benchmark.
#[derive(Clone, Debug)]
pub struct BenchSpec {
    /// Rows per step.
    pub batch: usize,
    /// Tokens per row (special tokens included for BERT-family models).
    pub seq: usize,
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps before them (allocator, autotuning, caches).
    pub warmup: usize,
    /// Vocabulary size of word-level models (BERT-family models use their checkpoint's).
    pub vocab: usize,
    /// Number of classes.
    pub classes: usize,
    /// Seeds the weights, the batches and the mixing.
    pub seed: u64,
}

impl Default for BenchSpec {
    /// TREC-6's shape: batch 64, 24 tokens, vocabulary 8680, 6 classes; 20 steps after 3.
    fn default() -> Self {
        Self {
            batch: 64,
            seq: 24,
            steps: 20,
            warmup: 3,
            vocab: 8680,
            classes: 6,
            seed: 0,
        }
    }
}

/// What one benchmark measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Model kind (`textcnn`, `bilstm`, `transformer`, `bert`).
    pub model: String,
    /// Method.
    pub method: String,
    /// Backend the steps ran on.
    pub device: String,
    /// Rows per step.
    pub batch: usize,
    /// Tokens per row.
    pub seq: usize,
    /// Timed steps.
    pub steps: usize,
    /// Trainable and frozen parameters.
    pub parameters: usize,
    /// Median milliseconds per step.
    pub ms_per_step_median: f64,
    /// Fastest step.
    pub ms_per_step_min: f64,
    /// Slowest step.
    pub ms_per_step_max: f64,
    /// `batch` rows per median step.
    pub samples_per_s: f64,
    /// The process's peak resident memory in MiB (host memory; Linux only). On a GPU backend
    /// device memory is not included.
    pub peak_host_memory_mib: Option<f64>,
}

/// A recipe with the defaults of `model` (`textcnn`, `bilstm` or `transformer`) and `method`,
/// as `mixup bench --model` uses: alpha 16 for TMix (its paper's setting), split-halves pairs
/// for SSMix, alpha 1 otherwise.
///
/// # Errors
///
/// An unknown model kind or method, named.
pub fn default_recipe(model: &str, method: &str) -> anyhow::Result<Recipe> {
    if model == "bert" {
        anyhow::bail!(
            "model bert needs a checkpoint: pass a recipe with --recipe (e.g. \
             models/minilm-trec-none.toml)"
        );
    }
    let kind: MixMethod = method.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let extra = match kind {
        MixMethod::None => "",
        MixMethod::Tmix => "alpha = 16.0\n",
        MixMethod::Ssmix => "pairing = \"split-halves\"\n",
        _ => "alpha = 1.0\n",
    };
    let text = format!(
        "name = \"bench-{model}-{method}\"\n[data]\ndataset = \"synthetic\"\n\
         [model]\nkind = \"{model}\"\n[method]\nkind = \"{method}\"\n{extra}"
    );
    Ok(Recipe::parse(&text, Path::new("(mixup bench defaults)"))?)
}

/// Peak resident memory of this process in MiB, from `/proc/self/status` (`VmHWM`).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// One synthetic batch: `spec.batch` rows of `spec.seq` ids in `first_id..vocab`.
fn synthetic_rows(
    spec: &BenchSpec,
    vocab: usize,
    first_id: u32,
    rng: &mut StdRng,
) -> Vec<EncodedExample> {
    (0..spec.batch)
        .map(|_| EncodedExample {
            ids: (0..spec.seq)
                .map(|_| rng.random_range(first_id..vocab as u32))
                .collect(),
            label: rng.random_range(0..spec.classes),
        })
        .collect()
}

/// Times `spec.steps` training steps of `model` (built on the autodiff `device`) with the
/// recipe's method, optimiser, learning rate and clipping.
///
/// # Errors
///
/// A method the model cannot run, a step that fails, or a bad spec (zero rows, steps or
/// tokens).
#[allow(clippy::too_many_arguments)]
pub fn bench_model<M: Module + MixingPoints>(
    mut model: M,
    recipe: &Recipe,
    layout: Layout,
    vocab: usize,
    spec: &BenchSpec,
    device: &Device,
    device_name: &str,
) -> anyhow::Result<BenchReport> {
    if spec.batch == 0 || spec.steps == 0 || spec.seq == 0 {
        anyhow::bail!(
            "--batch, --steps and --seq must be at least 1 (got {}, {}, {})",
            spec.batch,
            spec.steps,
            spec.seq
        );
    }
    if spec.seq <= layout.front + layout.back {
        anyhow::bail!(
            "--seq {}: a row of this model needs more than its {} special tokens",
            spec.seq,
            layout.front + layout.back
        );
    }
    let method = recipe.method_kind().map_err(anyhow::Error::msg)?;
    let mut plan = StepPlan::new(recipe, &model.points(), spec.classes, layout)?;
    plan.max_len = plan.max_len.max(spec.seq);
    let parameters = model.num_params();
    let mut optim = build_optimizer(&recipe.train, &model);
    // Word-level models keep ids 0 and 1 for padding and <unk>; BERT vocabularies keep their
    // first 1000 ids for special and unused tokens (a toy vocabulary of at most 2000 ids
    // keeps only the padding id out).
    let first_id: u32 = match layout {
        Layout::PLAIN => 2,
        _ if vocab > 2000 => 1000,
        _ => 1,
    };
    if vocab <= first_id as usize {
        anyhow::bail!("--vocab {vocab}: must be above {first_id}");
    }
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut times = Vec::with_capacity(spec.steps);
    for i in 0..spec.warmup + spec.steps {
        let a = synthetic_rows(spec, vocab, first_id, &mut rng);
        let b = synthetic_rows(spec, vocab, first_id, &mut rng);
        let a_refs: Vec<&EncodedExample> = a.iter().collect();
        let b_refs: Vec<&EncodedExample> = b.iter().collect();
        let batch = StepBatch {
            items: &a_refs,
            partner_items: method.separate_batch().then_some(&b_refs[..]),
            mixing: method != MixMethod::None,
        };
        let start = Instant::now();
        let (next, report) = train_step(
            model,
            &mut optim,
            recipe.train.lr,
            &plan,
            &batch,
            &mut rng,
            device,
        )?;
        let loss = report.loss.into_scalar::<f32>();
        let ms = start.elapsed().as_secs_f64() * 1e3;
        if !loss.is_finite() {
            anyhow::bail!("step {}: the loss is {loss}", i + 1);
        }
        model = next;
        if i >= spec.warmup {
            times.push(ms);
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    Ok(BenchReport {
        model: recipe.model.kind_name().to_string(),
        method: method.name().to_string(),
        device: device_name.to_string(),
        batch: spec.batch,
        seq: spec.seq,
        steps: spec.steps,
        parameters,
        ms_per_step_median: median,
        ms_per_step_min: times[0],
        ms_per_step_max: times[times.len() - 1],
        samples_per_s: spec.batch as f64 * 1e3 / median,
        peak_host_memory_mib: peak_rss_mib(),
    })
}

/// Builds the recipe's model on `device` (made autodiff here) and benchmarks it; a
/// `kind = "bert"` recipe loads its checkpoint (looked up under `data_dir`, then
/// `$MIXUP_DATA_DIR`, then the cache) and uses the checkpoint's vocabulary.
///
/// # Errors
///
/// A missing checkpoint, a model that cannot be built, or [`bench_model`]'s errors.
pub fn bench_recipe(
    recipe: &Recipe,
    spec: &BenchSpec,
    device: &Device,
    device_name: &str,
    data_dir: Option<&Path>,
) -> anyhow::Result<BenchReport> {
    let ad = device.clone().autodiff();
    crate::train::seed_device(&ad, spec.seed);
    match &recipe.model {
        ModelSection::Bert(m) => {
            let prepared = prepare_bert(m, recipe, data_dir, &fetch::default_cache_dir())?;
            let (encoder, _) = BertEncoder::from_pretrained(&prepared.dir, &ad)?;
            let model = bert_classifier(m, encoder, spec.classes, &ad, true)?;
            let vocab = prepared.config.vocab_size;
            bench_model(model, recipe, Layout::BERT, vocab, spec, &ad, device_name)
        }
        _ => {
            let model: ZooModel = build_model(recipe, spec.vocab, spec.classes, &ad)?;
            bench_model(
                model,
                recipe,
                Layout::PLAIN,
                spec.vocab,
                spec,
                &ad,
                device_name,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "flex")]
    #[test]
    fn benches_a_small_step_of_each_model_and_rejects_bad_specs() {
        let spec = BenchSpec {
            batch: 4,
            seq: 6,
            steps: 2,
            warmup: 1,
            vocab: 50,
            classes: 3,
            seed: 1,
        };
        for (model, method) in [
            ("textcnn", "ssmix"),
            ("bilstm", "manifold"),
            ("transformer", "tmix"),
        ] {
            let recipe = default_recipe(model, method).expect("recipe");
            let r = bench_recipe(&recipe, &spec, &Device::flex(), "flex", None).expect("bench");
            assert_eq!((r.model.as_str(), r.method.as_str()), (model, method));
            assert_eq!((r.batch, r.seq, r.steps), (4, 6, 2));
            assert!(r.ms_per_step_min <= r.ms_per_step_median);
            assert!(r.ms_per_step_median <= r.ms_per_step_max);
            assert!(r.samples_per_s > 0.0 && r.parameters > 0);
        }
        let recipe = default_recipe("textcnn", "none").expect("recipe");
        let zero = BenchSpec {
            steps: 0,
            ..spec.clone()
        };
        let e = bench_recipe(&recipe, &zero, &Device::flex(), "flex", None).expect_err("0 steps");
        assert!(e.to_string().contains("--steps"), "{e}");
        let e = default_recipe("lstm", "none").expect_err("unknown model");
        assert!(e.to_string().contains("lstm"), "{e}");
        let e = default_recipe("bert", "none").expect_err("bert without a recipe");
        assert!(e.to_string().contains("--recipe"), "{e}");
        let e = default_recipe("textcnn", "cutmix").expect_err("unknown method");
        assert!(e.to_string().contains("cutmix"), "{e}");
    }
}
