//! [`MixMethod`]: which mixup-family method a run uses, and where it mixes.

use std::{fmt, str::FromStr};

/// Where in a model a mixing point sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PointKind {
    /// The (position-wise) embedding output, before any layer.
    Embedding,
    /// The output of layer `i` (0-based) of the model's stack, still a sequence.
    Layer(usize),
    /// The pooled sentence vector that feeds the classifier head.
    Pooled,
}

/// A mixup-family method, by where it mixes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, burn::serde::Serialize, burn::serde::Deserialize,
)]
#[serde(crate = "burn::serde", rename_all = "kebab-case")]
pub enum MixMethod {
    /// No mixing: plain empirical risk minimisation.
    #[default]
    None,
    /// Input mixup (Zhang et al. 2018, <https://arxiv.org/abs/1710.09412>) applied to text: it
    /// mixes at each model's embedding output (point 0), exactly like [`MixMethod::Word`], and
    /// is kept as a name of its own for recipes that follow the original paper. For TextCNN,
    /// the BiLSTM and the pre-LN Transformer that output is the token embedding (plus the
    /// position embedding for the Transformer), and mixing it equals mixing one-hot inputs,
    /// since those embeddings are linear in them. For the post-LN Transformer and BERT-family
    /// encoders it is the embedding after LayerNorm and dropout, which is not linear in the
    /// one-hot input: there this mixes the normalised embeddings, not the inputs.
    Input,
    /// wordMixup (Guo et al. 2019, <https://arxiv.org/abs/1905.08941>): mix the word
    /// embeddings position by position, the shorter sentence zero-padded, under the union of
    /// both padding masks.
    Word,
    /// senMixup (Guo et al. 2019): mix the pooled sentence vectors before the classifier.
    Sen,
    /// Manifold Mixup (Verma et al. 2019, <https://arxiv.org/abs/1806.05236>): mix at a point
    /// drawn uniformly per batch from an eligible set, by default the paper's: the embedding
    /// output and the outputs of the first two layers (the official code's k in {0, 1, 2}),
    /// never the pooled vector.
    Manifold,
    /// TMix (Chen et al. 2020, <https://arxiv.org/abs/2004.12239>): mix the hidden states after
    /// an encoder layer drawn per batch from an eligible set, by default the layers TMix uses
    /// on a 12-layer BERT ({7, 9, 12}) scaled to the model's depth (see
    /// [`MixMethod::eligible`]), with the partner rows drawn from a **separate batch**
    /// ([`MixMethod::separate_batch`]).
    Tmix,
    /// Mixup-Transformer (Sun et al. 2020, <https://aclanthology.org/2020.coling-main.305/>):
    /// mix the pooled output of a Transformer encoder. The same operation as
    /// [`MixMethod::Sen`]; the name follows the paper, whose models are Transformers.
    MixupTransformer,
    /// SSMix (Yoon et al. 2021, <https://arxiv.org/abs/2106.08062>): replace the least salient
    /// span of each row's token ids by the most salient span of its partner's (see
    /// [`crate::choose_span`]), saliency taken at the embedding output; trained together with
    /// the clean loss.
    Ssmix,
    /// MixText (Chen et al. 2020, <https://arxiv.org/abs/2004.12239>): semi-supervised TMix.
    /// Unlabelled texts get guessed targets (the sharpened mean prediction over the text and
    /// its augmentations); labelled and unlabelled rows are mixed together at a layer drawn as
    /// for [`MixMethod::Tmix`], with `max(lambda, 1 - lambda)`; the loss adds a ramped
    /// consistency term on the unlabelled rows (`mixup_train::mixtext`).
    #[serde(rename = "mixtext")]
    MixText,
}

impl MixMethod {
    /// Every method, in CLI order.
    pub const ALL: [MixMethod; 9] = [
        MixMethod::None,
        MixMethod::Input,
        MixMethod::Word,
        MixMethod::Sen,
        MixMethod::Manifold,
        MixMethod::Tmix,
        MixMethod::MixupTransformer,
        MixMethod::Ssmix,
        MixMethod::MixText,
    ];

    /// The name used in recipes and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Input => "input",
            Self::Word => "word",
            Self::Sen => "sen",
            Self::Manifold => "manifold",
            Self::Tmix => "tmix",
            Self::MixupTransformer => "mixup-transformer",
            Self::Ssmix => "ssmix",
            Self::MixText => "mixtext",
        }
    }

    /// The indices of the points this method may mix at by default, given a model's points in
    /// order; empty for [`MixMethod::None`].
    ///
    /// For [`MixMethod::Tmix`]: with `n` layer points, the outputs of layers
    /// `round(7n/12)`, `round(9n/12)` and `n` (counted from 1), without repeats: {7, 9, 12} for
    /// 12 layers, {4, 5, 6} for 6, {2, 3, 4} for 4, {1, 2} for 2, {1} for 1.
    pub fn eligible(self, points: &[PointKind]) -> Vec<usize> {
        let find = |kind: PointKind| points.iter().position(|&p| p == kind).into_iter().collect();
        match self {
            Self::None => Vec::new(),
            // SSMix mixes token ids; the embedding output is where it takes its saliency.
            Self::Input | Self::Word | Self::Ssmix => find(PointKind::Embedding),
            Self::Sen | Self::MixupTransformer => find(PointKind::Pooled),
            // The paper's set: the input and the outputs of the first two blocks (the
            // official code draws k from {0, 1, 2}); never the pooled representation.
            Self::Manifold => {
                let layers = (0..points.len())
                    .filter(|&i| matches!(points[i], PointKind::Layer(_)))
                    .take(2);
                find(PointKind::Embedding)
                    .into_iter()
                    .chain(layers)
                    .collect()
            }
            Self::Tmix | Self::MixText => {
                let layers: Vec<usize> = (0..points.len())
                    .filter(|&i| matches!(points[i], PointKind::Layer(_)))
                    .collect();
                let n = layers.len();
                let mut picked: Vec<usize> = [7.0, 9.0, 12.0]
                    .iter()
                    .map(|share| ((share * n as f64 / 12.0).round() as usize).clamp(1, n.max(1)))
                    .filter(|_| n > 0)
                    .map(|k| layers[k - 1])
                    .collect();
                picked.dedup();
                picked
            }
        }
    }

    /// Whether the partner rows come from a separate batch rather than a permutation of the
    /// same batch (true for [`MixMethod::Tmix`], run as the design asks: both inputs
    /// go through the encoder up to the mixing layer, each with its own padding mask).
    pub fn separate_batch(self) -> bool {
        matches!(self, Self::Tmix)
    }
}

impl fmt::Display for MixMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown method name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownMethod(pub String);

impl fmt::Display for UnknownMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = MixMethod::ALL.iter().map(|m| m.name()).collect();
        write!(
            f,
            "unknown mixing method {:?} (known: {})",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownMethod {}

impl FromStr for MixMethod {
    type Err = UnknownMethod;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MixMethod::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| UnknownMethod(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_points() {
        for m in MixMethod::ALL {
            assert_eq!(m.name().parse::<MixMethod>(), Ok(m));
        }
        let err = "cutmix".parse::<MixMethod>().expect_err("unknown");
        assert!(err.to_string().contains("\"cutmix\"") && err.to_string().contains("manifold"));
        let points = [PointKind::Embedding, PointKind::Layer(0), PointKind::Pooled];
        assert_eq!(MixMethod::None.eligible(&points), Vec::<usize>::new());
        assert_eq!(MixMethod::Word.eligible(&points), vec![0]);
        assert_eq!(MixMethod::Input.eligible(&points), vec![0]);
        assert_eq!(MixMethod::Sen.eligible(&points), vec![2]);
        // Manifold Mixup never mixes the pooled vector by default (the paper's k in {0, 1, 2}).
        assert_eq!(MixMethod::Manifold.eligible(&points), vec![0, 1]);
        let deep: Vec<PointKind> = std::iter::once(PointKind::Embedding)
            .chain((0..6).map(PointKind::Layer))
            .chain(std::iter::once(PointKind::Pooled))
            .collect();
        assert_eq!(MixMethod::Manifold.eligible(&deep), vec![0, 1, 2]);
        assert_eq!(MixMethod::MixupTransformer.eligible(&points), vec![2]);
        assert_eq!(MixMethod::Tmix.eligible(&points), vec![1]);
        assert!(MixMethod::Tmix.separate_batch() && !MixMethod::Manifold.separate_batch());
    }

    #[test]
    fn tmix_layers_scale_with_depth() {
        let model = |n: usize| -> Vec<PointKind> {
            let mut p = vec![PointKind::Embedding];
            p.extend((0..n).map(PointKind::Layer));
            p.push(PointKind::Pooled);
            p
        };
        // Point k is the output of layer k counted from 1.
        assert_eq!(MixMethod::Tmix.eligible(&model(12)), vec![7, 9, 12]);
        assert_eq!(MixMethod::Tmix.eligible(&model(6)), vec![4, 5, 6]);
        assert_eq!(MixMethod::Tmix.eligible(&model(4)), vec![2, 3, 4]);
        assert_eq!(MixMethod::Tmix.eligible(&model(2)), vec![1, 2]);
        assert_eq!(MixMethod::Tmix.eligible(&model(1)), vec![1]);
        assert_eq!(
            MixMethod::Tmix.eligible(&[PointKind::Embedding, PointKind::Pooled]),
            Vec::<usize>::new()
        );
    }
}
