//! The bridge of the LibTorch ops (`lstm_tch`, `norm_tch`, `softmax_tch`): a computation
//! on `tch` tensors run under LibTorch's autograd as **one node of Burn's graph**.
//!
//! Under `Autodiff<LibTorch>` the forward runs the computation on detached leaves that require
//! gradients and keeps the output with its LibTorch graph; the backward (burn-autodiff's public
//! `Backward` API) asks LibTorch for the vector-Jacobian product of that graph with the incoming
//! gradient, for the parents Burn tracks, and registers the results. So an op whose ATen kernel
//! has its own fused backward (LSTM, LayerNorm, softmax) costs one node each way, where Burn's
//! decomposition records one node, and one ATen call, per elementary op.

// Burn marks its LibTorch backend deprecated; this module exists for the users who build it.
#![allow(deprecated)]

use burn::backend::{
    Autodiff, LibTorch,
    autodiff::{
        checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
        grads::Gradients,
        ops::{Backward, Ops, OpsKind},
    },
    libtorch::TchTensor,
    tensor::FloatTensor,
};

/// What the backward needs: the output with its LibTorch graph, and the leaves it was computed
/// from (each sharing its storage handle with the Burn tensor it came from).
#[derive(Clone, Debug)]
pub struct Saved<const N: usize> {
    out: TchTensor,
    leaves: [TchTensor; N],
}

#[derive(Debug)]
struct TorchBackward<const N: usize>;

impl<const N: usize> Backward<LibTorch, N> for TorchBackward<N> {
    type State = Saved<N>;

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let grad = grads.consume::<LibTorch>(&ops.node);
        let wanted: Vec<_> = ops
            .parents
            .into_iter()
            .enumerate()
            .filter_map(|(i, node)| node.map(|node| (i, node)))
            .collect();
        if wanted.is_empty() {
            return;
        }
        let saved = ops.state;
        // The vector-Jacobian product with `grad`, as the gradient of <out, grad>.
        let inner = (&saved.out.tensor * &grad.tensor).sum(saved.out.tensor.kind());
        let inputs: Vec<&tch::Tensor> = wanted
            .iter()
            .map(|(i, _)| &saved.leaves[*i].tensor)
            .collect();
        let computed =
            tch::with_grad(|| tch::Tensor::run_backward(&[inner], &inputs, false, false));
        for ((_, node), g) in wanted.into_iter().zip(computed) {
            grads.register::<LibTorch>(node.id, TchTensor::new(g));
        }
    }
}

/// `f(inputs)` on LibTorch without autograd.
pub fn plain<const N: usize>(
    inputs: [FloatTensor<LibTorch>; N],
    f: impl FnOnce(&[tch::Tensor; N]) -> tch::Tensor,
) -> FloatTensor<LibTorch> {
    let tensors = inputs.map(|t| t.tensor);
    TchTensor::new(tch::no_grad(|| f(&tensors)))
}

/// `f(inputs)` under `Autodiff<LibTorch>`: one node whose backward is LibTorch's (see the module
/// documentation); untracked inputs run `f` without autograd.
pub fn node<C: CheckpointStrategy, const N: usize>(
    inputs: [FloatTensor<Autodiff<LibTorch, C>>; N],
    f: impl FnOnce(&[tch::Tensor; N]) -> tch::Tensor,
) -> FloatTensor<Autodiff<LibTorch, C>> {
    let nodes = inputs.each_ref().map(|t| t.node());
    let inner: [TchTensor; N] = inputs.each_ref().map(|t| t.primitive().clone());
    match TorchBackward::<N>
        .prepare::<C>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            // The saved leaves and output keep a share of the storages Burn's tensors have, so
            // that burn-tch, which computes in place into a tensor whose storage it alone
            // holds, leaves the buffers LibTorch's backward reads alone until the backward.
            let leaves = inner.map(|t| TchTensor {
                tensor: t.tensor.detach().set_requires_grad(true),
                storage: t.storage,
            });
            let out = tch::with_grad(|| f(&leaves.each_ref().map(|t| t.tensor.shallow_clone())));
            let out = TchTensor::new(out);
            let value = TchTensor {
                tensor: out.tensor.detach(),
                storage: out.storage.clone(),
            };
            prep.finish(Saved { out, leaves }, value)
        }
        OpsKind::UnTracked(prep) => {
            let tensors = inner.map(|t| t.tensor);
            prep.finish(TchTensor::new(tch::no_grad(|| f(&tensors))))
        }
    }
}
