//! Run folders: what a training run leaves behind, and loading it back for eval and predict.
//!
//! ```text
//! <run>/recipe.toml      the resolved recipe (method and seed as run)
//! <run>/tokenizer.json   the word vocabulary
//! <run>/labels.json      the class names, by index
//! <run>/model.bpk        the model parameters (Burn record)
//! <run>/metrics.csv      one row per epoch
//! <run>/metrics.json     the same, as JSON
//! <run>/final.json       the final report
//! <run>/curves.png       loss and accuracy per epoch
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::nn::activation::ActivationConfig;
use burn::tensor::{Bool, Int, Tensor};
use burn::{module::Module, store::ModuleRecord, tensor::Device};
use mixup_core::{MixState, PointKind};
use mixup_data::{LabelSet, WordTokenizer};
use mixup_models::{
    BiLstmClassifier, BiLstmClassifierConfig, MixingPoints, TextCnn, TextCnnConfig,
    TransformerClassifier, TransformerClassifierConfig,
};

use crate::{
    data::{load_encoded, resolve_dataset},
    fetch,
    plot::{Series, plot_training},
    recipe::{ModelSection, Recipe},
    train::{EpochMetrics, Event, FinalMetrics, TrainSetup, train},
};

/// Any model of the zoo, as one Burn module (what a recipe's `[model]` section builds).
#[derive(Module, Debug)]
pub enum ZooModel {
    /// Kim's TextCNN.
    TextCnn(TextCnn),
    /// A BiLSTM classifier.
    BiLstm(BiLstmClassifier),
    /// A Transformer encoder classifier.
    Transformer(TransformerClassifier),
}

impl MixingPoints for ZooModel {
    fn points(&self) -> Vec<PointKind> {
        match self {
            Self::TextCnn(m) => m.points(),
            Self::BiLstm(m) => m.points(),
            Self::Transformer(m) => m.points(),
        }
    }

    fn embed(&self, ids: Tensor<2, Int>, mask: Tensor<2, Bool>) -> MixState {
        match self {
            Self::TextCnn(m) => m.embed(ids, mask),
            Self::BiLstm(m) => m.embed(ids, mask),
            Self::Transformer(m) => m.embed(ids, mask),
        }
    }

    fn advance(&self, state: MixState, point: usize) -> MixState {
        match self {
            Self::TextCnn(m) => m.advance(state, point),
            Self::BiLstm(m) => m.advance(state, point),
            Self::Transformer(m) => m.advance(state, point),
        }
    }

    fn head(&self, pooled: Tensor<2>) -> Tensor<2> {
        match self {
            Self::TextCnn(m) => m.head(pooled),
            Self::BiLstm(m) => m.head(pooled),
            Self::Transformer(m) => m.head(pooled),
        }
    }
}

/// Builds the recipe's model for a vocabulary and label set.
pub fn build_model(
    recipe: &Recipe,
    vocab_size: usize,
    num_classes: usize,
    device: &Device,
) -> ZooModel {
    match &recipe.model {
        ModelSection::Textcnn(m) => ZooModel::TextCnn(
            TextCnnConfig::new(vocab_size, num_classes)
                .with_d_embed(m.d_embed)
                .with_n_filters(m.n_filters)
                .with_widths(m.widths.clone())
                .with_dropout(m.dropout)
                .init(device),
        ),
        ModelSection::Bilstm(m) => ZooModel::BiLstm(
            BiLstmClassifierConfig::new(vocab_size, num_classes)
                .with_d_embed(m.d_embed)
                .with_d_hidden(m.d_hidden)
                .with_n_layers(m.n_layers)
                .with_mean_pooling(m.pooling == "mean")
                .with_dropout(m.dropout)
                .init(device),
        ),
        ModelSection::Transformer(m) => ZooModel::Transformer(
            TransformerClassifierConfig::new(vocab_size, num_classes)
                .with_d_model(m.d_model)
                .with_n_heads(m.n_heads)
                .with_n_layers(m.n_layers)
                .with_d_ff(m.d_ff)
                .with_dropout(m.dropout)
                // One more position for [CLS].
                .with_max_positions(recipe.data.max_len + 1)
                .with_pre_norm(m.norm == "pre")
                .with_cls_pooling(m.pooling == "cls")
                .with_activation(if m.activation == "gelu" {
                    ActivationConfig::Gelu
                } else {
                    ActivationConfig::Relu
                })
                .init(device),
        ),
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so that a reader never
/// sees half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// The per-epoch metrics as CSV.
pub fn metrics_csv(epochs: &[EpochMetrics]) -> String {
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_default();
    let mut s = String::from(
        "epoch,mixing,train_loss,train_acc_dominant,dev_loss,dev_acc,test_loss,test_acc,\
         train_seconds,samples_per_s\n",
    );
    for e in epochs {
        s.push_str(&format!(
            "{},{},{:.6},{:.6},{},{},{:.6},{:.6},{:.3},{:.1}\n",
            e.epoch,
            e.mixing,
            e.train_loss,
            e.train_acc_dominant,
            opt(e.dev_loss),
            opt(e.dev_acc),
            e.test_loss,
            e.test_acc,
            e.train_seconds,
            e.samples_per_s
        ));
    }
    s
}

/// Saves everything a finished run leaves behind into `dir`.
///
/// # Errors
///
/// Any file that cannot be written, named.
pub fn save_run(
    dir: &Path,
    recipe: &Recipe,
    tokenizer: &WordTokenizer,
    labels: &LabelSet,
    model: ZooModel,
    epochs: &[EpochMetrics],
    report: &FinalMetrics,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut resolved = recipe.clone();
    resolved.results = None;
    write_atomic(&dir.join("recipe.toml"), resolved.to_toml()?.as_bytes())?;
    write_atomic(&dir.join("tokenizer.json"), &serde_json::to_vec(tokenizer)?)?;
    write_atomic(
        &dir.join("labels.json"),
        &serde_json::to_vec_pretty(labels)?,
    )?;
    let model_path = dir.join("model.bpk");
    let tmp = dir.join("model.bpk.tmp");
    model
        .into_record()
        .save(&tmp)
        .map_err(|e| anyhow::anyhow!("writing {}: {e:?}", tmp.display()))?;
    std::fs::rename(&tmp, &model_path)
        .with_context(|| format!("renaming to {}", model_path.display()))?;
    write_atomic(&dir.join("metrics.csv"), metrics_csv(epochs).as_bytes())?;
    write_atomic(
        &dir.join("metrics.json"),
        &serde_json::to_vec_pretty(epochs)?,
    )?;
    write_atomic(&dir.join("final.json"), &serde_json::to_vec_pretty(report)?)?;
    let series = |name: &str, f: &dyn Fn(&EpochMetrics) -> Option<f64>| Series {
        name: name.to_string(),
        points: epochs
            .iter()
            .filter_map(|e| f(e).map(|v| (e.epoch as f64, v)))
            .collect(),
    };
    let loss = [
        series("train (mixed)", &|e| Some(e.train_loss)),
        series("dev", &|e| e.dev_loss),
        series("test", &|e| Some(e.test_loss)),
    ];
    let acc = [
        series("train (dominant label)", &|e| Some(e.train_acc_dominant)),
        series("dev", &|e| e.dev_acc),
        series("test", &|e| Some(e.test_acc)),
    ];
    let title = format!("{} ({}, seed {})", recipe.name, report.method, report.seed);
    plot_training(&dir.join("curves.png"), &title, &loss, &acc)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// Everything [`train_recipe`] needs.
pub struct RecipeRun<'a> {
    /// The recipe, overrides applied and validated.
    pub recipe: &'a Recipe,
    /// Where the recipe came from (for messages).
    pub recipe_path: &'a Path,
    /// The (non-autodiff) device to train on.
    pub device: Device,
    /// The device's name, for the report.
    pub device_name: String,
    /// `--data-dir`, if given.
    pub data_dir: Option<&'a Path>,
    /// The run folder to write.
    pub out: &'a Path,
    /// Report progress every this many steps.
    pub log_every: usize,
}

/// The default run folder of a recipe: `runs/<name>-<method>-seed<seed>`.
pub fn default_run_dir(recipe: &Recipe) -> PathBuf {
    PathBuf::from("runs").join(format!(
        "{}-{}-seed{}",
        recipe.name, recipe.method.kind, recipe.train.seed
    ))
}

/// Finds (or fetches) the recipe's data, trains it and writes the run folder; `say` receives
/// one-line notes for the user (dataset fetched, what is being trained), `on_event` the
/// progress.
///
/// # Errors
///
/// Missing data, a run folder that cannot be written (checked before training), a method the
/// model cannot run, divergence, or a file that cannot be saved.
pub fn train_recipe(
    run: &RecipeRun<'_>,
    say: &mut dyn FnMut(&str),
    on_event: &mut dyn FnMut(&Event),
) -> anyhow::Result<FinalMetrics> {
    let recipe = run.recipe;
    let cache = fetch::default_cache_dir();
    let dir = resolve_dataset(&recipe.data.dataset, run.data_dir, &cache, |name, cache| {
        say(&format!(
            "dataset {name} not found locally: fetching it into {}",
            cache.display()
        ));
    })?;
    let data = load_encoded(&dir, recipe)?;
    let out = run.out;
    // Fail now, not after the whole run, when the run folder cannot be written.
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the run folder {}", out.display()))?;
    let probe = out.join(".write-test");
    std::fs::write(&probe, b"")
        .with_context(|| format!("cannot write into the run folder {}", out.display()))?;
    let _ = std::fs::remove_file(&probe);
    say(&format!(
        "training {} ({}, method {}, seed {}) on {}: {} train / {} test examples, vocab {}, {} \
         classes, data {}",
        recipe.name,
        run.recipe_path.display(),
        recipe.method.kind,
        recipe.train.seed,
        run.device_name,
        data.train.len(),
        data.test.len(),
        data.tokenizer.vocab_size(),
        data.labels.len(),
        dir.display()
    ));
    let (vocab, classes) = (data.tokenizer.vocab_size(), data.labels.len());
    let setup = TrainSetup {
        recipe,
        data: &data,
        device: run.device.clone(),
        device_name: run.device_name.clone(),
        log_every: run.log_every,
    };
    let trained = train(|d| build_model(recipe, vocab, classes, d), &setup, on_event)?;
    save_run(
        out,
        recipe,
        &data.tokenizer,
        &data.labels,
        trained.model,
        &trained.epochs,
        &trained.report,
    )?;
    Ok(trained.report)
}

/// A finished run loaded back for evaluation or prediction.
pub struct LoadedRun {
    /// The run folder.
    pub dir: PathBuf,
    /// Its resolved recipe.
    pub recipe: Recipe,
    /// Its vocabulary.
    pub tokenizer: WordTokenizer,
    /// Its labels.
    pub labels: LabelSet,
    /// The trained model, in evaluation mode.
    pub model: ZooModel,
}

/// Loads a run folder onto `device`.
///
/// # Errors
///
/// A missing or malformed file, or a checkpoint that does not fit the recipe's model, named.
pub fn load_run(dir: &Path, device: &Device) -> anyhow::Result<LoadedRun> {
    if !dir.is_dir() {
        anyhow::bail!("{}: no such run folder", dir.display());
    }
    let recipe = Recipe::load(&dir.join("recipe.toml"))?;
    let read = |name: &str| -> anyhow::Result<Vec<u8>> {
        let p = dir.join(name);
        std::fs::read(&p).with_context(|| format!("reading {}", p.display()))
    };
    let tokenizer: WordTokenizer =
        serde_json::from_slice(&read("tokenizer.json")?).with_context(|| {
            format!(
                "{}: malformed tokenizer",
                dir.join("tokenizer.json").display()
            )
        })?;
    let labels: LabelSet = serde_json::from_slice(&read("labels.json")?)
        .with_context(|| format!("{}: malformed labels", dir.join("labels.json").display()))?;
    if labels.is_empty() {
        anyhow::bail!("{}: no labels", dir.join("labels.json").display());
    }
    let model_path = dir.join("model.bpk");
    let record = ModuleRecord::load(&model_path).map_err(|e| {
        anyhow::anyhow!(
            "{}: cannot read the checkpoint: {e:?}",
            model_path.display()
        )
    })?;
    let model = build_model(&recipe, tokenizer.vocab_size(), labels.len(), device)
        .try_load_record(record)
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: the checkpoint does not match the model of {} (vocab {}, {} classes): {e:?}",
                model_path.display(),
                dir.join("recipe.toml").display(),
                tokenizer.vocab_size(),
                labels.len()
            )
        })?
        .valid();
    Ok(LoadedRun {
        dir: dir.to_path_buf(),
        recipe,
        tokenizer,
        labels,
        model,
    })
}
