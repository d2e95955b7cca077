//! Helpers shared by the integration tests that drive the `mixup` binary.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The `mixup` binary, with the environment that picks devices, data and sweep shards
/// cleared.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mixup"));
    c.env_remove("BURN_DEVICE").env_remove("MIXUP_DATA_DIR");
    // A sweep reads its shard from a scheduler's environment.
    for key in [
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_COUNT",
        "JOB_COMPLETION_INDEX",
    ] {
        c.env_remove(key);
    }
    c
}

/// A temporary folder removed on drop.
pub struct Tmp(pub PathBuf);

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh temporary folder named after the test binary's `name` and the process.
pub fn tmp(name: &str) -> Tmp {
    let d = std::env::temp_dir().join(format!("mixup-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    Tmp(d)
}

/// The WordPiece vocabulary of the tiny checkpoint ([`tiny_bert`]): BERT's special tokens, then
/// the toy words.
#[allow(dead_code)]
pub const TINY_VOCAB: [&str; 18] = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "apple", "river", "engine", "the", "a", "of",
    "and", "to", "in", "is", "it", "that", "was",
];

/// Writes a tiny random BERT checkpoint in Hugging Face's layout into `dir`: `config.json`
/// (2 layers, width 16, 2 heads, 16 positions), `model.safetensors` (with a pooler) and
/// `vocab.txt`.
#[allow(dead_code)]
pub fn tiny_bert(dir: &Path) {
    use safetensors::{Dtype, tensor::TensorView};
    std::fs::create_dir_all(dir).expect("checkpoint dir");
    let (v, d, f, layers, positions) = (TINY_VOCAB.len(), 16usize, 32usize, 2usize, 16usize);
    let config = serde_json::json!({
        "model_type": "bert",
        "vocab_size": v,
        "hidden_size": d,
        "num_hidden_layers": layers,
        "num_attention_heads": 2,
        "intermediate_size": f,
        "max_position_embeddings": positions,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "pad_token_id": 0
    });
    std::fs::write(dir.join("config.json"), config.to_string()).expect("config.json");
    std::fs::write(dir.join("vocab.txt"), TINY_VOCAB.join("\n") + "\n").expect("vocab.txt");

    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("embeddings.word_embeddings.weight".into(), vec![v, d]),
        (
            "embeddings.position_embeddings.weight".into(),
            vec![positions, d],
        ),
        ("embeddings.token_type_embeddings.weight".into(), vec![2, d]),
        ("embeddings.LayerNorm.weight".into(), vec![d]),
        ("embeddings.LayerNorm.bias".into(), vec![d]),
    ];
    for i in 0..layers {
        let p = format!("encoder.layer.{i}");
        for name in ["query", "key", "value"] {
            shapes.push((format!("{p}.attention.self.{name}.weight"), vec![d, d]));
            shapes.push((format!("{p}.attention.self.{name}.bias"), vec![d]));
        }
        for (name, shape) in [
            ("attention.output.dense.weight", vec![d, d]),
            ("attention.output.dense.bias", vec![d]),
            ("attention.output.LayerNorm.weight", vec![d]),
            ("attention.output.LayerNorm.bias", vec![d]),
            ("intermediate.dense.weight", vec![f, d]),
            ("intermediate.dense.bias", vec![f]),
            ("output.dense.weight", vec![d, f]),
            ("output.dense.bias", vec![d]),
            ("output.LayerNorm.weight", vec![d]),
            ("output.LayerNorm.bias", vec![d]),
        ] {
            shapes.push((format!("{p}.{name}"), shape));
        }
    }
    shapes.push(("pooler.dense.weight".into(), vec![d, d]));
    shapes.push(("pooler.dense.bias".into(), vec![d]));

    // LayerNorm gains 1 and shifts 0, everything else small pseudo-random values.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = shapes
        .into_iter()
        .map(|(key, shape)| {
            let len: usize = shape.iter().product();
            let values: Vec<f32> = (0..len)
                .map(|_| {
                    if key.contains("LayerNorm.weight") {
                        1.0
                    } else if key.contains("LayerNorm.bias") {
                        0.0
                    } else {
                        state = state
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1_442_695_040_888_963_407);
                        ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
                    }
                })
                .collect();
            let bytes = values.iter().flat_map(|x| x.to_le_bytes()).collect();
            (key, shape, bytes)
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = raw
        .iter()
        .map(|(k, s, b)| {
            (
                k.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).expect("tensor view"),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors"))
        .expect("model.safetensors");
}

/// A three-class toy dataset: each text repeats its class word among filler words.
#[allow(dead_code)]
pub fn toy_dataset(root: &Path) {
    let dir = root.join("toy");
    std::fs::create_dir_all(&dir).expect("dataset dir");
    let words = ["apple", "river", "engine"];
    let filler = [
        "the", "a", "of", "and", "to", "in", "is", "it", "that", "was",
    ];
    let make = |n: usize, offset: usize| -> String {
        let mut s = String::new();
        for i in 0..n {
            let class = (i + offset) % 3;
            let len = 3 + (i * 7 + offset) % 9;
            let text: Vec<&str> = (0..len)
                .map(|t| {
                    if t % 2 == 0 {
                        words[class]
                    } else {
                        filler[(i + t) % filler.len()]
                    }
                })
                .collect();
            s.push_str(&format!(
                "{}\t{}\n",
                ["FRUIT", "WATER", "MACHINE"][class],
                text.join(" ")
            ));
        }
        s
    };
    std::fs::write(dir.join("train.tsv"), make(96, 0)).expect("train");
    std::fs::write(dir.join("test.tsv"), make(30, 1)).expect("test");
}
