//! The two loss forms of the mixup family.

use burn::tensor::{Bool, Int, Tensor, activation::log_softmax};

use crate::mix::lambda_tensor;

/// Soft-target cross-entropy, `-sum_c t_c log softmax(z)_c`, averaged over the rows that
/// `mask` keeps (all rows when `mask` is `None`).
///
/// With one-hot targets this is the ordinary cross-entropy. A mask lets per-token losses
/// (sequence labelling) skip padding; a mask that keeps no row gives 0.
///
/// # Shapes
///
/// - `logits`: `[n, C]`
/// - `targets`: `[n, C]`, rows summing to 1
/// - `mask`: `[n]`, true for rows that count
/// - returns `[1]`
///
/// # Panics
///
/// If the shapes of `logits` and `targets` differ.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// let device = Device::flex();
/// let logits = Tensor::<2>::from_floats([[0.0, 0.0]], &device);
/// let targets = Tensor::<2>::from_floats([[0.5, 0.5]], &device);
/// let loss: f32 = mixup_core::soft_cross_entropy(logits, targets, None).into_scalar();
/// assert!((loss - std::f32::consts::LN_2).abs() < 1e-6);
/// ```
pub fn soft_cross_entropy(
    logits: Tensor<2>,
    targets: Tensor<2>,
    mask: Option<Tensor<1, Bool>>,
) -> Tensor<1> {
    assert_eq!(
        logits.dims(),
        targets.dims(),
        "soft_cross_entropy: logits {:?} and targets {:?} differ",
        logits.dims(),
        targets.dims()
    );
    let n = logits.dims()[0];
    let per_row = log_softmax(logits, 1)
        .mul(targets)
        .sum_dim(1)
        .reshape([n])
        .neg();
    match mask {
        None => per_row.mean(),
        Some(mask) => {
            let keep = mask.float();
            let count = keep.clone().sum().clamp_min(1.0);
            per_row.mul(keep).sum().div(count)
        }
    }
}

/// The two-hard-target form of Zhang et al. (2018):
/// `mean_i [ l_i CE(z_i, a_i) + (1 - l_i) CE(z_i, b_i) ]`.
///
/// Equal to [`soft_cross_entropy`] on the mixed one-hot targets, without building them.
///
/// # Shapes
///
/// - `logits`: `[n, C]`
/// - `labels_a`, `labels_b`: `[n]` class indices
/// - `lambdas`: `n` weights
/// - returns `[1]`
///
/// # Panics
///
/// If the row counts differ.
pub fn interpolated_cross_entropy(
    logits: Tensor<2>,
    labels_a: Tensor<1, Int>,
    labels_b: Tensor<1, Int>,
    lambdas: &[f32],
) -> Tensor<1> {
    let n = logits.dims()[0];
    assert_eq!(
        labels_a.dims()[0],
        n,
        "interpolated_cross_entropy: labels_a rows"
    );
    assert_eq!(
        labels_b.dims()[0],
        n,
        "interpolated_cross_entropy: labels_b rows"
    );
    assert_eq!(
        lambdas.len(),
        n,
        "interpolated_cross_entropy: {} lambdas",
        lambdas.len()
    );
    let device = logits.device();
    let logp = log_softmax(logits, 1);
    let nll_a = logp.clone().gather(1, labels_a.reshape([n, 1])).neg();
    let nll_b = logp.gather(1, labels_b.reshape([n, 1])).neg();
    let lam = lambda_tensor::<2>(lambdas, &device);
    let rest = lam.clone().neg().add_scalar(1.0);
    nll_a.mul(lam).add(nll_b.mul(rest)).mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LambdaMode, MixupConfig, mix::partner_rows, mix_targets};
    use burn::tensor::{Device, Distribution, TensorData, Tolerance};
    use proptest::prelude::*;
    use rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn matches_burn_cross_entropy_on_one_hot() {
        let device = Device::flex();
        let logits = Tensor::<2>::from_floats([[1.0, 2.0, 0.5], [0.1, -1.0, 3.0]], &device);
        let y = Tensor::<1, Int>::from_ints([1, 2], &device);
        let t = crate::soft_targets(y.clone(), 3, 0.0);
        let ours = soft_cross_entropy(logits.clone(), t, None);
        // log-sum-exp by hand: row 0: lse(1, 2, .5) - 2; row 1: lse(.1, -1, 3) - 3.
        let lse = |v: [f32; 3]| v.iter().map(|x| x.exp()).sum::<f32>().ln();
        let expected = ((lse([1.0, 2.0, 0.5]) - 2.0) + (lse([0.1, -1.0, 3.0]) - 3.0)) / 2.0;
        let got: f32 = ours.into_scalar();
        assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
        let burn_ce: f32 =
            burn::tensor::loss::cross_entropy_with_logits(logits, crate::soft_targets(y, 3, 0.0))
                .into_scalar();
        assert!((got - burn_ce).abs() < 1e-5);
    }

    #[test]
    fn mask_selects_rows() {
        let device = Device::flex();
        let logits = Tensor::<2>::random([4, 3], Distribution::Default, &device);
        let y = Tensor::<1, Int>::from_ints([0, 1, 2, 1], &device);
        let t = crate::soft_targets(y, 3, 0.0);
        let mask =
            Tensor::<1, Bool>::from_data(TensorData::from([true, false, true, false]), &device);
        let masked: f32 = soft_cross_entropy(logits.clone(), t.clone(), Some(mask)).into_scalar();
        let idx = Tensor::<1, Int>::from_ints([0, 2], &device);
        let kept: f32 =
            soft_cross_entropy(logits.select(0, idx.clone()), t.select(0, idx), None).into_scalar();
        assert!((masked - kept).abs() < 1e-6);
        let none = Tensor::<1, Bool>::from_data(TensorData::from([false; 4]), &device);
        let zero: f32 = soft_cross_entropy(
            Tensor::<2>::zeros([4, 3], &device),
            Tensor::<2>::zeros([4, 3], &device),
            Some(none),
        )
        .into_scalar();
        assert_eq!(zero, 0.0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn two_loss_forms_agree_on_one_hot(
            (c, labels) in (2usize..6).prop_flat_map(|c| (Just(c),
                proptest::collection::vec(0..c as i64, 1..10))),
            seed: u64, elem: bool,
        ) {
            let device = Device::flex();
            let n = labels.len();
            let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &device);
            let mode = if elem { LambdaMode::Elem } else { LambdaMode::Batch };
            let cfg = MixupConfig { num_classes: c, mode, ..Default::default() };
            let params = cfg.sample(n, &mut StdRng::seed_from_u64(seed));
            device.seed(seed);
            let logits = Tensor::<2>::random([n, c], Distribution::Normal(0.0, 2.0), &device);
            let soft = soft_cross_entropy(logits.clone(), mix_targets(y.clone(), &params, c, 0.0),
                None);
            let y_b = partner_rows(y.clone().float().reshape([n, 1]), &params)
                .reshape([n]).int();
            let hard = interpolated_cross_entropy(logits, y, y_b, &params.lambdas);
            soft.into_data().assert_approx_eq::<f32>(&hard.into_data(), Tolerance::default());
        }
    }
}
