//! A zoo model trained with wordMixup on TREC through burn-train's `Learner`: the data is
//! read and tokenized with `mixup-data`, the model is `mixup-models`' TextCNN, and the step is
//! `mixup-train`'s, wrapped by its `learner` adapter ([`mixup_train::learner::Mixup`]). Burn
//! does the rest: data loaders, epochs, metrics, checkpoints.
//!
//! ```text
//! cargo run --release -p learner -- [--epochs N] [--limit N] [--out DIR]
//! ```
//!
//! TREC is read from `$MIXUP_DATA_DIR/trec` (default `../shared/data/trec`); `mixup data
//! fetch trec` downloads it into the cache (`~/.cache/mixup-zoo/trec`), which works too:
//! `MIXUP_DATA_DIR=~/.cache/mixup-zoo`. `--limit` trains on the first N training examples.

use std::{path::PathBuf, process::ExitCode};

use burn::{
    data::{dataloader::DataLoaderBuilder, dataset::InMemDataset},
    optim::lr_scheduler::constant::ConstantLr,
    tensor::Device,
    train::{
        Learner, SupervisedTraining,
        logger::{EvaluationProgressLogger, TrainingProgressLogger},
        metric::{AccuracyMetric, LossMetric, MetricDefinition},
        renderer::{
            EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
            MetricsRendererTraining,
        },
    },
};
use mixup_core::{Layout, MixMethod};
use mixup_data::{EncodedExample, LabelSet, Splits, WordTokenizerConfig};
use mixup_models::TextCnnConfig;
use mixup_train::{
    OptimConfig, StepConfig,
    learner::{Mixup, MixupBatcher},
    optim::build_optimizer,
    train::evaluate,
};

/// The command line.
struct Args {
    epochs: usize,
    limit: Option<usize>,
    out: PathBuf,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        epochs: 10,
        limit: None,
        out: PathBuf::from("runs/learner-textcnn-trec-word"),
    };
    let mut it = std::env::args_os().skip(1);
    while let Some(flag) = it.next() {
        let flag = flag.to_string_lossy().into_owned();
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .to_string_lossy()
                .parse::<usize>()
                .map_err(|e| format!("{flag} {}: {e}", value.to_string_lossy()))
        };
        match flag.as_str() {
            "--epochs" => a.epochs = number()?.max(1),
            "--limit" => a.limit = Some(number()?),
            "--out" => a.out = PathBuf::from(&value),
            other => return Err(format!("unknown flag {other} (--epochs, --limit, --out)")),
        }
    }
    Ok(a)
}

/// A renderer that prints one line per finished split (burn-train's own CLI renderer prints
/// every batch; its TUI dashboard is the `tui` feature of burn) and, at the end, Burn's
/// summary table of every metric.
#[derive(Default)]
struct EpochLines {
    epoch: usize,
    epochs: usize,
    split: String,
}

impl MetricsRendererTraining for EpochLines {
    fn update_train(&mut self, _state: MetricState) {}
    fn update_valid(&mut self, _state: MetricState) {}
}

impl MetricsRendererEvaluation for EpochLines {
    fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}
}

impl TrainingProgressLogger for EpochLines {
    fn start(&mut self, epochs: usize, first: usize, _: Option<usize>, _: Option<&str>) {
        (self.epochs, self.epoch) = (epochs, first.max(1));
    }
    fn update_epoch(&mut self, epoch: usize) {
        self.epoch = epoch + 1;
    }
    fn start_split(&mut self, split: &str, _total_items: usize) {
        self.split = split.to_string();
    }
    fn update_split(&mut self, _items_processed: usize) {}
    fn end_split(&mut self) {
        println!(
            "epoch {}/{}: {} done",
            self.epoch.min(self.epochs),
            self.epochs,
            self.split
        );
    }
    fn end(&mut self) {}
    fn log_event_training(&mut self, _event: String) {}
}

impl EvaluationProgressLogger for EpochLines {
    fn start_global_progress(&mut self, _total_tests: usize) {}
    fn start_test(&mut self, _name: &str, _total_items: usize) {}
    fn update_test_progress(&mut self, _items_processed: usize) {}
    fn end_test(&mut self) {}
    fn end_global_progress(&mut self) {}
    fn log_event_evaluation(&mut self, _event: String) {}
}

impl MetricsRenderer for EpochLines {
    fn manual_close(&mut self) {}
    fn register_metric(&mut self, _definition: MetricDefinition) {}
}

fn run() -> Result<(), String> {
    let args = args()?;
    let root = std::env::var_os("MIXUP_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data"));
    let dir = root.join("trec");
    let splits = Splits::load(&dir).map_err(|e| {
        format!("{e} (set MIXUP_DATA_DIR to the folder holding trec/, or `mixup data fetch trec`)")
    })?;
    let mut train = splits.train.1.clone();
    if let Some(n) = args.limit {
        train.truncate(n);
    }
    let max_len = 40;
    let tokenizer = WordTokenizerConfig {
        lowercase: true,
        min_freq: 1,
        ..Default::default()
    }
    .build(train.iter().map(|e| e.text.as_str()));
    let labels = LabelSet::from_examples(&train);
    let encode = |examples: &[mixup_data::Example], path: &std::path::Path| {
        examples
            .iter()
            .map(|e| {
                Ok(EncodedExample {
                    ids: tokenizer.encode(&e.text, max_len),
                    label: labels.encode(e, path)?,
                })
            })
            .collect::<Result<Vec<_>, mixup_data::DataError>>()
            .map_err(|e| e.to_string())
    };
    let train = encode(&train, &splits.train.0)?;
    let test = encode(&splits.test.1, &splits.test.0)?;
    let classes = labels.len();

    let device = Device::flex().autodiff();
    mixup_train::seed_device(&device, 0);
    let model = TextCnnConfig::new(tokenizer.vocab_size(), classes).init(&device);
    // wordMixup, alpha 1, one lambda per batch.
    let step = StepConfig::new()
        .with_method(MixMethod::Word)
        .with_max_len(max_len);
    let model = Mixup::new(model, &step, classes, Layout::PLAIN, 0).map_err(|e| e.to_string())?;
    let optim = build_optimizer(&OptimConfig::new(), &model);
    let loader_train = DataLoaderBuilder::new(MixupBatcher::new(step.method))
        .batch_size(64)
        .shuffle(0)
        .build(InMemDataset::new(train.clone()));
    let loader_valid = DataLoaderBuilder::new(MixupBatcher::clean())
        .batch_size(256)
        .build(InMemDataset::new(test.clone()));
    println!(
        "training TextCNN with wordMixup through burn-train's Learner: {} train / {} test \
         examples, {classes} classes, {} epochs, into {}",
        train.len(),
        test.len(),
        args.epochs,
        args.out.display()
    );
    let result = SupervisedTraining::new(&args.out, loader_train, loader_valid)
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .num_epochs(args.epochs)
        .with_application_logger(None)
        .renderer(Box::new(EpochLines::default()))
        .summary()
        .launch(Learner::new(model, optim, ConstantLr::new(1e-3)));
    if let Some(e) = result.error {
        return Err(format!("training stopped: {e}"));
    }
    let model = result.model.model;
    let (acc, loss) = evaluate(&model, &test, 256, max_len, classes, &Device::flex());
    println!("test accuracy {acc:.4} (loss {loss:.4})");
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
