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
/// Where [`crate::has_fused_lstm`] is false for the tensors' device, or if the shapes do not
/// agree or the tensors are not `f32`. Callers check `has_fused_lstm` and fall back to plain
/// Burn ops.
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

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn contiguous(t: &FlexTensor) -> FlexTensor {
    if t.is_contiguous() && t.layout().start_offset() == 0 {
        t.clone()
    } else {
        t.to_contiguous()
    }
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

/// Forward on Flex tensors; keeps what the backward needs when `save`.
fn forward(zx: &FlexTensor, w: &FlexTensor, save: bool) -> (FlexTensor, Option<Saved>) {
    let zx = contiguous(zx);
    let w = contiguous(w);
    let shape = zx.layout().shape().clone();
    let (n, l, g4) = (shape[1], shape[2], shape[3]);
    let h = g4 / 4;
    let rows = 2 * n;
    let zxs = slice(&zx);
    let mut hidden = vec![0f32; rows * l * h];
    let mut gates = if save {
        vec![0f32; rows * l * g4]
    } else {
        Vec::new()
    };
    let mut cells = if save {
        vec![0f32; rows * l * h]
    } else {
        Vec::new()
    };
    let mut c_prev = vec![0f32; rows * h];
    let mut h_prev: Option<FlexTensor> = None;
    for t in 0..l {
        let rec = h_prev
            .take()
            .map(|hp| contiguous(&Flex::float_matmul(hp, w.clone())));
        let recs = rec.as_ref().map(slice);
        let mut h_next = vec![0f32; rows * h];
        for r in 0..rows {
            let at = r * l + t;
            let z = &zxs[at * g4..(at + 1) * g4];
            let c_row = &mut c_prev[r * h..(r + 1) * h];
            let h_row = &mut h_next[r * h..(r + 1) * h];
            for j in 0..h {
                let mut zs = [z[j], z[h + j], z[2 * h + j], z[3 * h + j]];
                if let Some(rec) = recs {
                    let q = &rec[r * g4..(r + 1) * g4];
                    zs[0] += q[j];
                    zs[1] += q[h + j];
                    zs[2] += q[2 * h + j];
                    zs[3] += q[3 * h + j];
                }
                let i = sigmoid(zs[0]);
                let f = sigmoid(zs[1]);
                let g = zs[2].tanh();
                let o = sigmoid(zs[3]);
                let c = f * c_row[j] + i * g;
                let hv = o * c.tanh();
                c_row[j] = c;
                h_row[j] = hv;
                if save {
                    let gs = &mut gates[at * g4..(at + 1) * g4];
                    gs[j] = i;
                    gs[h + j] = f;
                    gs[2 * h + j] = g;
                    gs[3 * h + j] = o;
                    cells[at * h + j] = c;
                }
            }
            hidden[at * h..(at + 1) * h].copy_from_slice(h_row);
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
        for r in 0..rows {
            let at = r * l + t;
            let gs = &gates[at * g4..(at + 1) * g4];
            let dz = &mut dz_t[r * g4..(r + 1) * g4];
            for j in 0..h {
                let k = r * h + j;
                let dh = dh_out[at * h + j] + dh_next[k];
                let (i, f, g, o) = (gs[j], gs[h + j], gs[2 * h + j], gs[3 * h + j]);
                let c = cells[at * h + j];
                let c_prev = if t > 0 { cells[(at - 1) * h + j] } else { 0.0 };
                let tc = c.tanh();
                let d_o = dh * tc;
                let dc = dh * o * (1.0 - tc * tc) + dc_next[k];
                dc_next[k] = dc * f;
                dz[j] = dc * g * i * (1.0 - i);
                dz[h + j] = dc * c_prev * f * (1.0 - f);
                dz[2 * h + j] = dc * i * (1.0 - g * g);
                dz[3 * h + j] = d_o * o * (1.0 - o);
            }
            dz_all[at * g4..(at + 1) * g4].copy_from_slice(dz);
        }
        if t > 0 {
            let dh = Flex::float_matmul(tensor(dz_t, [2, n, g4]), w_t.clone());
            dh_next.copy_from_slice(slice(&contiguous(&dh)));
        }
    }
    // dW = sum over steps of h_{t-1}^T dz_t: one product over every (row, step) pair.
    let mut h_shift = vec![0f32; rows * l * h];
    for r in 0..rows {
        for t in 1..l {
            let (to, from) = ((r * l + t) * h, (r * l + t - 1) * h);
            h_shift[to..to + h].copy_from_slice(&hidden[from..from + h]);
        }
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
    use burn::tensor::{Device, Distribution, activation};

    /// The recurrence in plain Burn ops (what the fused op replaces).
    fn reference(zx: Tensor<4>, w: Tensor<3>) -> Tensor<4> {
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

    fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

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
