//! Padding masks of mixed sequences.

use burn::tensor::{Bool, Tensor};

use crate::{mix::select_bool_rows, params::MixParams};

/// The union (OR) of two padding masks: a position is valid in a mix of two sequences when it
/// is valid in either (the rule of the MixText maintainers; SALT-NLP/MixText#3).
///
/// # Shapes
///
/// - `a`, `b`: `[n, L]`, true for real tokens; returns `[n, L]`.
///
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// let device = Device::flex();
/// let a = Tensor::<2, Int>::from_ints([[5, 6, 0]], &device).not_equal_elem(0);
/// let b = Tensor::<2, Int>::from_ints([[7, 0, 0]], &device).not_equal_elem(0);
/// let union = mixup_core::union_mask(a, b).int().into_data().convert::<i64>();
/// assert_eq!(union.try_to_vec::<i64>().unwrap(), vec![1, 1, 0]);
/// ```
pub fn union_mask(a: Tensor<2, Bool>, b: Tensor<2, Bool>) -> Tensor<2, Bool> {
    assert_eq!(
        a.dims(),
        b.dims(),
        "union_mask: shapes {:?} and {:?}",
        a.dims(),
        b.dims()
    );
    a.bool_or(b)
}

/// The mask of a batch mixed with `params`: each mixed row's mask OR its partner's. Rows with
/// lambda 1 are not mixed and keep their own mask.
///
/// # Shapes
///
/// - `mask`: `[n, L]`; returns `[n, L]`.
pub fn mix_mask(mask: Tensor<2, Bool>, params: &MixParams) -> Tensor<2, Bool> {
    if params.is_identity() {
        return mask;
    }
    let partner = select_bool_rows(mask.clone(), &params.effective_partners());
    union_mask(mask, partner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MixupConfig;
    use burn::tensor::{Device, TensorData};
    use proptest::prelude::*;
    use rand::{SeedableRng, rngs::StdRng};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn mixed_mask_is_or_of_partners(
            (n, l, bits) in (1usize..8, 1usize..16).prop_flat_map(|(n, l)|
                (Just(n), Just(l), proptest::collection::vec(any::<bool>(), n * l))),
            seed: u64,
        ) {
            let device = Device::flex();
            let mask = Tensor::<2, Bool>::from_data(TensorData::new(bits.clone(), [n, l]), &device);
            let params = MixupConfig::default().sample(n, &mut StdRng::seed_from_u64(seed));
            let mixed = crate::mix::read_bools(mix_mask(mask, &params));
            for i in 0..n {
                let j = if params.lambdas[i] == 1.0 { i } else { params.partners[i] };
                for t in 0..l {
                    prop_assert_eq!(mixed[i * l + t], bits[i * l + t] || bits[j * l + t]);
                }
            }
        }
    }
}
