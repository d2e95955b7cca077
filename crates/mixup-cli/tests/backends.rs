//! The backends beside flex train what flex trains: every model with every method takes a
//! real training step (forward, backward, optimiser) on each backend compiled in, and the same
//! recipe and seed reach the same accuracy as on flex.
//!
//! Compiled only with a non-default backend feature, e.g.
//! `cargo test -p mixup-train --features ndarray,wgpu --test backends` (wgpu runs on a GPU or
//! on Mesa's lavapipe; set `CUBECL_AUTOTUNE_LEVEL=minimal`, as `.ci/run` does). With
//! `--features tch` (built as the README says) it runs LibTorch on the CPU; put that
//! PyTorch's `torch/lib` on `LD_LIBRARY_PATH`.
#![cfg(any(feature = "ndarray", feature = "wgpu", feature = "tch"))]

mod common;

use burn::tensor::Device;
use common::{bin, tiny_bert, tmp, toy_dataset};
use mixup_cli::{
    bench::{BenchSpec, bench_recipe, default_recipe},
    device::{compiled_backends, select_device},
    recipe::Recipe,
};

/// The backends compiled into this test binary that run here besides flex (`tch` is
/// LibTorch on the CPU; `tch-cuda` and `cuda` need a GPU).
fn backends() -> Vec<&'static str> {
    compiled_backends()
        .into_iter()
        .filter(|b| !matches!(*b, "flex" | "tch-cuda" | "cuda"))
        .collect()
}

fn device(name: &str) -> Device {
    select_device(Some(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .0
}

#[test]
fn every_model_trains_with_every_method_on_each_backend() {
    let t = tmp("backends-step");
    let ckpt = t.0.join("tiny-bert");
    tiny_bert(&ckpt);
    let bert_text = format!(
        "name = \"tiny-bert\"\n[data]\ndataset = \"synthetic\"\nmax_len = 12\n[model]\nkind = \"bert\"\n\
         pretrained = {:?}\n[method]\nkind = \"none\"\n",
        ckpt.display().to_string()
    );
    let spec = BenchSpec {
        batch: 4,
        seq: 6,
        steps: 2,
        warmup: 0,
        vocab: 60,
        classes: 3,
        seed: 7,
    };
    for backend in backends() {
        let dev = device(backend);
        for model in ["textcnn", "bilstm", "transformer", "bert"] {
            for kind in mixup_core::MixMethod::ALL {
                let method = kind.name();
                let recipe = if model == "bert" {
                    let mut r = Recipe::parse(&bert_text, std::path::Path::new("tiny-bert.toml"))
                        .expect("bert recipe");
                    r.method.kind = kind;
                    if kind == mixup_core::MixMethod::Ssmix {
                        r.method.pairing = mixup_core::Pairing::SplitHalves;
                    }
                    r
                } else {
                    default_recipe(model, method).expect("recipe")
                };
                let r = bench_recipe(&recipe, &spec, std::slice::from_ref(&dev), backend, None)
                    .unwrap_or_else(|e| panic!("{backend} {model} {method}: {e:#}"));
                assert_eq!(r.device, backend);
                assert!(
                    r.ms_per_step_median > 0.0,
                    "{backend} {model} {method}: {r:?}"
                );
            }
        }
    }
}

/// Test accuracy of a short TextCNN and Transformer run of the toy task on `backend`.
fn toy_accuracy(root: &std::path::Path, backend: &str, model: &str) -> f64 {
    let recipe = root.join(format!("{model}.toml"));
    let body = match model {
        "textcnn" => "kind = \"textcnn\"\nd_embed = 16\nn_filters = 8",
        _ => "kind = \"transformer\"\nd_model = 16\nn_heads = 2\nn_layers = 1\nd_ff = 32",
    };
    std::fs::write(
        &recipe,
        format!(
            "name = \"toy-{model}\"\n[data]\ndataset = \"toy\"\nmax_len = 12\n[model]\n{body}\n\
             [method]\nkind = \"word\"\nalpha = 1.0\n[train]\nepochs = 6\nbatch_size = 16\n\
             lr = 0.01\nseed = 3\n"
        ),
    )
    .expect("recipe");
    let out = root.join(format!("run-{model}-{backend}"));
    let o = bin()
        .args(["train", "--recipe"])
        .arg(&recipe)
        .arg("--data-dir")
        .arg(root)
        .args(["--device", backend, "--out"])
        .arg(&out)
        .env(
            "CUBECL_AUTOTUNE_LEVEL",
            std::env::var("CUBECL_AUTOTUNE_LEVEL").unwrap_or_else(|_| "minimal".into()),
        )
        .output()
        .expect("run mixup");
    assert!(
        o.status.success(),
        "{backend} {model}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("final.json")).expect("final.json"))
            .expect("json");
    assert_eq!(report["device"], backend);
    report["test_accuracy"].as_f64().expect("accuracy")
}

#[test]
fn the_same_recipe_and_seed_reach_flexs_accuracy() {
    let t = tmp("backends-acc");
    toy_dataset(&t.0);
    for model in ["textcnn", "transformer"] {
        let flex = toy_accuracy(&t.0, "flex", model);
        assert!(flex >= 0.9, "flex {model} learns the toy task: {flex}");
        for backend in backends() {
            let acc = toy_accuracy(&t.0, backend, model);
            assert!(
                (acc - flex).abs() <= 0.1,
                "{backend} {model}: accuracy {acc} vs flex {flex}"
            );
        }
    }
}
