//! `mixup bench`: the library's step benchmark ([`mixup_train::bench`]) on a recipe's model,
//! or on a model kind's defaults.

use std::path::Path;

use burn::tensor::Device;
use mixup_core::{Layout, MixMethod};
use mixup_models::BertEncoder;
pub use mixup_train::bench::{BenchReport, BenchSpec};
use mixup_train::bench::{BenchTarget, bench_model};

use crate::{
    fetch,
    recipe::{DataSection, MethodSection, ModelSection, Recipe, Task},
    run::{ZooModel, bert_classifier, build_model, prepare_bert},
};

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
    let model = match model {
        "textcnn" => ModelSection::Textcnn(Default::default()),
        "bilstm" => ModelSection::Bilstm(Default::default()),
        "transformer" => ModelSection::Transformer(Default::default()),
        other => anyhow::bail!(
            "unknown model kind {other:?}: textcnn, bilstm, transformer (or bert, with --recipe)"
        ),
    };
    let step = mixup_train::bench::default_step_config(kind);
    let recipe = Recipe {
        name: format!("bench-{}-{}", model.kind_name(), kind.name()),
        description: String::new(),
        task: Task::Classify,
        data: DataSection {
            dataset: "synthetic".into(),
            ..Default::default()
        },
        model,
        method: MethodSection {
            kind,
            alpha: step.alpha,
            pairing: step.pairing,
            ..Default::default()
        },
        train: Default::default(),
        seqmix: None,
        mixtext: None,
        results: None,
    };
    recipe.validate(Path::new("(mixup bench defaults)"))?;
    Ok(recipe)
}

/// Builds the recipe's model on the first of `devices` (made autodiff here) and benchmarks
/// it, split across all of them when there are several (data-parallel replicas); a
/// `kind = "bert"` recipe loads its checkpoint (looked up under `data_dir`, then
/// `$MIXUP_DATA_DIR`, then the cache) and uses the checkpoint's vocabulary.
///
/// # Errors
///
/// A missing checkpoint, a model that cannot be built, or [`bench_model`]'s errors.
pub fn bench_recipe(
    recipe: &Recipe,
    spec: &BenchSpec,
    devices: &[Device],
    device_name: &str,
    data_dir: Option<&Path>,
) -> anyhow::Result<BenchReport> {
    let ads: Vec<Device> = devices.iter().map(|d| d.clone().autodiff()).collect();
    let Some(ad) = ads.first() else {
        anyhow::bail!("mixup bench: no device");
    };
    let (step, optim) = (recipe.step_config(), recipe.optim_config());
    let target = |layout, vocab| BenchTarget {
        kind: recipe.model.kind_name(),
        step: &step,
        optim: &optim,
        layout,
        vocab,
    };
    let report = match &recipe.model {
        ModelSection::Bert(m) => {
            let prepared = prepare_bert(m, recipe, data_dir, &fetch::default_cache_dir())?;
            let positions = prepared.config.max_position_embeddings;
            if spec.seq > positions {
                anyhow::bail!(
                    "--seq {}: the checkpoint {} has {positions} positions; give --seq {positions} \
                     or less",
                    spec.seq,
                    prepared.dir.display()
                );
            }
            let model = mixup_train::seeded_try_init(ad, spec.seed, || {
                let (encoder, _) = BertEncoder::from_pretrained(&prepared.dir, ad)?;
                bert_classifier(m, encoder, spec.classes, ad, true, None)
            })?;
            let vocab = prepared.config.vocab_size;
            bench_model(model, &target(Layout::BERT, vocab), spec, &ads, device_name)
        }
        _ => {
            // Synthetic rows are `spec.seq` long: the model gets positions for them (a
            // Transformer's position table follows `data.max_len`).
            let mut sized = recipe.clone();
            sized.data.max_len = sized.data.max_len.max(spec.seq);
            let model: ZooModel = mixup_train::seeded_try_init(ad, spec.seed, || {
                build_model(&sized, spec.vocab, spec.classes, ad)
            })?;
            let target = target(Layout::PLAIN, spec.vocab);
            bench_model(model, &target, spec, &ads, device_name)
        }
    };
    report.map_err(|e| match e {
        // The spec's fields are `mixup bench`'s flags.
        mixup_train::TrainError::Config { key, reason }
            if ["batch", "steps", "seq", "vocab"].contains(&key.as_str()) =>
        {
            anyhow::anyhow!("--{key}: {reason}")
        }
        other => anyhow::Error::new(other),
    })
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
            let r = bench_recipe(&recipe, &spec, &[Device::flex()], "flex", None).expect("bench");
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
        let e = bench_recipe(&recipe, &zero, &[Device::flex()], "flex", None).expect_err("0 steps");
        assert!(e.to_string().contains("--steps"), "{e}");
        // Rows longer than the recipe's max_len (40): the Transformer's position table is
        // built for them (this panicked at transformer.rs:244 before).
        let long = BenchSpec {
            seq: 64,
            steps: 1,
            warmup: 0,
            ..spec.clone()
        };
        let recipe = default_recipe("transformer", "none").expect("recipe");
        assert!(recipe.data.max_len < 64);
        let r = bench_recipe(&recipe, &long, &[Device::flex()], "flex", None).expect("seq 64");
        assert_eq!(r.seq, 64);
        let e = default_recipe("lstm", "none").expect_err("unknown model");
        assert!(e.to_string().contains("lstm"), "{e}");
        let e = default_recipe("bert", "none").expect_err("bert without a recipe");
        assert!(e.to_string().contains("--recipe"), "{e}");
        let e = default_recipe("textcnn", "cutmix").expect_err("unknown method");
        assert!(e.to_string().contains("cutmix"), "{e}");
    }
}
