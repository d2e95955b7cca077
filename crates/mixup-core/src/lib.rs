//! # mixup-core
//!
//! Backend-agnostic building blocks of the mixup family for [Burn](https://burn.dev), shared by
//! every model and method of the mixup zoo:
//!
//! - [`MixupConfig`]: the knobs, in the shape of timm's `Mixup` (Zhang et al. 2018,
//!   <https://arxiv.org/abs/1710.09412>): `alpha`, `prob`, `mode`, `lambda_ge_half`, `pairing`,
//!   `label_smoothing`, `num_classes`, validated into typed [`ConfigError`]s.
//! - [`MixParams`]: the plain data one batch is mixed with (one lambda and one partner row per
//!   batch row), drawn **once** on the host from a seeded RNG ([`MixupConfig::sample`]) and then
//!   applied to inputs, hidden states and targets alike.
//! - Pure tensor functions: [`mix_rows`] / [`mix_with`] (any rank, along the batch),
//!   [`soft_targets`] / [`mix_targets`], [`soft_cross_entropy`], [`interpolated_cross_entropy`]
//!   and [`union_mask`].
//! - [`MixState`]: a model's state at a mixing point (a padded sequence with its mask, or a
//!   pooled vector) and how two of them mix.
//!
//! Nothing here reads files, prints, or picks a backend: tensors live on whatever
//! [`burn::tensor::Device`] the caller made them on.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use mixup_core::{MixupConfig, mix_rows, mix_targets};
//! use rand::SeedableRng;
//!
//! let device = Device::flex();
//! let config = MixupConfig { alpha: 0.4, num_classes: 3, ..MixupConfig::default() };
//! config.validate().unwrap();
//! let mut rng = rand::rngs::StdRng::seed_from_u64(7);
//! let params = config.sample(4, &mut rng);
//!
//! let x = Tensor::<3>::ones([4, 5, 8], &device);
//! let mixed = mix_rows(x, &params);
//! assert_eq!(mixed.dims(), [4, 5, 8]);
//!
//! let labels = Tensor::<1, burn::tensor::Int>::from_ints([0, 1, 2, 1], &device);
//! let targets = mix_targets(labels, &params, 3, 0.0);
//! assert_eq!(targets.dims(), [4, 3]);
//! ```

#![deny(missing_docs)]

mod config;
mod loss;
mod mask;
mod method;
mod mix;
mod params;
mod seqmix;
mod ssmix;
mod state;
mod targets;

pub use config::{ConfigError, LambdaMode, MixupConfig, Pairing};
pub use loss::{interpolated_cross_entropy, soft_cross_entropy};
pub use mask::{mix_mask, union_mask};
pub use method::{MixMethod, PointKind, UnknownMethod};
pub use mix::{lambda_tensor, mix_rows, mix_with, partner_rows};
pub use params::MixParams;
pub use seqmix::{
    Projection, ProjectionMetric, SeqMixVariant, SoftTagged, TaggedIds, labelled_windows,
    matching_windows, nearest_tokens, seqmix_pair,
};
pub use ssmix::{
    Layout, SpanMix, SpanMode, choose_segment_spans, choose_span, saliency_span_mix,
    saliency_span_mix_segments, span_len, token_saliency, window_means,
};
pub use state::{MixState, masked_mean, zero_padding};
pub use targets::{mix_targets, soft_targets};
