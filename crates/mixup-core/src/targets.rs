//! Soft targets: one-hot labels with optional smoothing, mixed with the inputs' parameters.

use burn::tensor::{Int, Tensor};

use crate::{mix::mix_rows, params::MixParams};

/// One-hot targets with label smoothing: the true class gets `1 - s + s / C`, every other
/// class `s / C`, so each row sums to 1.
///
/// # Shapes
///
/// - `labels`: `[n]` class indices in `0..num_classes`; returns `[n, num_classes]`.
pub fn soft_targets(labels: Tensor<1, Int>, num_classes: usize, smoothing: f64) -> Tensor<2> {
    if num_classes == 1 {
        // Burn's one_hot refuses a single class; every target is that class.
        let n = labels.dims()[0];
        return Tensor::ones([n, 1], &labels.device());
    }
    let one_hot: Tensor<2> = labels.one_hot::<2>(num_classes).float();
    if smoothing == 0.0 {
        return one_hot;
    }
    let s = smoothing as f32;
    one_hot
        .mul_scalar(1.0 - s)
        .add_scalar(s / num_classes as f32)
}

/// Soft targets mixed with the same parameters as the inputs: row `i` is
/// `l_i * t(y_i) + (1 - l_i) * t(y_partner(i))`, where `t` is [`soft_targets`].
///
/// # Shapes
///
/// - `labels`: `[n]`; returns `[n, num_classes]`.
///
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use mixup_core::{MixParams, mix_targets};
/// let device = Device::flex();
/// let labels = Tensor::<1, Int>::from_ints([0, 2], &device);
/// let params = MixParams { lambdas: vec![0.7, 0.7], partners: vec![1, 0] };
/// let t: Vec<f32> = mix_targets(labels, &params, 3, 0.0).into_data().try_to_vec().unwrap();
/// let expected = [0.7, 0.0, 0.3, 0.3, 0.0, 0.7];
/// assert!(t.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6));
/// ```
pub fn mix_targets(
    labels: Tensor<1, Int>,
    params: &MixParams,
    num_classes: usize,
    smoothing: f64,
) -> Tensor<2> {
    mix_rows(soft_targets(labels, num_classes, smoothing), params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LambdaMode, MixupConfig};
    use burn::tensor::{Device, TensorData};
    use proptest::prelude::*;
    use rand::{SeedableRng, rngs::StdRng};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn mixed_soft_targets_sum_to_one(
            (c, labels) in (1usize..7).prop_flat_map(|c| (Just(c),
                proptest::collection::vec(0..c as i64, 1..12))),
            smoothing in 0.0f64..0.9, seed: u64, elem: bool,
        ) {
            let device = Device::flex();
            let n = labels.len();
            let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &device);
            let mode = if elem { LambdaMode::Elem } else { LambdaMode::Batch };
            let cfg = MixupConfig { num_classes: c, label_smoothing: smoothing, mode,
                ..Default::default() };
            let params = cfg.sample(n, &mut StdRng::seed_from_u64(seed));
            let t = mix_targets(y, &params, c, smoothing);
            let sums: Vec<f32> = t.clone().sum_dim(1).into_data().try_to_vec().expect("tensor data");
            for s in sums { prop_assert!((s - 1.0).abs() < 1e-5, "row sums to {}", s); }
            let min: f32 = t.min().into_scalar();
            prop_assert!(min >= 0.0);
        }
    }

    #[test]
    fn smoothing_by_hand() {
        let device = Device::flex();
        let y = Tensor::<1, Int>::from_ints([2, 0], &device);
        let t: Vec<f32> = soft_targets(y, 4, 0.2)
            .into_data()
            .try_to_vec()
            .expect("tensor data");
        let expected = [0.05, 0.05, 0.85, 0.05, 0.85, 0.05, 0.05, 0.05];
        for (a, b) in t.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{t:?}");
        }
    }
}
