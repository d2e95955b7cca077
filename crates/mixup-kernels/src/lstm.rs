//! One bidirectional LSTM layer's recurrence as a fused op (Flex), with a hand-written backward.
//!
//! [`lstm_recurrence`] takes the input projections of every position for both directions
//! (`x_t W_in + b`, computed beforehand by one matrix product over the whole sequence, `[n, L,
//! 8h]`) and the recurrent weights, and runs the recurrence `z_t = zx_t + h_{t-1} W_rec`, gates
//! `i, f, g, o = σ, σ, tanh, σ` of the four blocks of `z_t`, `c_t = f c_{t-1} + i g`, `h_t = o
//! tanh(c_t)` from zero states, for each row and direction. Direction 1 runs over each row
//! reversed within its valid length (given as `lens`), reading and writing the positions in that
//! order, so the layer needs no gathers around it; its output `[n, L, 2h]` is the next layer's
//! input as it is.
//!
//! The rows are split into one block per thread of rayon's pool, and each thread runs both
//! directions of its rows through every step on its own (one small matrix product per step and
//! direction, below Flex's threshold for threading it): the threads meet once per call, not
//! once or twice per step.
//!
//! Under autodiff the forward keeps the gate activations and cells; the backward walks the
//! steps in reverse once, computing the gate gradients of a step row by row and the
//! hidden-state gradient through `W_rec` with one product per step and direction, then the
//! gradient of `W_rec` as one product over all steps. The plain-Burn version of the same layer
//! builds about 15 autodiff nodes per step (and a full-size zeroed tensor per step for each
//! slice's backward); this op is one node.

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
    /// `zx`: `[n, L, 8h]` input projections (per position, direction 0's gate blocks i, f, g, o,
    /// then direction 1's); `w`: `[2, h, 4h]` recurrent weights; `lens`: each row's valid length
    /// (direction 1 runs over the row reversed within it), or empty when direction 1's input is
    /// already in its running order. Returns the hidden states `[n, L, 2h]`.
    fn lstm_recurrence(
        zx: FloatTensor<Self>,
        w: FloatTensor<Self>,
        lens: Vec<usize>,
    ) -> FloatTensor<Self>;
}

/// Runs the fused recurrence of both directions (see the module documentation).
///
/// `zx`: `[n, L, 8h]`, per position direction 0's input projections (gate blocks i, f, g, o),
/// then direction 1's; `w`: `[2, h, 4h]`. With `lens` (one per row, each at most `L`),
/// direction 1 runs over each row reversed within its length and then over its padding, as
/// the reading-order direction does, and its hidden states are written back at the positions
/// they belong to; with an empty `lens` it runs in position order (the caller reversed its
/// input). Returns `[n, L, 2h]`: per position direction 0's hidden state, then direction 1's.
///
/// # Panics
///
/// Where [`crate::has_fused_kernels`] is false for the tensors' device (the op is Flex's), or if
/// the shapes or lengths do not agree or the tensors are not `f32`. Models call
/// [`crate::bilstm_layer()`] or [`crate::lstm_layer()`].
pub fn lstm_recurrence(zx: Tensor<3>, w: Tensor<3>, lens: Vec<usize>) -> Tensor<3> {
    let [n, l, g8] = zx.dims();
    let [two_w, h, g4_w] = w.dims();
    assert!(
        two_w == 2 && g8 == 8 * h && g4_w == 4 * h,
        "lstm_recurrence: zx {:?} and w {:?} do not fit",
        zx.dims(),
        w.dims()
    );
    assert!(
        lens.is_empty() || (lens.len() == n && lens.iter().all(|&k| k <= l)),
        "lstm_recurrence: {} lengths for {n} rows of {l} positions ({lens:?})",
        lens.len()
    );
    assert!(
        zx.dtype() == DType::F32 && w.dtype() == DType::F32,
        "lstm_recurrence: f32 tensors only"
    );
    Tensor::from_dispatch(<burn::backend::Dispatch as LstmBackend>::lstm_recurrence(
        zx.into_dispatch(),
        w.into_dispatch(),
        lens,
    ))
}

fn slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("lstm kernels: contiguous f32 tensor")
}

fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// What the backward needs from the forward.
#[derive(Clone, Debug)]
pub struct Saved {
    /// Gate activations i, f, g, o: `[n, L, 2, 4h]`, at the positions they were computed for.
    gates: FlexTensor,
    /// Cells `c_t`: `[n, L, 2, h]`.
    cells: FlexTensor,
    /// Hidden states `h_t`: `[n, L, 2, h]` (the op's output).
    hidden: FlexTensor,
    /// Recurrent weights `[2, h, 4h]`.
    w: FlexTensor,
    /// As given to the op.
    lens: Vec<usize>,
}

/// The sizes of one call, and where each step of each row and direction lives.
#[derive(Clone, Copy)]
struct Geometry<'a> {
    n: usize,
    l: usize,
    lens: &'a [usize],
}

impl Geometry<'_> {
    /// The position direction `dir` of row `r` reads and writes at step `s`.
    #[inline(always)]
    fn pos(&self, dir: usize, r: usize, s: usize) -> usize {
        match self.lens.get(r) {
            Some(&len) if dir == 1 && s < len => len - 1 - s,
            _ => s,
        }
    }

    /// The index (in units of one direction's vector) of row `r`'s step `s` in direction `dir`
    /// within `[rows, L, 2, *]` tensors whose first row is `r0`.
    #[inline(always)]
    fn at(&self, dir: usize, r: usize, s: usize, r0: usize) -> usize {
        ((r - r0) * self.l + self.pos(dir, r, s)) * 2 + dir
    }

    /// Rows per task: one contiguous block of rows per thread of the pool; each task runs both
    /// directions over all steps of its rows, so threads meet once per call, not once per step.
    fn chunk_rows(&self) -> usize {
        self.n.div_ceil(rayon::current_num_threads().max(1)).max(1)
    }
}

/// `w[dir]` as its own `[h, 4h]` tensor, and transposed (`[4h, h]`) when `transposed`.
fn direction_weights(w: &FlexTensor, h: usize, transposed: bool) -> [FlexTensor; 2] {
    let w = contiguous(w);
    let ws = slice(&w);
    let size = h * 4 * h;
    [0, 1].map(|d| {
        let m = tensor(ws[d * size..(d + 1) * size].to_vec(), [h, 4 * h]);
        if transposed {
            contiguous(&Flex::float_swap_dims(m, 0, 1))
        } else {
            m
        }
    })
}

/// One row's step of the forward: `gates` holds `z_t` (input projection plus recurrent part)
/// on entry and the gate activations on return; `c` is updated to `c_t`; `h` and `cell`
/// receive `h_t` and `c_t`. A struct with an always-inlined `call`, so that
/// [`math::vectorized`] compiles the loops for the CPU's vectors.
struct ForwardRow<'a> {
    gates: &'a mut [f32],
    c: &'a mut [f32],
    h: &'a mut [f32],
    cell: &'a mut [f32],
}

impl pulp::NullaryFnOnce for ForwardRow<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        forward_row(self.gates, self.c, self.h, self.cell);
    }
}

#[inline(always)]
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

/// Splits a `[n, ...]` buffer of `width` values per row into consecutive blocks of `rows` rows
/// (none when the buffer is empty, e.g. sequences of length 0).
fn row_blocks(buf: &mut [f32], rows: usize, width: usize) -> Vec<&mut [f32]> {
    if buf.is_empty() {
        return Vec::new();
    }
    buf.chunks_mut(rows * width).collect()
}

/// Forward on Flex tensors: the hidden states `[n, L, 2h]`, and what the backward needs when
/// `save`.
fn forward(
    zx: &FlexTensor,
    w: &FlexTensor,
    lens: Vec<usize>,
    save: bool,
) -> (FlexTensor, Option<Saved>) {
    let zx = contiguous(zx);
    let shape = zx.layout().shape().clone();
    let (n, l) = (shape[0], shape[1]);
    let h = shape[2] / 8;
    let g4 = 4 * h;
    let geo = Geometry { n, l, lens: &lens };
    let zxs = slice(&zx);
    let w_dir = direction_weights(w, h, false);
    let mut hidden = vec![0f32; n * l * 2 * h];
    let mut gates = vec![0f32; n * l * 2 * g4];
    let mut cells = vec![0f32; n * l * 2 * h];
    let rows = geo.chunk_rows();
    row_blocks(&mut hidden, rows, l * 2 * h)
        .into_par_iter()
        .zip(row_blocks(&mut gates, rows, l * 2 * g4))
        .zip(row_blocks(&mut cells, rows, l * 2 * h))
        .enumerate()
        .for_each(|(k, ((hid, gs), cs))| {
            let r0 = k * rows;
            let nr = hid.len() / (l * 2 * h);
            let mut c_state = vec![0f32; 2 * nr * h];
            let mut h_prev: [Option<FlexTensor>; 2] = [None, None];
            for s in 0..l {
                for (dir, w) in w_dir.iter().enumerate() {
                    let rec = h_prev[dir]
                        .take()
                        .map(|hp| contiguous(&Flex::float_matmul(hp, w.clone())));
                    let recs = rec.as_ref().map(slice);
                    let mut h_next = vec![0f32; nr * h];
                    for i in 0..nr {
                        let r = r0 + i;
                        let (at, local) = (geo.at(dir, r, s, 0), geo.at(dir, r, s, r0));
                        let z = &mut gs[local * g4..(local + 1) * g4];
                        z.copy_from_slice(&zxs[at * g4..(at + 1) * g4]);
                        if let Some(rec) = recs {
                            for (zk, qk) in z.iter_mut().zip(&rec[i * g4..(i + 1) * g4]) {
                                *zk += qk;
                            }
                        }
                        let c = &mut c_state[(dir * nr + i) * h..(dir * nr + i + 1) * h];
                        let hn = &mut h_next[i * h..(i + 1) * h];
                        math::vectorized(ForwardRow {
                            gates: z,
                            c,
                            h: hn,
                            cell: &mut cs[local * h..(local + 1) * h],
                        });
                        hid[local * h..(local + 1) * h].copy_from_slice(hn);
                    }
                    h_prev[dir] = Some(tensor(h_next, [nr, h]));
                }
            }
        });
    let hidden = tensor(hidden, [n, l, 2 * h]);
    let saved = save.then(|| Saved {
        gates: tensor(gates, [n, l, 2, g4]),
        cells: tensor(cells, [n, l, 2, h]),
        hidden: hidden.clone(),
        w: contiguous(w),
        lens,
    });
    (hidden, saved)
}

/// One row's step of the backward. `dh` holds the gradient reaching `h_t` (from the output
/// and from step t + 1) and is used as scratch; `dc` carries the cell gradient from step t + 1
/// on entry and to step t - 1 on return; `dz` receives the gradient of `z_t`.
struct BackwardRow<'a> {
    gs: &'a [f32],
    c: &'a [f32],
    c_prev: Option<&'a [f32]>,
    dh: &'a mut [f32],
    dc: &'a mut [f32],
    dz: &'a mut [f32],
}

impl pulp::NullaryFnOnce for BackwardRow<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        backward_row(self.gs, self.c, self.c_prev, self.dh, self.dc, self.dz);
    }
}

#[inline(always)]
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

/// Backward on Flex tensors: the gradients of `zx` (`[n, L, 8h]`) and `w` given that of the
/// output.
fn backward(saved: &Saved, grad: &FlexTensor) -> (FlexTensor, FlexTensor) {
    let grad = contiguous(grad);
    let shape = saved.gates.layout().shape().clone();
    let (n, l, g4) = (shape[0], shape[1], shape[3]);
    let h = g4 / 4;
    let geo = Geometry {
        n,
        l,
        lens: &saved.lens,
    };
    let gates = slice(&saved.gates);
    let cells = slice(&saved.cells);
    let hidden = slice(&saved.hidden);
    let dh_out = slice(&grad);
    let w_t = direction_weights(&saved.w, h, true); // [4h, h] each
    let mut dz_all = vec![0f32; n * l * 2 * g4];
    // h_{t-1} beside the position of step t (zero at step 0), for dW.
    let mut h_shift = vec![0f32; n * l * 2 * h];
    let rows = geo.chunk_rows();
    row_blocks(&mut dz_all, rows, l * 2 * g4)
        .into_par_iter()
        .zip(row_blocks(&mut h_shift, rows, l * 2 * h))
        .enumerate()
        .for_each(|(k, (dz_rows, hs_rows))| {
            let r0 = k * rows;
            let nr = dz_rows.len() / (l * 2 * g4);
            let mut dh_next = [vec![0f32; nr * h], vec![0f32; nr * h]];
            let mut dc_next = [vec![0f32; nr * h], vec![0f32; nr * h]];
            for s in (0..l).rev() {
                for (dir, w_t) in w_t.iter().enumerate() {
                    let mut dz_t = vec![0f32; nr * g4];
                    for i in 0..nr {
                        let r = r0 + i;
                        let at = geo.at(dir, r, s, 0);
                        let prev = (s > 0).then(|| geo.at(dir, r, s - 1, 0));
                        let dh = &mut dh_next[dir][i * h..(i + 1) * h];
                        for (a, b) in dh.iter_mut().zip(&dh_out[at * h..(at + 1) * h]) {
                            *a += b;
                        }
                        let c_prev = prev.map(|p| &cells[p * h..(p + 1) * h]);
                        let dz = &mut dz_t[i * g4..(i + 1) * g4];
                        math::vectorized(BackwardRow {
                            gs: &gates[at * g4..(at + 1) * g4],
                            c: &cells[at * h..(at + 1) * h],
                            c_prev,
                            dh,
                            dc: &mut dc_next[dir][i * h..(i + 1) * h],
                            dz,
                        });
                        let local = geo.at(dir, r, s, r0);
                        dz_rows[local * g4..(local + 1) * g4].copy_from_slice(dz);
                        if let Some(p) = prev {
                            hs_rows[local * h..(local + 1) * h]
                                .copy_from_slice(&hidden[p * h..(p + 1) * h]);
                        }
                    }
                    if s > 0 {
                        let dh = Flex::float_matmul(tensor(dz_t, [nr, g4]), w_t.clone());
                        dh_next[dir].copy_from_slice(slice(&contiguous(&dh)));
                    }
                }
            }
        });
    // dW[dir] = sum over (row, step) of h_{t-1}^T dz_t: one product per direction.
    let h_shift = Flex::float_permute(tensor(h_shift, [n * l, 2, h]), &[1, 2, 0]); // [2, h, nL]
    let dz_all = tensor(dz_all, [n * l, 2, g4]);
    let dz_dir = Flex::float_swap_dims(dz_all.clone(), 0, 1); // [2, nL, 4h]
    let dw = Flex::float_matmul(h_shift, dz_dir);
    (
        Flex::float_reshape(dz_all, burn::tensor::Shape::new([n, l, 2 * g4])),
        dw,
    )
}

impl LstmBackend for Flex {
    fn lstm_recurrence(
        zx: FloatTensor<Self>,
        w: FloatTensor<Self>,
        lens: Vec<usize>,
    ) -> FloatTensor<Self> {
        forward(&zx, &w, lens, false).0
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
    fn lstm_recurrence(
        zx: FloatTensor<Self>,
        w: FloatTensor<Self>,
        lens: Vec<usize>,
    ) -> FloatTensor<Self> {
        match LstmBackward
            .prepare::<C>([zx.node(), w.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (hidden, saved) = forward(zx.primitive(), w.primitive(), lens, true);
                let saved = saved.expect("forward saved its state");
                prep.finish(saved, hidden)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(forward(zx.primitive(), w.primitive(), lens, false).0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{lstm_reference as reference, max_diff};
    use burn::tensor::{Device, Distribution, Int};

    /// The index reversing each row within its length (padding left in place), `[n, L, d]`.
    fn reverse_index(lens: &[usize], l: usize, d: usize, device: &Device) -> Tensor<3, Int> {
        let idx: Vec<i64> = lens
            .iter()
            .flat_map(|&len| (0..l).map(move |t| if t < len { len - 1 - t } else { t } as i64))
            .collect();
        Tensor::<1, Int>::from_data(TensorData::new(idx, [lens.len() * l]), device)
            .reshape([lens.len(), l, 1])
            .expand([lens.len(), l, d])
    }

    /// The fused op from `[2, n, L, 4h]` projections, as `[2, n, L, h]`.
    fn fused(zx: Tensor<4>, w: Tensor<3>, lens: &[usize]) -> Tensor<4> {
        let [_, n, l, g4] = zx.dims();
        let zx = zx.permute([1, 2, 0, 3]).reshape([n, l, 2 * g4]);
        lstm_recurrence(zx, w, lens.to_vec())
            .reshape([n, l, 2, g4 / 4])
            .permute([2, 0, 1, 3])
    }

    /// The plain-Burn reference, direction 1 reversed within `lens` by gathers when given.
    fn plain(zx: Tensor<4>, w: Tensor<3>, lens: &[usize]) -> Tensor<4> {
        if lens.is_empty() {
            return reference(zx, w);
        }
        let [_, n, l, g4] = zx.dims();
        let device = zx.device();
        let flip = |t: Tensor<4>, d| {
            let fwd = t.clone().narrow(0, 0, 1);
            let rev = t
                .narrow(0, 1, 1)
                .reshape([n, l, d])
                .gather(1, reverse_index(lens, l, d, &device))
                .reshape([1, n, l, d]);
            Tensor::cat(vec![fwd, rev], 0)
        };
        flip(reference(flip(zx, g4), w), g4 / 4)
    }

    fn check(lens: &[usize]) {
        let device = Device::flex().autodiff();
        device.seed(5);
        let (n, l, h) = (3, 6, 5);
        let zx = Tensor::<4>::random([2, n, l, 4 * h], Distribution::Normal(0.0, 1.0), &device)
            .require_grad();
        let w = Tensor::<3>::random([2, h, 4 * h], Distribution::Normal(0.0, 0.5), &device)
            .require_grad();
        // A loss that weights every output differently, so every gradient path counts.
        let weights = Tensor::<4>::random([2, n, l, h], Distribution::Normal(0.0, 1.0), &device);
        let got = fused(zx.clone(), w.clone(), lens);
        let want = plain(zx.clone(), w.clone(), lens);
        let d = max_diff(got.clone(), want.clone());
        assert!(d < 1e-5, "outputs differ by {d} (lens {lens:?})");
        let g_fused = (got * weights.clone()).sum().backward();
        let g_plain = (want * weights).sum().backward();
        let grad = |t: &Tensor<4>, g| t.grad(g).expect("grad");
        let d_zx = max_diff(grad(&zx, &g_fused), grad(&zx, &g_plain));
        let d_w = max_diff(
            w.grad(&g_fused).expect("grad"),
            w.grad(&g_plain).expect("grad"),
        );
        assert!(d_zx < 1e-5, "zx gradients differ by {d_zx} (lens {lens:?})");
        assert!(d_w < 1e-5, "w gradients differ by {d_w} (lens {lens:?})");
    }

    #[test]
    fn forward_and_gradients_equal_plain_burn() {
        check(&[]);
    }

    /// Direction 1 reversed inside the op equals reversing its input and output by gathers,
    /// for full, short, one-token and empty rows.
    #[test]
    fn in_op_reversal_equals_gathers() {
        check(&[6, 3, 1]);
        check(&[0, 6, 4]);
    }

    /// Empty batches and sequences of length 0 give empty outputs and gradients, not panics.
    #[test]
    fn empty_shapes_run() {
        let device = Device::flex().autodiff();
        for (n, l) in [(0, 3), (2, 0), (0, 0)] {
            let zx = Tensor::<3>::zeros([n, l, 16], &device).require_grad();
            let w = Tensor::<3>::zeros([2, 2, 8], &device).require_grad();
            let lens = vec![0; n];
            let out = lstm_recurrence(zx.clone(), w.clone(), lens);
            assert_eq!(out.dims(), [n, l, 4]);
            let g = out.sum().backward();
            assert_eq!(zx.grad(&g).expect("grad").dims(), [n, l, 16]);
        }
    }

    /// Several row blocks (one per pool thread) give what one block gives.
    #[test]
    fn row_blocks_do_not_change_the_result() {
        let device = Device::flex();
        device.seed(2);
        let (n, l, h) = (7, 4, 3);
        let zx = Tensor::<4>::random([2, n, l, 4 * h], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<3>::random([2, h, 4 * h], Distribution::Normal(0.0, 0.5), &device);
        let lens = vec![4, 1, 2, 3, 4, 0, 2];
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("pool")
            .install(|| fused(zx.clone(), w.clone(), &lens));
        let three = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("pool")
            .install(|| fused(zx.clone(), w.clone(), &lens));
        assert_eq!(max_diff(one.clone(), three), 0.0);
        assert!(max_diff(one, plain(zx, w, &lens)) < 1e-5);
    }
}
