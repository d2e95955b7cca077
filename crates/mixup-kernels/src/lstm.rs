//! One LSTM layer's recurrence as a fused op (Flex), with a hand-written backward.
//!
//! [`lstm_recurrence`] takes the input projections of every step (`x_t W_in + b`, computed
//! beforehand by one matrix product over the whole sequence) and the recurrent weights, and runs
//! the recurrence `z_t = zx_t + h_{t-1} W_rec`, gates `i, f, g, o = σ, σ, tanh, σ` of the four
//! blocks of `z_t`, `c_t = f c_{t-1} + i g`, `h_t = o tanh(c_t)` from zero states, for a batch
//! of independent sequences per direction (index 0 of each tensor is one direction, index 1 the
//! other). It returns every `h_t`.
//!
//! Under autodiff the forward keeps the gate activations and cells; the backward walks the
//! steps in reverse once, computing the gate gradients of all rows of a step in one pass and
//! the hidden-state gradient through `W_rec` with one product per step, then the gradient of
//! `W_rec` as one product over all steps. The plain-Burn version of the same layer builds
//! about 15 autodiff nodes per step (and a full-size zeroed tensor per step for each slice's
//! backward); this op is one node.

use burn::{
    backend::{
        Autodiff, Flex,
        autodiff::{
            checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
            grads::Gradients,
            ops::{Backward, Ops, OpsKind},
        },
        backend_extension,
        flex::FlexTensor,
        ops::FloatTensorOps,
        tensor::FloatTensor,
    },
    tensor::{DType, Tensor, TensorData},
};
use rayon::prelude::*;

use crate::host::contiguous;

use crate::math;

/// The extension trait: a backend that can run the fused recurrence.
#[backend_extension(Flex, Autodiff)]
pub trait LstmBackend: burn::backend::Backend {
    /// `zx`: `[2, n, L, 4h]` input projections (gate blocks i, f, g, o along the last axis);
    /// `w`: `[2, h, 4h]` recurrent weights. Returns the hidden states `[2, n, L, h]`.
    fn lstm_recurrence(zx: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// Runs the fused recurrence (see the module documentation). `zx`: `[2, n, L, 4h]`,
/// `w`: `[2, h, 4h]`; returns `[2, n, L, h]`.
///
/// # Panics
///
/// Where [`crate::has_fused_kernels`] is false for the tensors' device (the op is Flex's), or if the shapes do not
/// agree or the tensors are not `f32`. Models call [`crate::lstm_layer()`], which picks the
/// backend's fused layer.
pub fn lstm_recurrence(zx: Tensor<4>, w: Tensor<3>) -> Tensor<4> {
    let [two, _, _, g4] = zx.dims();
    let [two_w, h, g4_w] = w.dims();
    assert!(
        two == 2 && two_w == 2 && g4 == 4 * h && g4_w == g4,
        "lstm_recurrence: zx {:?} and w {:?} do not fit",
        zx.dims(),
        w.dims()
    );
    assert!(
        zx.dtype() == DType::F32 && w.dtype() == DType::F32,
        "lstm_recurrence: f32 tensors only"
    );
    Tensor::from_dispatch(<burn::backend::Dispatch as LstmBackend>::lstm_recurrence(
        zx.into_dispatch(),
        w.into_dispatch(),
    ))
}

fn slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("lstm kernels: contiguous f32 tensor")
}

fn tensor(values: Vec<f32>, shape: [usize; 3]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

fn tensor4(values: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// What the backward needs from the forward.
#[derive(Clone, Debug)]
pub struct Saved {
    /// Gate activations i, f, g, o: `[2, n, L, 4h]`.
    gates: FlexTensor,
    /// Cells `c_t`: `[2, n, L, h]`.
    cells: FlexTensor,
    /// Hidden states `h_t`: `[2, n, L, h]` (the op's output).
    hidden: FlexTensor,
    /// Recurrent weights `[2, h, 4h]`.
    w: FlexTensor,
}

/// Rows of a step handed to one rayon task at least (a row's step is ~4h elements).
const MIN_ROWS_PER_TASK: usize = 16;

/// One row's step of the forward: `gates` holds `z_t` (input projection plus recurrent part)
/// on entry and the gate activations on return; `c` is updated to `c_t`; `h` and `cell`
/// receive `h_t` and `c_t`.
fn forward_row(gates: &mut [f32], c: &mut [f32], h: &mut [f32], cell: &mut [f32]) {
    let d = c.len();
    let (ifg, o) = gates.split_at_mut(3 * d);
    let (i_f, g) = ifg.split_at_mut(2 * d);
    for v in i_f.iter_mut() {
        *v = math::sigmoid(*v);
    }
    for v in g.iter_mut() {
        *v = math::tanh(*v);
    }
    for v in o.iter_mut() {
        *v = math::sigmoid(*v);
    }
    let (i, f) = i_f.split_at(d);
    for j in 0..d {
        c[j] = f[j] * c[j] + i[j] * g[j];
    }
    for j in 0..d {
        h[j] = o[j] * math::tanh(c[j]);
    }
    cell.copy_from_slice(c);
}

/// Forward on Flex tensors: the hidden states, and what the backward needs when `save`.
fn forward(zx: &FlexTensor, w: &FlexTensor, save: bool) -> (FlexTensor, Option<Saved>) {
    let zx = contiguous(zx);
    let w = contiguous(w);
    let shape = zx.layout().shape().clone();
    let (n, l, g4) = (shape[1], shape[2], shape[3]);
    let h = g4 / 4;
    let rows = 2 * n;
    let zxs = slice(&zx);
    // Row-major per sequence: row r's step t is at (r * l + t) * width.
    let mut hidden = vec![0f32; rows * l * h];
    let mut gates = vec![0f32; rows * l * g4];
    let mut cells = vec![0f32; rows * l * h];
    let mut c_state = vec![0f32; rows * h];
    let mut h_prev: Option<FlexTensor> = None;
    for t in 0..l {
        let rec = h_prev
            .take()
            .map(|hp| contiguous(&Flex::float_matmul(hp, w.clone())));
        let recs = rec.as_ref().map(slice);
        let mut h_next = vec![0f32; rows * h];
        gates
            .par_chunks_mut(l * g4)
            .zip(cells.par_chunks_mut(l * h))
            .zip(c_state.par_chunks_mut(h))
            .zip(h_next.par_chunks_mut(h))
            .with_min_len(MIN_ROWS_PER_TASK)
            .enumerate()
            .for_each(|(r, (((gs, cs), c), hn))| {
                let at = r * l + t;
                let z = &mut gs[t * g4..(t + 1) * g4];
                z.copy_from_slice(&zxs[at * g4..(at + 1) * g4]);
                if let Some(rec) = recs {
                    for (zk, qk) in z.iter_mut().zip(&rec[r * g4..(r + 1) * g4]) {
                        *zk += qk;
                    }
                }
                forward_row(z, c, hn, &mut cs[t * h..(t + 1) * h]);
            });
        for r in 0..rows {
            let at = r * l + t;
            hidden[at * h..(at + 1) * h].copy_from_slice(&h_next[r * h..(r + 1) * h]);
        }
        h_prev = Some(tensor(h_next, [2, n, h]));
    }
    let hidden = tensor4(hidden, [2, n, l, h]);
    let saved = save.then(|| Saved {
        gates: tensor4(gates, [2, n, l, g4]),
        cells: tensor4(cells, [2, n, l, h]),
        hidden: hidden.clone(),
        w,
    });
    (hidden, saved)
}

/// One row's step of the backward. `dh` holds the gradient reaching `h_t` (from the output
/// and from step t + 1) and is used as scratch; `dc` carries the cell gradient from step t + 1
/// on entry and to step t - 1 on return; `dz` receives the gradient of `z_t`.
fn backward_row(
    gs: &[f32],
    c: &[f32],
    c_prev: Option<&[f32]>,
    dh: &mut [f32],
    dc: &mut [f32],
    dz: &mut [f32],
) {
    let d = c.len();
    let (i, rest) = gs.split_at(d);
    let (f, rest) = rest.split_at(d);
    let (g, o) = rest.split_at(d);
    let (dz_i, rest) = dz.split_at_mut(d);
    let (dz_f, rest) = rest.split_at_mut(d);
    let (dz_g, dz_o) = rest.split_at_mut(d);
    for j in 0..d {
        let tc = math::tanh(c[j]);
        dz_o[j] = dh[j] * tc * o[j] * (1.0 - o[j]);
        // dh becomes the cell gradient of this step.
        dh[j] = dh[j] * o[j] * (1.0 - tc * tc) + dc[j];
    }
    let dct = &*dh;
    for j in 0..d {
        dz_i[j] = dct[j] * g[j] * i[j] * (1.0 - i[j]);
        dz_g[j] = dct[j] * i[j] * (1.0 - g[j] * g[j]);
        dc[j] = dct[j] * f[j];
    }
    match c_prev {
        Some(cp) => {
            for j in 0..d {
                dz_f[j] = dct[j] * cp[j] * f[j] * (1.0 - f[j]);
            }
        }
        None => dz_f.fill(0.0),
    }
}

/// Backward on Flex tensors: the gradients of `zx` and `w` given that of the output.
fn backward(saved: &Saved, grad: &FlexTensor) -> (FlexTensor, FlexTensor) {
    let grad = contiguous(grad);
    let shape = saved.gates.layout().shape().clone();
    let (n, l, g4) = (shape[1], shape[2], shape[3]);
    let h = g4 / 4;
    let rows = 2 * n;
    let gates = slice(&saved.gates);
    let cells = slice(&saved.cells);
    let hidden = slice(&saved.hidden);
    let dh_out = slice(&grad);
    let w_t = contiguous(&Flex::float_swap_dims(saved.w.clone(), 1, 2)); // [2, 4h, h]
    let mut dz_all = vec![0f32; rows * l * g4];
    let mut dh_next = vec![0f32; rows * h];
    let mut dc_next = vec![0f32; rows * h];
    for t in (0..l).rev() {
        let mut dz_t = vec![0f32; rows * g4];
        dz_t.par_chunks_mut(g4)
            .zip(dh_next.par_chunks_mut(h))
            .zip(dc_next.par_chunks_mut(h))
            .with_min_len(MIN_ROWS_PER_TASK)
            .enumerate()
            .for_each(|(r, ((dz, dh), dc))| {
                let at = r * l + t;
                for (a, b) in dh.iter_mut().zip(&dh_out[at * h..(at + 1) * h]) {
                    *a += b;
                }
                let c_prev = (t > 0).then(|| &cells[(at - 1) * h..at * h]);
                let gs = &gates[at * g4..(at + 1) * g4];
                backward_row(gs, &cells[at * h..(at + 1) * h], c_prev, dh, dc, dz);
            });
        for r in 0..rows {
            let at = r * l + t;
            dz_all[at * g4..(at + 1) * g4].copy_from_slice(&dz_t[r * g4..(r + 1) * g4]);
        }
        if t > 0 {
            let dh = Flex::float_matmul(tensor(dz_t, [2, n, g4]), w_t.clone());
            dh_next.copy_from_slice(slice(&contiguous(&dh)));
        }
    }
    // dW = sum over steps of h_{t-1}^T dz_t: one product over every (row, step) pair.
    let mut h_shift = vec![0f32; rows * l * h];
    for r in (0..rows).filter(|_| l > 0) {
        let (to, from) = ((r * l + 1) * h, r * l * h);
        let len = (l - 1) * h;
        h_shift[to..to + len].copy_from_slice(&hidden[from..from + len]);
    }
    let h_shift_t = Flex::float_swap_dims(tensor(h_shift, [2, n * l, h]), 1, 2);
    let dz_all = tensor(dz_all, [2, n * l, g4]);
    let dw = Flex::float_matmul(h_shift_t, dz_all.clone());
    (
        Flex::float_reshape(dz_all, burn::tensor::Shape::new([2, n, l, g4])),
        dw,
    )
}

impl LstmBackend for Flex {
    fn lstm_recurrence(zx: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        forward(&zx, &w, false).0
    }
}

#[derive(Debug)]
struct LstmBackward;

impl Backward<Flex, 2> for LstmBackward {
    type State = Saved;

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_zx, node_w] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (dzx, dw) = backward(&ops.state, &grad);
        if let Some(node) = node_zx {
            grads.register::<Flex>(node.id, dzx);
        }
        if let Some(node) = node_w {
            grads.register::<Flex>(node.id, dw);
        }
    }
}

impl<C: CheckpointStrategy> LstmBackend for Autodiff<Flex, C> {
    fn lstm_recurrence(zx: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        match LstmBackward
            .prepare::<C>([zx.node(), w.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (hidden, saved) = forward(zx.primitive(), w.primitive(), true);
                let saved = saved.expect("forward saved its state");
                prep.finish(saved, hidden)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(forward(zx.primitive(), w.primitive(), false).0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{lstm_reference as reference, max_diff};
    use burn::tensor::{Device, Distribution};

    #[test]
    fn forward_and_gradients_equal_plain_burn() {
        let device = Device::flex().autodiff();
        device.seed(5);
        let (n, l, h) = (3, 6, 5);
        let zx = Tensor::<4>::random([2, n, l, 4 * h], Distribution::Normal(0.0, 1.0), &device)
            .require_grad();
        let w = Tensor::<3>::random([2, h, 4 * h], Distribution::Normal(0.0, 0.5), &device)
            .require_grad();
        // A loss that weights every output differently, so every gradient path counts.
        let weights = Tensor::<4>::random([2, n, l, h], Distribution::Normal(0.0, 1.0), &device);
        let fused = lstm_recurrence(zx.clone(), w.clone());
        let plain = reference(zx.clone(), w.clone());
        assert!(max_diff(fused.clone(), plain.clone()) < 1e-5);
        let g_fused = (fused * weights.clone()).sum().backward();
        let g_plain = (plain * weights).sum().backward();
        let grad = |t: &Tensor<4>, g| t.grad(g).expect("grad");
        let d_zx = max_diff(grad(&zx, &g_fused), grad(&zx, &g_plain));
        let d_w = max_diff(
            w.grad(&g_fused).expect("grad"),
            w.grad(&g_plain).expect("grad"),
        );
        assert!(d_zx < 1e-5, "zx gradients differ by {d_zx}");
        assert!(d_w < 1e-5, "w gradients differ by {d_w}");
    }

    #[test]
    fn runs_without_autodiff() {
        let device = Device::flex();
        let zx = Tensor::<4>::random([2, 2, 3, 8], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<3>::random([2, 2, 8], Distribution::Normal(0.0, 1.0), &device);
        let d = max_diff(lstm_recurrence(zx.clone(), w.clone()), reference(zx, w));
        assert!(d < 1e-5);
    }
}
