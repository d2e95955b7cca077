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

/// The backward of a one-input op ([`unary_node`]): the input's gradient from the kept state
/// (the op's input or output) and the output's gradient.
#[derive(Debug)]
pub(crate) struct UnaryBackward {
    backward: fn(&FlexTensor, &FlexTensor) -> FlexTensor,
}

impl Backward<Flex, 1> for UnaryBackward {
    type State = FlexTensor;

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

/// What a one-input op keeps for its backward.
pub(crate) enum Keep {
    Input,
    Output,
}

/// A one-input Flex op as one autodiff node: `forward` computes the output; when the input is
/// tracked, `keep` says what is saved and `backward(saved, grad)` gives the input's gradient.
pub(crate) fn unary_node<C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<Flex, C>>,
    forward: fn(&FlexTensor) -> FlexTensor,
    keep: Keep,
    backward: fn(&FlexTensor, &FlexTensor) -> FlexTensor,
) -> FloatTensor<Autodiff<Flex, C>> {
    let op = UnaryBackward { backward };
    match op.prepare::<C>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let y = forward(x.primitive());
            let saved = match keep {
                Keep::Input => x.primitive().clone(),
                Keep::Output => y.clone(),
            };
            prep.finish(saved, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive())),
    }
}
