//! Run folders: what a training run leaves behind, and loading it back for eval and predict.
//!
//! ```text
//! <run>/recipe.toml      the resolved recipe (method and seed as run)
//! <run>/tokenizer.json   the word vocabulary (word-level models)
//! <run>/wordpiece/       the WordPiece tokenizer file, tokenizer.json or vocab.txt (bert)
//! <run>/bert-config.json the encoder's config.json (bert)
//! <run>/labels.json      the class names, by index
//! <run>/model.bpk        the model parameters (Burn record; for bert, all of them: encoder
//!                        and head, so the pretrained folder is not needed to load the run)
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
use mixup_data::{LabelSet, WordPieceTokenizer, WordTokenizer};
use mixup_models::{
    BertClassifier, BertConfig, BertEncoder, BiLstmClassifier, BiLstmClassifierConfig,
    MixingPoints, TextCnn, TextCnnConfig, TransformerClassifier, TransformerClassifierConfig,
};

use mixup_train::{
    TrainError, checkpoint,
    train::{EpochMetrics, Event, FinalMetrics, TrainSetup, train},
};

use crate::{
    data::{TextTokenizer, load_encoded, load_encoded_with, resolve_dataset, resolve_pretrained},
    fetch,
    plot::{Series, plot_training},
    recipe::{
        Activation, BertSection, BiLstmSection, EncoderPooling, LstmPooling, ModelSection, Norm,
        Recipe, TransformerSection,
    },
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
    /// A BERT-family encoder with a linear head.
    Bert(BertClassifier),
}

impl MixingPoints for ZooModel {
    fn points(&self) -> Vec<PointKind> {
        match self {
            Self::TextCnn(m) => m.points(),
            Self::BiLstm(m) => m.points(),
            Self::Transformer(m) => m.points(),
            Self::Bert(m) => m.points(),
        }
    }

    fn embed(&self, ids: Tensor<2, Int>, mask: Tensor<2, Bool>) -> MixState {
        match self {
            Self::TextCnn(m) => m.embed(ids, mask),
            Self::BiLstm(m) => m.embed(ids, mask),
            Self::Transformer(m) => m.embed(ids, mask),
            Self::Bert(m) => m.embed(ids, mask),
        }
    }

    fn advance(&self, state: MixState, point: usize) -> MixState {
        match self {
            Self::TextCnn(m) => m.advance(state, point),
            Self::BiLstm(m) => m.advance(state, point),
            Self::Transformer(m) => m.advance(state, point),
            Self::Bert(m) => m.advance(state, point),
        }
    }

    fn head(&self, pooled: Tensor<2>) -> Tensor<2> {
        match self {
            Self::TextCnn(m) => m.head(pooled),
            Self::BiLstm(m) => m.head(pooled),
            Self::Transformer(m) => m.head(pooled),
            Self::Bert(m) => m.head(pooled),
        }
    }
}

/// Builds the recipe's model, freshly initialised, for a vocabulary and label set.
///
/// # Errors
///
/// For `kind = "bert"`, which is built from a checkpoint ([`bert_classifier`]).
pub fn build_model(
    recipe: &Recipe,
    vocab_size: usize,
    num_classes: usize,
    device: &Device,
) -> anyhow::Result<ZooModel> {
    Ok(match &recipe.model {
        ModelSection::Bert(_) => anyhow::bail!(
            "model.kind = \"bert\" is built from a checkpoint's encoder (bert_classifier), \
             not from a vocabulary size"
        ),
        ModelSection::Textcnn(m) => ZooModel::TextCnn(
            TextCnnConfig::new(vocab_size, num_classes)
                .with_d_embed(m.d_embed)
                .with_n_filters(m.n_filters)
                .with_widths(m.widths.clone())
                .with_dropout(m.dropout)
                .init(device),
        ),
        ModelSection::Bilstm(m) => {
            ZooModel::BiLstm(bilstm_config(m, vocab_size, num_classes).init(device))
        }
        ModelSection::Transformer(m) => ZooModel::Transformer(
            // One more position for [CLS].
            transformer_config(m, vocab_size, num_classes, recipe.data.max_len + 1).init(device),
        ),
    })
}

/// The BiLSTM of a `[model]` section (the classifier's, and the tagger's encoder).
pub fn bilstm_config(
    m: &BiLstmSection,
    vocab_size: usize,
    num_classes: usize,
) -> BiLstmClassifierConfig {
    BiLstmClassifierConfig::new(vocab_size, num_classes)
        .with_d_embed(m.d_embed)
        .with_d_hidden(m.d_hidden)
        .with_n_layers(m.n_layers)
        .with_mean_pooling(m.pooling == LstmPooling::Mean)
        .with_dropout(m.dropout)
}

/// The Transformer of a `[model]` section with `max_positions` positions (the classifier's,
/// and the tagger's encoder).
pub fn transformer_config(
    m: &TransformerSection,
    vocab_size: usize,
    num_classes: usize,
    max_positions: usize,
) -> TransformerClassifierConfig {
    TransformerClassifierConfig::new(vocab_size, num_classes)
        .with_d_model(m.d_model)
        .with_n_heads(m.n_heads)
        .with_n_layers(m.n_layers)
        .with_d_ff(m.d_ff)
        .with_dropout(m.dropout)
        .with_max_positions(max_positions)
        .with_pre_norm(m.norm == Norm::Pre)
        .with_cls_pooling(m.pooling == EncoderPooling::Cls)
        .with_activation(match m.activation {
            Activation::Gelu => ActivationConfig::Gelu,
            Activation::Relu => ActivationConfig::Relu,
        })
}

/// The classifier of a `kind = "bert"` recipe on `encoder`: a fresh head for `num_classes`
/// classes with `model.dropout`; the pooler kept and used with `model.pooler = true` (the
/// checkpoint must have one), dropped otherwise. With `freeze`, the embeddings and the first
/// `model.freeze_layers` encoder layers stop requiring gradients, so no step updates them.
/// With `sep_id` (the tokenizer's `[SEP]`), the second text of a pair gets token type 1.
///
/// # Errors
///
/// `model.pooler = true` on an encoder without a pooler, or `model.freeze_layers` above the
/// number of encoder layers.
pub fn bert_classifier(
    m: &BertSection,
    encoder: BertEncoder,
    num_classes: usize,
    device: &Device,
    freeze: bool,
    sep_id: Option<u32>,
) -> anyhow::Result<BertClassifier> {
    let mut encoder = match (m.pooler, encoder.pooler.is_some()) {
        (true, false) => anyhow::bail!(
            "model.pooler = true: the checkpoint has no pooler (no pooler.dense.* tensors); \
             use pooler = false to classify from the final [CLS] state"
        ),
        (true, true) => encoder,
        (false, _) => encoder.without_pooler(),
    };
    let n_layers = encoder.layers.len();
    if m.freeze_layers > n_layers {
        anyhow::bail!(
            "model.freeze_layers = {}: the encoder has only {n_layers} layers",
            m.freeze_layers
        );
    }
    if freeze && m.freeze_layers > 0 {
        encoder.embeddings = encoder.embeddings.no_grad();
        encoder.layers = encoder
            .layers
            .into_iter()
            .enumerate()
            .map(|(i, layer)| {
                if i < m.freeze_layers {
                    layer.no_grad()
                } else {
                    layer
                }
            })
            .collect();
    }
    let model = BertClassifier::new(encoder, num_classes, m.dropout, device).with_pooler(m.pooler);
    Ok(match sep_id {
        Some(sep) => model.with_segments(sep),
        None => model,
    })
}

/// A `kind = "bert"` recipe's checkpoint, found and checked before any data is read.
pub struct PreparedBert {
    /// The checkpoint folder.
    pub dir: PathBuf,
    /// Its `config.json`.
    pub config: BertConfig,
    /// Its WordPiece tokenizer.
    pub tokenizer: WordPieceTokenizer,
}

/// Finds the checkpoint of `m` (see [`resolve_pretrained`]), reads its config and tokenizer,
/// and checks them against the recipe.
///
/// # Errors
///
/// A missing folder (listing where it looked), an unreadable config or tokenizer (naming the
/// file), `model.freeze_layers` above the number of layers, `data.max_len` above the
/// position table, a tokenizer whose padding id is not 0 or whose ids do not fit the
/// embedding table.
pub fn prepare_bert(
    m: &BertSection,
    recipe: &Recipe,
    data_dir: Option<&Path>,
    cache_dir: &Path,
) -> anyhow::Result<PreparedBert> {
    let dir = resolve_pretrained(&m.pretrained, data_dir, cache_dir)?;
    let config_path = dir.join("config.json");
    let config = BertConfig::from_json_file(&config_path)?;
    if m.freeze_layers > config.num_hidden_layers {
        anyhow::bail!(
            "model.freeze_layers = {}: more than the {} encoder layers of {}",
            m.freeze_layers,
            config.num_hidden_layers,
            config_path.display()
        );
    }
    if recipe.data.max_len > config.max_position_embeddings {
        anyhow::bail!(
            "data.max_len = {}: more than the {} positions of {} (max_position_embeddings)",
            recipe.data.max_len,
            config.max_position_embeddings,
            config_path.display()
        );
    }
    let tokenizer = WordPieceTokenizer::from_dir(&dir)?;
    if tokenizer.pad_id() != 0 {
        anyhow::bail!(
            "{}: the padding token has id {}; batches pad with id 0, so only tokenizers whose \
             [PAD] is 0 are supported",
            tokenizer.source().display(),
            tokenizer.pad_id()
        );
    }
    if tokenizer.vocab_size() > config.vocab_size {
        anyhow::bail!(
            "{}: {} token ids, more than the {} rows of the embedding table of {}",
            tokenizer.source().display(),
            tokenizer.vocab_size(),
            config.vocab_size,
            config_path.display()
        );
    }
    Ok(PreparedBert {
        dir,
        config,
        tokenizer,
    })
}

pub use mixup_train::write_atomic;

/// Writes a module's record (burnpack bytes) atomically to `path` (see [`write_atomic`]).
///
/// # Errors
///
/// A record the backend cannot serialise, or a file that cannot be written, named.
pub fn save_record<M: Module>(model: M, path: &Path) -> anyhow::Result<()> {
    let bytes = model
        .into_record()
        .into_bytes()
        .map_err(|e| anyhow::anyhow!("serialising the model for {}: {e:?}", path.display()))?;
    write_atomic(path, &bytes)?;
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
            "{},{},{:.6},{:.6},{},{},{},{},{:.3},{:.1}\n",
            e.epoch,
            e.mixing,
            e.train_loss,
            e.train_acc_dominant,
            opt(e.dev_loss),
            opt(e.dev_acc),
            opt(e.test_loss),
            opt(e.test_acc),
            e.train_seconds,
            e.samples_per_s
        ));
    }
    s
}

/// A library error in the recipe's words: a config key becomes the recipe key (in `path`), a
/// diverged run learns how to continue.
pub fn explain(e: TrainError, path: &Path) -> anyhow::Error {
    match e {
        TrainError::Config { key, reason } => {
            anyhow::anyhow!("{}: {}: {reason}", path.display(), Recipe::key_of(&key))
        }
        TrainError::Method(m) => anyhow::anyhow!("{}: {m}", path.display()),
        e @ TrainError::Diverged { .. } => anyhow::anyhow!(
            "{e} (train.lr in {}; `mixup train --resume RUN_DIR` continues from the last \
             checkpoint)",
            path.display()
        ),
        other => anyhow::Error::new(other),
    }
}

/// Saves everything a finished run leaves behind into `dir` (the resolved `recipe.toml` is
/// written before training, by [`train_recipe`]): for a word tokenizer its
/// vocabulary (`tokenizer.json`); for WordPiece its file (`wordpiece/tokenizer.json` or
/// `wordpiece/vocab.txt`), and the encoder's config (`bert-config.json`) when given.
///
/// # Errors
///
/// Any file that cannot be read or written, named.
#[allow(clippy::too_many_arguments)]
pub fn save_run(
    dir: &Path,
    recipe: &Recipe,
    tokenizer: &TextTokenizer,
    bert_config: Option<&BertConfig>,
    labels: &LabelSet,
    model: ZooModel,
    epochs: &[EpochMetrics],
    report: &FinalMetrics,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    match tokenizer {
        TextTokenizer::Word(t) => {
            write_atomic(&dir.join("tokenizer.json"), &serde_json::to_vec(t)?)?;
        }
        TextTokenizer::WordPiece(t) => save_wordpiece(dir, t, bert_config)?,
    }
    write_atomic(
        &dir.join("labels.json"),
        &serde_json::to_vec_pretty(labels)?,
    )?;
    save_record(model, &dir.join("model.bpk"))?;
    write_atomic(&dir.join("metrics.csv"), metrics_csv(epochs).as_bytes())?;
    write_atomic(
        &dir.join("metrics.json"),
        &serde_json::to_vec_pretty(epochs)?,
    )?;
    write_atomic(&dir.join("final.json"), &serde_json::to_vec_pretty(report)?)?;
    let series = |name: &str, f: &dyn Fn(&EpochMetrics) -> Option<f64>| {
        Series::new(
            name,
            epochs
                .iter()
                .filter_map(|e| f(e).map(|v| (e.epoch as f64, v)))
                .collect(),
        )
    };
    let loss = [
        series("train (mixed)", &|e| Some(e.train_loss)),
        series("dev", &|e| e.dev_loss),
        series("test", &|e| e.test_loss),
    ];
    let acc = [
        series("train (dominant label)", &|e| Some(e.train_acc_dominant)),
        series("dev", &|e| e.dev_acc),
        series("test", &|e| e.test_acc),
    ];
    let title = format!("{} ({}, seed {})", recipe.name, report.method, report.seed);
    plot_training(&dir.join("curves.png"), &title, &loss, &acc)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// Copies a WordPiece tokenizer's file into `dir/wordpiece/` and, when given, writes the
/// encoder's config (`bert-config.json`), so that the run loads without its checkpoint.
///
/// # Errors
///
/// A file that cannot be read or written, named.
pub fn save_wordpiece(
    dir: &Path,
    tokenizer: &WordPieceTokenizer,
    bert_config: Option<&BertConfig>,
) -> anyhow::Result<()> {
    let source = tokenizer.source();
    let name = source
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("{}: not a tokenizer file name", source.display()))?;
    let bytes = std::fs::read(source).with_context(|| format!("reading {}", source.display()))?;
    let sub = dir.join(WORDPIECE_DIR);
    std::fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
    write_atomic(&sub.join(name), &bytes)?;
    if let Some(config) = bert_config {
        write_atomic(&dir.join(BERT_CONFIG), &serde_json::to_vec_pretty(config)?)?;
    }
    Ok(())
}

/// The run-folder subfolder holding a WordPiece tokenizer's file.
pub const WORDPIECE_DIR: &str = "wordpiece";

/// The run-folder file holding a BERT encoder's config.
pub const BERT_CONFIG: &str = "bert-config.json";

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
    /// More devices for data-parallel training (see [`TrainSetup::replicas`]); usually empty.
    pub replicas: Vec<Device>,
    /// `--data-dir`, if given.
    pub data_dir: Option<&'a Path>,
    /// The run folder to write.
    pub out: &'a Path,
    /// Report progress every this many steps.
    pub log_every: usize,
    /// Continue from the newest usable checkpoint in `out`, when there is one.
    pub resume: bool,
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
    let bert = match &recipe.model {
        ModelSection::Bert(m) => Some((
            m,
            prepare_bert(m, recipe, run.data_dir, &cache)
                .with_context(|| run.recipe_path.display().to_string())?,
        )),
        _ => None,
    };
    let init = match &recipe.train.init_from {
        Some(from) => Some(InitFrom::load(from, recipe)?),
        None => None,
    };
    let data = match &init {
        // The finished run's vocabulary and labels, so that its weights mean the same ids.
        Some(init) => load_encoded_with(
            &dir,
            &recipe.data,
            init.tokenizer.clone(),
            init.labels.clone(),
        )?,
        None => load_encoded(
            &dir,
            recipe,
            bert.as_ref().map(|(_, b)| b.tokenizer.clone()),
        )?,
    };
    if let Some(init) = &init {
        say(&format!(
            "starting from the weights of {} ({})",
            init.dir.display(),
            init.recipe.name
        ));
    }
    let out = run.out;
    // Fail now, not after the whole run, when the run folder cannot be written.
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the run folder {}", out.display()))?;
    let probe = out.join(".write-test");
    std::fs::write(&probe, b"")
        .with_context(|| format!("cannot write into the run folder {}", out.display()))?;
    let _ = std::fs::remove_file(&probe);
    // The resolved recipe goes in first, so that `mixup train --resume` finds it.
    let mut resolved = recipe.clone();
    resolved.results = None;
    write_atomic(&out.join("recipe.toml"), resolved.to_toml()?.as_bytes())?;
    let resume = if run.resume {
        match checkpoint::latest(out, &mut |w| say(w)) {
            Some((path, ck)) => {
                say(&format!(
                    "resuming from {} (epoch {}, batch {} of it, step {})",
                    path.display(),
                    ck.state.epoch,
                    ck.state.next_step,
                    ck.state.global_step
                ));
                Some(ck)
            }
            None => None,
        }
    } else {
        checkpoint::remove_all(out);
        None
    };
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
    if data.unlabelled_texts > 0 {
        say(&format!(
            "{} unlabelled texts{}",
            data.unlabelled_texts,
            match data.unlabelled.first() {
                Some(u) => format!(", each with {} augmentations (MixText)", u.views.len() - 1),
                None => " (words in the vocabulary; not trained on by this method)".into(),
            }
        ));
    }
    let (vocab, classes) = (data.tokenizer.vocab_size(), data.labels.len());
    let sep_id = data.tokenizer.bert_sep_id();
    let config = recipe.train_config(run.log_every);
    let setup = TrainSetup {
        config: &config,
        name: &recipe.name,
        data: data.text_data(),
        device: run.device.clone(),
        device_name: run.device_name.clone(),
        replicas: run.replicas.clone(),
        checkpoint_dir: Some(out),
        resume,
    };
    let build = |d: &Device| -> anyhow::Result<ZooModel> {
        let model = match &bert {
            Some((m, b)) => {
                let (encoder, _) = BertEncoder::from_pretrained(&b.dir, d)?;
                ZooModel::Bert(bert_classifier(m, encoder, classes, d, true, sep_id)?)
            }
            None => build_model(recipe, vocab, classes, d)?,
        };
        match &init {
            Some(init) => load_weights(model, &init.dir, &init.recipe, vocab, classes),
            None => Ok(model),
        }
    };
    let build = |d: &Device| build(d).map_err(|e| TrainError::Model(format!("{e:#}")));
    let trained = train(build, &setup, on_event).map_err(|e| explain(e, run.recipe_path))?;
    save_run(
        out,
        recipe,
        &data.tokenizer,
        bert.as_ref().map(|(_, b)| &b.config),
        &data.labels,
        trained.model,
        &trained.epochs,
        &trained.report,
    )?;
    checkpoint::remove_all(out);
    Ok(trained.report)
}

/// A finished run loaded back for evaluation or prediction.
pub struct LoadedRun {
    /// The run folder.
    pub dir: PathBuf,
    /// Its resolved recipe.
    pub recipe: Recipe,
    /// Its tokenizer.
    pub tokenizer: TextTokenizer,
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
    let (recipe, tokenizer, labels) = load_run_vocabulary(dir)?;
    let model = match (&recipe.model, &tokenizer) {
        (ModelSection::Bert(m), TextTokenizer::WordPiece(wp)) => {
            let config = BertConfig::from_json_file(dir.join(BERT_CONFIG))?;
            let encoder = config.init(device);
            let model = bert_classifier(m, encoder, labels.len(), device, false, Some(wp.sep_id()))
                .with_context(|| dir.join(BERT_CONFIG).display().to_string())?;
            ZooModel::Bert(model)
        }
        _ => build_model(&recipe, tokenizer.vocab_size(), labels.len(), device)?,
    };
    let model = load_weights(model, dir, &recipe, tokenizer.vocab_size(), labels.len())?.valid();
    Ok(LoadedRun {
        dir: dir.to_path_buf(),
        recipe,
        tokenizer,
        labels,
        model,
    })
}

/// A finished run's resolved recipe, tokenizer (its word vocabulary, or the WordPiece
/// tokenizer it keeps) and labels: what encoding new data for its model needs.
///
/// # Errors
///
/// A missing folder or file, or one that does not parse, named.
pub fn load_run_vocabulary(dir: &Path) -> anyhow::Result<(Recipe, TextTokenizer, LabelSet)> {
    if !dir.is_dir() {
        anyhow::bail!("{}: no such run folder", dir.display());
    }
    let recipe = Recipe::load(&dir.join("recipe.toml"))?;
    let read = |name: &str| -> anyhow::Result<Vec<u8>> {
        let p = dir.join(name);
        std::fs::read(&p).with_context(|| format!("reading {}", p.display()))
    };
    let labels: LabelSet = serde_json::from_slice(&read("labels.json")?)
        .with_context(|| format!("{}: malformed labels", dir.join("labels.json").display()))?;
    if labels.is_empty() {
        anyhow::bail!("{}: no labels", dir.join("labels.json").display());
    }
    let tokenizer = match &recipe.model {
        ModelSection::Bert(_) => {
            let sub = dir.join(WORDPIECE_DIR);
            if !sub.is_dir() {
                anyhow::bail!(
                    "{}: missing (a bert run keeps its WordPiece tokenizer there)",
                    sub.display()
                );
            }
            TextTokenizer::WordPiece(Box::new(WordPieceTokenizer::from_dir(&sub)?))
        }
        _ => {
            let tokenizer: WordTokenizer = serde_json::from_slice(&read("tokenizer.json")?)
                .with_context(|| {
                    format!(
                        "{}: malformed tokenizer",
                        dir.join("tokenizer.json").display()
                    )
                })?;
            TextTokenizer::Word(tokenizer)
        }
    };
    Ok((recipe, tokenizer, labels))
}

/// `model` with the weights of the run in `dir` (its `model.bpk`).
///
/// # Errors
///
/// An unreadable checkpoint, or one that does not fit `model`, named with the run's recipe.
fn load_weights(
    model: ZooModel,
    dir: &Path,
    recipe: &Recipe,
    vocab: usize,
    classes: usize,
) -> anyhow::Result<ZooModel> {
    let model_path = dir.join("model.bpk");
    let record = ModuleRecord::load(&model_path).map_err(|e| {
        anyhow::anyhow!(
            "{}: cannot read the checkpoint: {e:?}",
            model_path.display()
        )
    })?;
    model.try_load_record(record).map_err(|e| {
        anyhow::anyhow!(
            "{}: the checkpoint does not match the model of {} ({}, vocab {vocab}, {classes} \
             classes): {e:?}",
            model_path.display(),
            dir.join("recipe.toml").display(),
            recipe.name,
        )
    })
}

/// What `train.init_from` gives a run: the finished run's folder, recipe, tokenizer and
/// labels.
struct InitFrom {
    dir: PathBuf,
    recipe: Recipe,
    tokenizer: TextTokenizer,
    labels: LabelSet,
}

impl InitFrom {
    /// The run in `dir`, checked against `recipe`: its `[model]` must be the same.
    fn load(dir: &Path, recipe: &Recipe) -> anyhow::Result<Self> {
        let (from, tokenizer, labels) = load_run_vocabulary(dir)
            .with_context(|| format!("train.init_from = {:?}", dir.display().to_string()))?;
        if from.model != recipe.model {
            let show =
                |r: &Recipe| toml::to_string(&r.model).unwrap_or_else(|_| format!("{:?}", r.model));
            anyhow::bail!(
                "train.init_from = {:?}: that run's [model] differs from this recipe's, so its \
                 weights do not fit.\nThe run's:\n{}\nThis recipe's:\n{}",
                dir.display().to_string(),
                show(&from),
                show(recipe)
            );
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            recipe: from,
            tokenizer,
            labels,
        })
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Tensor;
    use mixup_core::Layout;
    use mixup_data::EncodedExample;
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;
    use mixup_train::{
        optim::build_optimizer,
        step::{StepBatch, StepPlan, train_step},
    };

    fn bert_recipe(extra: &str) -> Recipe {
        let text = format!(
            "name = \"b\"\n[data]\ndataset = \"d\"\nmax_len = 8\n[model]\nkind = \"bert\"\n\
             pretrained = \"tiny\"\n{extra}\n[train]\nlr = 0.05\n"
        );
        Recipe::parse(&text, Path::new("b.toml")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn tiny_encoder(device: &Device) -> BertEncoder {
        device.seed(0);
        BertConfig {
            max_position_embeddings: 8,
            hidden_dropout_prob: 0.0,
            attention_probs_dropout_prob: 0.0,
            ..BertConfig::new(12, 8, 2, 2, 16)
        }
        .init(device)
    }

    fn flat<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_to_vec()
            .unwrap_or_else(|e| panic!("{e:?}"))
    }

    /// Every parameter tensor of a model, by its path.
    fn snapshot(model: &BertClassifier) -> Vec<(&'static str, Vec<f32>)> {
        let e = &model.encoder;
        vec![
            ("embeddings.word", flat(e.embeddings.word.weight.val())),
            ("embeddings.norm", flat(e.embeddings.norm.gamma.val())),
            (
                "layer0.query",
                flat(e.layers[0].attention.query.weight.val()),
            ),
            ("layer0.output", flat(e.layers[0].output.weight.val())),
            (
                "layer1.query",
                flat(e.layers[1].attention.query.weight.val()),
            ),
            ("layer1.output", flat(e.layers[1].output.weight.val())),
            ("head", flat(model.head.weight.val())),
        ]
    }

    #[test]
    fn frozen_layers_stay_unchanged_by_a_step_and_the_rest_trains() {
        let ad = Device::flex().autodiff();
        let recipe = bert_recipe("freeze_layers = 1");
        let ModelSection::Bert(m) = &recipe.model else {
            panic!("bert recipe")
        };
        let model = bert_classifier(m, tiny_encoder(&ad), 3, &ad, true, None)
            .unwrap_or_else(|e| panic!("{e}"));
        let before = snapshot(&model);
        let plan = StepPlan::new(&recipe.step_config(), &model.points(), 3, Layout::BERT)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut optim = build_optimizer(&recipe.optim_config(), &model);
        let rows = [
            EncodedExample {
                ids: vec![2, 5, 6, 7, 3],
                label: 0,
            },
            EncodedExample {
                ids: vec![2, 8, 9, 3],
                label: 1,
            },
            EncodedExample {
                ids: vec![2, 10, 11, 4, 5, 3],
                label: 2,
            },
        ];
        let items: Vec<&EncodedExample> = rows.iter().collect();
        let batch = StepBatch {
            items: &items,
            partner_items: None,
            mixing: false,
            unlabelled: None,
        };
        let mut rng = StdRng::seed_from_u64(0);
        let (model, _) = train_step(model, &mut optim, 0.05, &plan, &batch, &mut rng, &ad)
            .unwrap_or_else(|e| panic!("{e}"));
        for ((name, a), (_, b)) in before.iter().zip(snapshot(&model)) {
            let frozen = name.starts_with("embeddings") || name.starts_with("layer0");
            if frozen {
                assert_eq!(a, &b, "{name} is frozen but changed");
            } else {
                assert_ne!(a, &b, "{name} should have trained");
            }
        }
    }

    #[test]
    fn bert_settings_are_checked_against_the_encoder() {
        let ad = Device::flex().autodiff();
        let recipe = bert_recipe("freeze_layers = 3");
        let ModelSection::Bert(m) = &recipe.model else {
            panic!("bert recipe")
        };
        let e =
            bert_classifier(m, tiny_encoder(&ad), 3, &ad, true, None).expect_err("3 of 2 layers");
        assert!(e.to_string().contains("model.freeze_layers = 3"), "{e}");
        let recipe = bert_recipe("pooler = true");
        let ModelSection::Bert(m) = &recipe.model else {
            panic!("bert recipe")
        };
        let e = bert_classifier(m, tiny_encoder(&ad).without_pooler(), 3, &ad, false, None)
            .expect_err("no pooler");
        assert!(e.to_string().contains("model.pooler"), "{e}");
        // pooler = false drops the checkpoint's pooler; true keeps and uses it.
        let with = bert_classifier(m, tiny_encoder(&ad), 3, &ad, false, None).expect("pooler");
        assert!(with.use_pooler && with.encoder.pooler.is_some());
        let recipe = bert_recipe("");
        let ModelSection::Bert(m) = &recipe.model else {
            panic!("bert recipe")
        };
        let without =
            bert_classifier(m, tiny_encoder(&ad), 3, &ad, false, None).expect("no pooler");
        assert!(!without.use_pooler && without.encoder.pooler.is_none());
        assert!(build_model(&recipe, 12, 3, &ad).is_err());
    }
}
