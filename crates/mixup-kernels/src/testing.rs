//! Test helpers shared by the kernels' reference tests.

use burn::tensor::{Tensor, activation};

/// The LSTM recurrence in plain Burn ops, step by step (what the fused ops replace): `zx` holds
/// the input projections `[2, n, L, 4h]` (gate blocks i, f, g, o), `w` the recurrent weights
/// `[2, h, 4h]`; returns the hidden states `[2, n, L, h]` from zero states.
pub fn lstm_reference(zx: Tensor<4>, w: Tensor<3>) -> Tensor<4> {
    let [_, n, l, g4] = zx.dims();
    let h = g4 / 4;
    let device = zx.device();
    let mut hidden = Tensor::<3>::zeros([2, n, h], &device);
    let mut cell = Tensor::<3>::zeros([2, n, h], &device);
    let mut out = Vec::new();
    for t in 0..l {
        let z = zx.clone().narrow(2, t, 1).reshape([2, n, g4]) + hidden.matmul(w.clone());
        let s = activation::sigmoid(z.clone());
        let i = s.clone().narrow(2, 0, h);
        let f = s.clone().narrow(2, h, h);
        let o = s.narrow(2, 3 * h, h);
        let g = z.narrow(2, 2 * h, h).tanh();
        cell = f * cell + i * g;
        hidden = o * cell.clone().tanh();
        out.push(hidden.clone());
    }
    Tensor::stack(out, 2)
}

/// The largest absolute difference between two tensors.
pub fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    (a - b).abs().max().into_scalar()
}
