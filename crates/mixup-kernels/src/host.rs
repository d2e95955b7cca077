//! Helpers shared by the Flex kernels.

use burn::backend::{
    Autodiff, Flex,
    autodiff::{
        checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
        grads::Gradients,
        ops::{Backward, Ops, OpsKind},
    },
    flex::FlexTensor,
    tensor::FloatTensor,
};

/// `t` itself when it is contiguous from its first element, else a contiguous copy.
pub(crate) fn contiguous(t: &FlexTensor) -> FlexTensor {
    if t.is_contiguous() && t.layout().start_offset() == 0 {
        t.clone()
    } else {
        t.to_contiguous()
    }
}

/// The backward of a one-input op ([`unary_node`]): the input's gradient from what the forward
/// saved (`S`: the op's input, its output, or its settings) and the output's gradient.
#[derive(Debug)]
pub(crate) struct UnaryBackward<S> {
    backward: fn(&S, &FlexTensor) -> FlexTensor,
}

impl<S: Clone + Send + std::fmt::Debug + 'static> Backward<Flex, 1> for UnaryBackward<S> {
    type State = S;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, (self.backward)(&ops.state, &grad));
        }
    }
}

/// A one-input Flex op as one autodiff node: `forward` computes the output; when the input is
/// tracked, `save(x, y)` gives what the backward keeps and `backward(saved, grad)` the input's
/// gradient.
pub(crate) fn unary_node<C: CheckpointStrategy, S: Clone + Send + std::fmt::Debug + 'static>(
    x: FloatTensor<Autodiff<Flex, C>>,
    forward: impl FnOnce(&FlexTensor) -> FlexTensor,
    save: impl FnOnce(&FlexTensor, &FlexTensor) -> S,
    backward: fn(&S, &FlexTensor) -> FlexTensor,
) -> FloatTensor<Autodiff<Flex, C>> {
    let op = UnaryBackward { backward };
    match op.prepare::<C>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let y = forward(x.primitive());
            let saved = save(x.primitive(), &y);
            prep.finish(saved, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive())),
    }
}
