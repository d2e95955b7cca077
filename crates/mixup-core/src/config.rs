//! [`MixupConfig`]: the knobs every mixup-family method shares, and their validation.

use std::fmt;

/// How many lambdas one batch draws (timm's `mode`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, burn::serde::Serialize, burn::serde::Deserialize,
)]
#[serde(crate = "burn::serde", rename_all = "kebab-case")]
pub enum LambdaMode {
    /// One lambda for the whole batch (Zhang et al. 2018, Manifold Mixup, TMix).
    #[default]
    Batch,
    /// One lambda per pair: when rows `i` and `j` are each other's partners they share it.
    Pair,
    /// One lambda per row.
    Elem,
}

/// How each row finds the partner it is mixed with.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, burn::serde::Serialize, burn::serde::Deserialize,
)]
#[serde(crate = "burn::serde", rename_all = "kebab-case")]
pub enum Pairing {
    /// A random permutation of the batch (mixup-cifar10, Manifold Mixup). Odd sizes are fine.
    #[default]
    Permutation,
    /// Row `i` of the first half with row `i + n/2` of the second, both ways (SSMix). With an
    /// odd batch the last row is its own partner, so it stays unmixed.
    SplitHalves,
    /// Row `i` with row `n - 1 - i` (timm). With an odd batch the middle row stays unmixed.
    Flip,
}

/// The configuration shared by every mixup-family method, in the shape of timm's `Mixup`.
///
/// Label smoothing is a property of the targets ([`crate::soft_targets`]); it is carried here
/// because timm does, and applied by [`crate::mix_targets`].
#[derive(Clone, Debug, PartialEq)]
pub struct MixupConfig {
    /// Lambda is drawn from `Beta(alpha, alpha)`; `alpha = 0` disables mixing (lambda = 1).
    pub alpha: f64,
    /// Probability that a batch (mode `Batch`) or a row/pair (`Elem`/`Pair`) is mixed at all.
    pub prob: f64,
    /// One lambda per batch, per pair or per row.
    pub mode: LambdaMode,
    /// Replace lambda by `max(lambda, 1 - lambda)` so that each row keeps the larger share.
    pub lambda_ge_half: bool,
    /// How partners are chosen.
    pub pairing: Pairing,
    /// Label smoothing applied to the one-hot targets before they are mixed.
    pub label_smoothing: f64,
    /// Number of classes of the targets.
    pub num_classes: usize,
}

impl Default for MixupConfig {
    fn default() -> Self {
        Self {
            alpha: 1.0,
            prob: 1.0,
            mode: LambdaMode::Batch,
            lambda_ge_half: false,
            pairing: Pairing::Permutation,
            label_smoothing: 0.0,
            num_classes: 2,
        }
    }
}

/// Why a [`MixupConfig`] was refused. Each variant carries the offending value.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `alpha` is negative, NaN or infinite.
    InvalidAlpha(f64),
    /// `prob` is outside `[0, 1]` or NaN.
    InvalidProb(f64),
    /// `label_smoothing` is outside `[0, 1)` or NaN.
    InvalidLabelSmoothing(f64),
    /// `num_classes` is zero.
    ZeroClasses,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidAlpha(a) => {
                write!(
                    f,
                    "alpha must be a finite number >= 0 (0 disables mixing), got {a}"
                )
            }
            Self::InvalidProb(p) => write!(f, "prob must be in [0, 1], got {p}"),
            Self::InvalidLabelSmoothing(s) => {
                write!(f, "label_smoothing must be in [0, 1), got {s}")
            }
            Self::ZeroClasses => write!(f, "num_classes must be at least 1, got 0"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl MixupConfig {
    /// Checks every field; [`MixupConfig::sample`] assumes a validated config.
    ///
    /// # Errors
    ///
    /// The first invalid field, as a [`ConfigError`] naming its value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.alpha.is_finite() || self.alpha < 0.0 {
            return Err(ConfigError::InvalidAlpha(self.alpha));
        }
        if !(0.0..=1.0).contains(&self.prob) {
            return Err(ConfigError::InvalidProb(self.prob));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(ConfigError::InvalidLabelSmoothing(self.label_smoothing));
        }
        if self.num_classes == 0 {
            return Err(ConfigError::ZeroClasses);
        }
        Ok(())
    }

    /// Whether this configuration can mix anything at all.
    pub fn enabled(&self) -> bool {
        self.alpha > 0.0 && self.prob > 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_bad_value() {
        let ok = MixupConfig::default();
        assert!(ok.validate().is_ok());
        let bad = MixupConfig {
            alpha: -0.5,
            ..ok.clone()
        };
        assert_eq!(bad.validate(), Err(ConfigError::InvalidAlpha(-0.5)));
        assert!(
            MixupConfig {
                alpha: f64::NAN,
                ..ok.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            MixupConfig {
                alpha: f64::INFINITY,
                ..ok.clone()
            }
            .validate()
            .is_err()
        );
        assert_eq!(
            MixupConfig {
                prob: 1.5,
                ..ok.clone()
            }
            .validate(),
            Err(ConfigError::InvalidProb(1.5))
        );
        assert!(
            MixupConfig {
                prob: -0.1,
                ..ok.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            MixupConfig {
                prob: f64::NAN,
                ..ok.clone()
            }
            .validate()
            .is_err()
        );
        assert_eq!(
            MixupConfig {
                num_classes: 0,
                ..ok.clone()
            }
            .validate(),
            Err(ConfigError::ZeroClasses)
        );
        assert!(
            MixupConfig {
                label_smoothing: 1.0,
                ..ok.clone()
            }
            .validate()
            .is_err()
        );
        let msg = MixupConfig { alpha: -2.0, ..ok }
            .validate()
            .unwrap_err()
            .to_string();
        assert!(msg.contains("-2"), "{msg}");
    }

    #[test]
    fn zero_alpha_or_prob_disables() {
        assert!(
            !MixupConfig {
                alpha: 0.0,
                ..Default::default()
            }
            .enabled()
        );
        assert!(
            !MixupConfig {
                prob: 0.0,
                ..Default::default()
            }
            .enabled()
        );
        assert!(MixupConfig::default().enabled());
    }
}
