//! Invariants every [`MixingPoints`] model must keep, checked at every one of its points
//! (test-only).

use burn::{
    module::Module,
    optim::GradientsParams,
    tensor::{Bool, Device, Int, Tensor, TensorData},
};
use mixup_core::{MixParams, MixState, mix_mask};

use crate::mixing::MixingPoints;

/// Three right-padded rows of lengths 5, 3 and 1 over a vocabulary of 12.
pub(crate) fn toy_batch(device: &Device) -> (Tensor<2, Int>, Tensor<2, Bool>) {
    let ids = Tensor::<2, Int>::from_data(
        TensorData::new(vec![2i64, 3, 4, 5, 6, 7, 8, 9, 0, 0, 4, 0, 0, 0, 0], [3, 5]),
        device,
    );
    let mask = ids.clone().not_equal_elem(0);
    (ids, mask)
}

/// The same batch with other ids under the padding.
fn toy_batch_other_padding(device: &Device) -> Tensor<2, Int> {
    Tensor::<2, Int>::from_data(
        TensorData::new(
            vec![2i64, 3, 4, 5, 6, 7, 8, 9, 11, 10, 4, 1, 7, 3, 2],
            [3, 5],
        ),
        device,
    )
}

fn close(a: Tensor<2>, b: Tensor<2>, what: &str) {
    let (a, b) = (a.into_data(), b.into_data());
    let diff = a
        .clone()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("a")
        .iter()
        .zip(b.clone().convert::<f32>().try_to_vec::<f32>().expect("b"))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(
        diff < 1e-4,
        "{what}: outputs differ by {diff}\n{a:?}\n{b:?}"
    );
}

/// Checks, at every mixing point of the model `build` makes (dropout off or irrelevant):
/// lambda 1 is the identity (same batch and separate batch); padding ids never change the
/// output, mixed or not; a mixed sequence state carries the union of both masks; gradients
/// reach the embedding rows of the partner; and a record round-trip keeps the outputs.
pub(crate) fn check_mixing_points<M: Module + MixingPoints>(
    build: impl Fn(&Device) -> M,
    embedding: impl Fn(&M) -> burn::module::ParamId,
) {
    let device = Device::flex();
    let m = build(&device).valid();
    let (ids, mask) = toy_batch(&device);
    let other = toy_batch_other_padding(&device);
    let plain = m.forward(ids.clone(), mask.clone());
    close(
        m.forward(other.clone(), mask.clone()),
        plain.clone(),
        "padding ids, unmixed",
    );
    // A row's output does not depend on how far its batch is padded: row 1 (3 tokens) alone,
    // unpadded, gives the same logits as inside the batch padded to 5.
    let alone = Tensor::<2, Int>::from_data(TensorData::new(vec![7i64, 8, 9], [1, 3]), &device);
    let alone_mask = alone.clone().not_equal_elem(0);
    close(
        m.forward(alone, alone_mask),
        plain.clone().slice([1..2]),
        "a row alone vs the same row in a padded batch",
    );
    let params = MixParams {
        lambdas: vec![0.3, 0.6, 0.8],
        partners: vec![1, 2, 0],
    };
    for point in 0..m.num_points() {
        let ident = MixParams::with_lambda(1.0, vec![1, 2, 0]);
        close(
            m.forward_mixed(ids.clone(), mask.clone(), point, &ident),
            plain.clone(),
            &format!("lambda 1 at point {point}"),
        );
        let flipped_ids = ids.clone().flip([0]);
        let flipped_mask = flipped_ids.clone().not_equal_elem(0);
        close(
            m.forward_mixed_pair(
                (ids.clone(), mask.clone()),
                (flipped_ids, flipped_mask),
                point,
                &[1.0, 1.0, 1.0],
            ),
            plain.clone(),
            &format!("lambda 1 with a separate batch at point {point}"),
        );
        close(
            m.forward_mixed(other.clone(), mask.clone(), point, &params),
            m.forward_mixed(ids.clone(), mask.clone(), point, &params),
            &format!("padding ids, mixed at point {point}"),
        );
        let state = m.forward_to(ids.clone(), mask.clone(), point);
        if let MixState::Sequence { mask: own, .. } = &state {
            let own = own.clone();
            let mixed = state
                .clone()
                .mix(state.partner_rows(&params), &params.lambdas);
            let MixState::Sequence { mask: got, .. } = mixed else {
                panic!("sequence")
            };
            // The state's own mask (a model may add positions, e.g. [CLS]).
            let want = mix_mask(own, &params);
            assert_eq!(
                got.int().into_data().convert::<i64>(),
                want.int().into_data().convert::<i64>(),
                "point {point}: the mixed mask is not the union"
            );
        }
    }

    // Gradients through the partner: row 0 takes everything from row 2 (lambda 0).
    let ad = Device::flex().autodiff();
    let m = build(&ad);
    let (ids, mask) = toy_batch(&ad);
    // Per embedding row, the gradient magnitude that row 0's output sends back when mixed at
    // `point` with row 2 under `lambda`.
    let row_grads = |point: usize, lambda: f32| -> Vec<f32> {
        let params = MixParams {
            lambdas: vec![lambda, 1.0, 1.0],
            partners: vec![2, 1, 2],
        };
        let loss = m
            .forward_mixed(ids.clone(), mask.clone(), point, &params)
            .slice([0..1])
            .sum();
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        let g: Tensor<2> = grads.get(embedding(&m)).expect("embedding gradient");
        g.abs()
            .sum_dim(1)
            .into_data()
            .convert::<f32>()
            .try_to_vec()
            .expect("gradient")
    };
    for point in 0..m.num_points() {
        let g = row_grads(point, 0.0);
        assert!(
            g[4] > 0.0,
            "point {point}: the partner's token gets no gradient: {g:?}"
        );
        assert_eq!(
            g[2], 0.0,
            "point {point}: row 0's own tokens must get none at lambda 0"
        );
        let g = row_grads(point, 0.5);
        assert!(
            g[2] > 0.0 && g[4] > 0.0,
            "point {point}: at lambda 0.5 both partners need gradient: {g:?}"
        );
    }

    // Record round-trip, into a model whose weights differ (every `build` seeds itself, so a
    // fresh build would equal the original before loading and prove nothing).
    let m = build(&device).valid();
    let (ids, mask) = toy_batch(&device);
    let before = m.forward(ids.clone(), mask.clone());
    let bytes = m.into_record().into_bytes().expect("bytes");
    let other = perturbed(build(&device)).valid();
    let differs = other.forward(ids.clone(), mask.clone());
    assert!(
        max_abs_diff(&differs, &before) > 1e-3,
        "record round-trip: the perturbed model must differ before loading"
    );
    let loaded = other
        .load_record(burn::store::ModuleRecord::from_bytes(bytes).expect("record"))
        .valid();
    close(loaded.forward(ids, mask), before, "record round-trip");
}

/// `model` with 0.5 added to every float parameter (ids kept, so a record still loads).
pub(crate) fn perturbed<M: Module>(model: M) -> M {
    struct Shift;
    impl burn::module::ModuleMapper for Shift {
        fn map_float<const D: usize>(
            &mut self,
            param: burn::module::Param<Tensor<D>>,
        ) -> burn::module::Param<Tensor<D>> {
            param.map(|t| t.add_scalar(0.5))
        }
    }
    model.map(&mut Shift)
}

/// The largest absolute difference of two tensors' values.
fn max_abs_diff<const D: usize>(a: &Tensor<D>, b: &Tensor<D>) -> f32 {
    let a: Vec<f32> = a
        .clone()
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .expect("a");
    let b: Vec<f32> = b
        .clone()
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .expect("b");
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
