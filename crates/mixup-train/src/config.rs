//! Typed configurations of a training run, as Burn configs (`#[derive(Config)]`: builders,
//! JSON save and load): the step ([`StepConfig`]), the optimiser and its schedule
//! ([`OptimConfig`]) and the loop ([`TrainConfig`]). The `mixup` CLI converts a TOML recipe
//! into these; a Burn project builds them directly.

use burn::config::Config;
use mixup_core::{LambdaMode, MixMethod, MixupConfig, Pairing, SpanMode};
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// Which loss a mixed batch is trained with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossForm {
    /// Soft-target cross-entropy on the mixed (smoothed) one-hot targets.
    #[default]
    Soft,
    /// `lam * CE(a) + (1 - lam) * CE(b)` on the two hard labels (no smoothing).
    Interpolated,
}

/// How a mixed step adds the clean (unmixed) loss, for SSMix and `clean_loss`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CleanWeighting {
    /// `(mixed + clean) / 2`: the official SSMix code's mean of its four terms (clean and
    /// mixed, each half of the batch), so gradients have the scale of one loss.
    #[default]
    Mean,
    /// `mixed + clean`: twice the gradient scale, as this project trained before.
    Sum,
}

/// The optimiser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam; weight decay, if any, is an L2 term in the gradient (as PyTorch's `Adam`).
    #[default]
    Adam,
    /// AdamW: decoupled weight decay (Loshchilov and Hutter 2019).
    AdamW,
}

/// The learning rate after warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The peak rate until the end.
    #[default]
    Constant,
    /// A linear decay to 0 at the last step.
    Linear,
}

/// Which epoch's model a run keeps and reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    /// The last epoch's.
    #[default]
    Last,
    /// The epoch with the highest dev accuracy (the first of equals); needs a dev split.
    /// Test data never chooses anything.
    BestDev,
}

/// What one training step does: the method, its mixing parameters, the loss, and clipping.
#[derive(Config, Debug, PartialEq)]
pub struct StepConfig {
    /// The mixing method.
    #[config(default = "MixMethod::None")]
    pub method: MixMethod,
    /// Lambda ~ Beta(alpha, alpha); 0 disables mixing.
    #[config(default = 1.0)]
    pub alpha: f64,
    /// Probability that a batch (or a row or pair, by `mode`) is mixed.
    #[config(default = 1.0)]
    pub prob: f64,
    /// One lambda per batch, pair or row.
    #[config(default = "LambdaMode::Batch")]
    pub mode: LambdaMode,
    /// Use max(lambda, 1 - lambda).
    #[config(default = false)]
    pub lambda_ge_half: bool,
    /// How rows find their partners.
    #[config(default = "Pairing::Permutation")]
    pub pairing: Pairing,
    /// Label smoothing of the targets.
    #[config(default = 0.0)]
    pub label_smoothing: f64,
    /// The loss of mixed steps.
    #[config(default = "LossForm::Soft")]
    pub loss: LossForm,
    /// Add the clean (unmixed) loss to mixed steps (SSMix always trains it).
    #[config(default = false)]
    pub clean_loss: bool,
    /// How the clean loss is added: the mean of the two (the paper's code) or their sum.
    #[config(default = "CleanWeighting::Mean")]
    pub clean_weighting: CleanWeighting,
    /// The eligible mixing points (indices into the model's [`mixup_models::MixingPoints::points`]);
    /// one is drawn per step. `None`: the method's default ([`MixMethod::eligible`]).
    pub points: Option<Vec<usize>>,
    /// SSMix: saliency spans, or one of the random ablations.
    #[config(default = "SpanMode::Saliency")]
    pub span: SpanMode,
    /// SSMix: the span's share of a row's text (at least one token).
    #[config(default = 0.1)]
    pub span_share: f64,
    /// Clip the global L2 norm of the gradients to this before the update; `None`: no clipping.
    pub clip_grad_norm: Option<f64>,
    /// Longest row in tokens (longer rows are cut).
    #[config(default = 64)]
    pub max_len: usize,
    /// MixText: sharpening temperature of the guessed targets.
    #[config(default = 0.5)]
    pub mixtext_temperature: f64,
    /// MixText: weight of the unlabelled term once ramped up.
    #[config(default = 1.0)]
    pub mixtext_lambda_u: f64,
    /// MixText: epochs over which the unlabelled weight rises linearly from 0.
    #[config(default = 0.0)]
    pub mixtext_rampup: f64,
    /// MixText: the entropy margin gamma (`None`: no margin term).
    pub mixtext_margin: Option<f64>,
    /// MixText: weight of the margin term.
    #[config(default = 0.0)]
    pub mixtext_margin_weight: f64,
}

impl StepConfig {
    /// MixText's settings of this configuration.
    pub fn mixtext_settings(&self) -> crate::mixtext::MixTextSettings {
        crate::mixtext::MixTextSettings {
            temperature: self.mixtext_temperature,
            lambda_u: self.mixtext_lambda_u,
            rampup_epochs: self.mixtext_rampup,
            margin: self.mixtext_margin,
            margin_weight: self.mixtext_margin_weight,
        }
    }

    /// The [`MixupConfig`] of these settings for `num_classes` classes.
    ///
    /// # Errors
    ///
    /// [`TrainError::Config`] naming the bad field (`alpha`, `prob` or `label_smoothing`).
    pub fn mixup_config(&self, num_classes: usize) -> Result<MixupConfig, TrainError> {
        let config = MixupConfig {
            alpha: self.alpha,
            prob: self.prob,
            mode: self.mode,
            lambda_ge_half: self.lambda_ge_half,
            pairing: self.pairing,
            label_smoothing: self.label_smoothing,
            num_classes,
        };
        config.validate().map_err(|e| {
            let key = match e {
                mixup_core::ConfigError::InvalidAlpha(_) => "alpha",
                mixup_core::ConfigError::InvalidProb(_) => "prob",
                _ => "label_smoothing",
            };
            TrainError::config(key, e.to_string())
        })?;
        Ok(config)
    }
}

/// The optimiser and its learning-rate schedule.
#[derive(Config, Debug, PartialEq)]
pub struct OptimConfig {
    /// Adam or AdamW.
    #[config(default = "OptimizerKind::Adam")]
    pub optimizer: OptimizerKind,
    /// Peak learning rate.
    #[config(default = 1e-3)]
    pub lr: f64,
    /// Adam's epsilon (PyTorch's default 1e-8; Burn's own is 1e-5).
    #[config(default = 1e-8)]
    pub adam_epsilon: f64,
    /// Weight decay (decoupled with AdamW, L2 with Adam); never on one-dimensional
    /// parameters (biases, LayerNorm).
    #[config(default = 0.0)]
    pub weight_decay: f64,
    /// Share of the steps over which the rate rises linearly from 0.
    #[config(default = 0.0)]
    pub warmup: f64,
    /// Constant or linear decay after warm-up.
    #[config(default = "Schedule::Constant")]
    pub schedule: Schedule,
    /// The peak learning rate of the classifier head ([`mixup_models::MixingPoints::head_params`]),
    /// on the same schedule (MixText's encoder 1e-5 / head 1e-3); `None`: `lr` for every
    /// parameter.
    pub head_lr: Option<f64>,
}

/// A whole training run of a classifier: the step, the optimiser and the loop.
#[derive(Config, Debug, PartialEq)]
pub struct TrainConfig {
    /// The step.
    #[config(default = "StepConfig::new()")]
    pub step: StepConfig,
    /// The optimiser and schedule.
    #[config(default = "OptimConfig::new()")]
    pub optim: OptimConfig,
    /// Passes over the training set.
    #[config(default = 10)]
    pub epochs: usize,
    /// Training batch size.
    #[config(default = 64)]
    pub batch_size: usize,
    /// Evaluation batch size.
    #[config(default = 256)]
    pub eval_batch_size: usize,
    /// Seeds initialisation, dropout, shuffling and mixing.
    #[config(default = 0)]
    pub seed: u64,
    /// Mix in the first `off_epoch` epochs only, as timm's `mixup_off_epoch = N` (which mixes
    /// its 0-based epochs 0..N): epochs `1..=N` mix, later ones train clean. `None`: always.
    pub off_epoch: Option<usize>,
    /// Optimiser steps between checkpoints within an epoch (0: only at epoch ends; none are
    /// written without a checkpoint folder).
    #[config(default = 500)]
    pub checkpoint_every: usize,
    /// Report progress every this many steps (and at the end of each epoch).
    #[config(default = 50)]
    pub log_every: usize,
    /// Which epoch's model is kept and reported.
    #[config(default = "Selection::Last")]
    pub select: Selection,
    /// MixText: unlabelled texts per step (each with its augmentations); 0: `batch_size`.
    #[config(default = 0)]
    pub unlabelled_batch_size: usize,
    /// Evaluate on dev and test after every this many epochs, and always after the last
    /// ([`TrainConfig::evaluates`]). Epochs in between report no dev or test figures, and
    /// `select = "best-dev"` chooses among the evaluated epochs. 1: every epoch.
    #[config(default = 1)]
    pub eval_every: usize,
}

impl TrainConfig {
    /// Whether the model of (1-based) `epoch` is evaluated on dev and test: every
    /// `eval_every`-th epoch and the last.
    pub fn evaluates(&self, epoch: usize) -> bool {
        epoch == self.epochs || epoch.is_multiple_of(self.eval_every.max(1))
    }

    /// Checks what the types cannot: positive sizes and rates, shares within 0..=1.
    ///
    /// # Errors
    ///
    /// [`TrainError::Config`] naming the first bad field.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |key: &str, reason: String| Err(TrainError::config(key, reason));
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1".into());
        }
        if self.eval_every == 0 {
            return bad("eval_every", "must be at least 1 (1: every epoch)".into());
        }
        if self.batch_size == 0 || self.eval_batch_size == 0 {
            return bad("batch_size", "batch sizes must be at least 1".into());
        }
        if !(self.optim.lr.is_finite() && self.optim.lr > 0.0) {
            return bad("lr", format!("{} is not a positive rate", self.optim.lr));
        }
        if !(0.0..=1.0).contains(&self.optim.warmup) {
            return bad(
                "warmup",
                format!("{} is not a share in 0..=1", self.optim.warmup),
            );
        }
        if self.step.max_len == 0 {
            return bad("max_len", "must be at least 1".into());
        }
        if let Some(c) = self.step.clip_grad_norm
            && !(c.is_finite() && c > 0.0)
        {
            return bad("clip_grad_norm", format!("{c} is not a positive norm"));
        }
        if !(self.step.span_share > 0.0 && self.step.span_share <= 1.0) {
            return bad(
                "span_share",
                format!("{} is not a share in (0, 1]", self.step.span_share),
            );
        }
        self.step.mixup_config(2).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_round_trip_through_json_with_their_enum_names() {
        let config = TrainConfig::new()
            .with_step(
                StepConfig::new()
                    .with_method(MixMethod::MixupTransformer)
                    .with_pairing(Pairing::SplitHalves)
                    .with_span(SpanMode::RandomTokens)
                    .with_points(Some(vec![1, 2])),
            )
            .with_optim(OptimConfig::new().with_optimizer(OptimizerKind::AdamW))
            .with_epochs(3);
        let json = config.to_string();
        for name in [
            "\"mixup-transformer\"",
            "\"split-halves\"",
            "\"random-tokens\"",
            "\"adamw\"",
        ] {
            assert!(json.contains(name), "{name} missing from {json}");
        }
        let back: TrainConfig = serde_json::from_str(&json).expect("parse back");
        assert_eq!(back, config);
    }

    #[test]
    fn validation_names_the_bad_field() {
        let e = TrainConfig::new()
            .with_epochs(0)
            .validate()
            .expect_err("0 epochs");
        assert!(e.to_string().starts_with("epochs:"), "{e}");
        let e = TrainConfig::new()
            .with_step(StepConfig::new().with_alpha(-1.0))
            .validate()
            .expect_err("negative alpha");
        assert!(e.to_string().starts_with("alpha:"), "{e}");
        TrainConfig::new()
            .validate()
            .expect("the defaults are valid");
    }
}
