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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MixMethod {
    /// No mixing: plain empirical risk minimisation.
    #[default]
    None,
    /// Input mixup (Zhang et al. 2018, <https://arxiv.org/abs/1710.09412>) applied to text.
    /// Mixing one-hot token inputs and then embedding them equals mixing the embedded tokens,
    /// so this mixes at the embedding output, exactly like [`MixMethod::Word`]; it is kept as
    /// a name of its own for recipes that follow the original paper.
    Input,
    /// wordMixup (Guo et al. 2019, <https://arxiv.org/abs/1905.08941>): mix the word
    /// embeddings position by position, the shorter sentence zero-padded, under the union of
    /// both padding masks.
    Word,
    /// senMixup (Guo et al. 2019): mix the pooled sentence vectors before the classifier.
    Sen,
    /// Manifold Mixup (Verma et al. 2019, <https://arxiv.org/abs/1806.05236>): mix at a point
    /// drawn uniformly per batch from an eligible set (by default every mixing point).
    Manifold,
}

impl MixMethod {
    /// Every method, in CLI order.
    pub const ALL: [MixMethod; 5] = [
        MixMethod::None,
        MixMethod::Input,
        MixMethod::Word,
        MixMethod::Sen,
        MixMethod::Manifold,
    ];

    /// The name used in recipes and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Input => "input",
            Self::Word => "word",
            Self::Sen => "sen",
            Self::Manifold => "manifold",
        }
    }

    /// The indices of the points this method may mix at, given a model's points in order; empty for
    /// [`MixMethod::None`].
    pub fn eligible(self, points: &[PointKind]) -> Vec<usize> {
        let find = |kind: PointKind| points.iter().position(|&p| p == kind).into_iter().collect();
        match self {
            Self::None => Vec::new(),
            Self::Input | Self::Word => find(PointKind::Embedding),
            Self::Sen => find(PointKind::Pooled),
            Self::Manifold => (0..points.len()).collect(),
        }
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
        assert_eq!(MixMethod::Manifold.eligible(&points), vec![0, 1, 2]);
    }
}
