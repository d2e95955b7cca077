//! [`MixingPoints`]: the one trait through which every zoo model exposes where it can be mixed.

use burn::{
    module::ParamId,
    nn::Linear,
    tensor::{Bool, Int, Tensor},
};
use mixup_core::{MixParams, MixState, PointKind};

/// A classifier whose forward pass is a chain of mixing points.
///
/// A model implements the four required methods; the provided ones run the chain.
/// Point `0` is the embedding output, points `1..` follow the model's layers, and the last
/// point ([`MixingPoints::num_points`]` - 1`) is the pooled sentence vector.
///
/// # Invariants every implementation keeps
///
/// - Padded positions never influence the output: changing the id of a padding token leaves
///   the logits unchanged, at every point, mixed or not.
/// - `forward_from(forward_to(x, k), k) == forward(x)` for every point `k`.
pub trait MixingPoints {
    /// The kind of each mixing point, in forward order.
    fn points(&self) -> Vec<PointKind>;

    /// Runs the embedding: the state at point 0.
    ///
    /// # Shapes
    ///
    /// - `ids`, `mask`: `[n, L]`
    fn embed(&self, ids: Tensor<2, Int>, mask: Tensor<2, Bool>) -> MixState;

    /// Runs from point `point` to point `point + 1`.
    ///
    /// # Panics
    ///
    /// If `point + 1` is not a point of the model or the state has the wrong kind.
    fn advance(&self, state: MixState, point: usize) -> MixState;

    /// The classifier head on the pooled state (dropout, then the output layer).
    ///
    /// # Shapes
    ///
    /// - `pooled`: `[n, d]`, returns `[n, classes]`
    fn head(&self, pooled: Tensor<2>) -> Tensor<2>;

    /// The parameters of the classifier head (the output layer), which a training run may
    /// give their own learning rate (`OptimConfig::head_lr` in `mixup-train`). Empty by
    /// default.
    fn head_params(&self) -> Vec<ParamId> {
        Vec::new()
    }

    /// Number of mixing points.
    fn num_points(&self) -> usize {
        self.points().len()
    }

    /// Runs the model up to point `point` and returns its state there.
    fn forward_to(&self, ids: Tensor<2, Int>, mask: Tensor<2, Bool>, point: usize) -> MixState {
        let mut state = self.embed(ids, mask);
        for k in 0..point {
            state = self.advance(state, k);
        }
        state
    }

    /// Continues from the state at point `point` to the logits.
    ///
    /// # Panics
    ///
    /// If the last point's state is not pooled.
    fn forward_from(&self, mut state: MixState, point: usize) -> Tensor<2> {
        let last = self.num_points() - 1;
        for k in point..last {
            state = self.advance(state, k);
        }
        match state {
            MixState::Pooled(pooled) => self.head(pooled),
            MixState::Sequence { .. } => panic!("the last mixing point must be pooled"),
        }
    }

    /// The plain forward pass: logits `[n, classes]`.
    fn forward(&self, ids: Tensor<2, Int>, mask: Tensor<2, Bool>) -> Tensor<2> {
        let last = self.num_points() - 1;
        self.forward_from(self.forward_to(ids, mask, last), last)
    }

    /// Forward with the rows of one batch mixed with their partner rows (`params`) at `point`.
    fn forward_mixed(
        &self,
        ids: Tensor<2, Int>,
        mask: Tensor<2, Bool>,
        point: usize,
        params: &MixParams,
    ) -> Tensor<2> {
        let state = self.forward_to(ids, mask, point);
        let partner = state.partner_rows(params);
        self.forward_from(state.mix(partner, &params.lambdas), point)
    }

    /// Forward with batch `a` mixed row by row with a separate batch `b` at `point` (TMix);
    /// the two may have different padded lengths.
    fn forward_mixed_pair(
        &self,
        a: (Tensor<2, Int>, Tensor<2, Bool>),
        b: (Tensor<2, Int>, Tensor<2, Bool>),
        point: usize,
        lambdas: &[f32],
    ) -> Tensor<2> {
        let sa = self.forward_to(a.0, a.1, point);
        let sb = self.forward_to(b.0, b.1, point);
        self.forward_from(sa.mix(sb, lambdas), point)
    }
}

/// The parameter ids of a linear layer (weight, then bias when it has one).
pub fn linear_params(layer: &Linear) -> Vec<ParamId> {
    std::iter::once(layer.weight.id)
        .chain(layer.bias.as_ref().map(|b| b.id))
        .collect()
}
