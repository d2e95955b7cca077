//! Mixing tensors of any rank along the batch dimension.

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::params::MixParams;

/// The per-row lambdas as a tensor of rank `D` and shape `[n, 1, ..., 1]`, ready to broadcast
/// against a `[n, ...]` tensor.
///
/// # Panics
///
/// If `D` is 0.
pub fn lambda_tensor<const D: usize>(lambdas: &[f32], device: &Device) -> Tensor<D> {
    assert!(D >= 1, "lambda_tensor needs a rank of at least 1");
    let mut shape = [1usize; D];
    shape[0] = lambdas.len();
    Tensor::from_data(TensorData::new(lambdas.to_vec(), shape), device)
}

/// The partner of every row: `x[params.partners[i]]` for each row `i`.
///
/// # Shapes
///
/// - `x`: `[n, ...]`, returns `[n, ...]`.
///
/// # Panics
///
/// If `params.partners` has a length other than `n` or an index `>= n`.
pub fn partner_rows<const D: usize>(x: Tensor<D>, params: &MixParams) -> Tensor<D> {
    let n = x.dims()[0];
    assert_eq!(
        params.partners.len(),
        n,
        "MixParams has {} partners for a batch of {} rows",
        params.partners.len(),
        n
    );
    let idx = index_tensor(&params.partners, &x.device());
    x.select(0, idx)
}

pub(crate) fn index_tensor(indices: &[usize], device: &Device) -> Tensor<1, Int> {
    let data: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(data, [indices.len()]), device)
}

/// Selects rows of a boolean tensor.
///
/// Goes through an integer copy: on `flex` 0.22.1, `select` on a boolean tensor returns a
/// different boolean storage than comparisons do, and the two then refuse to combine.
pub(crate) fn select_bool_rows(
    mask: Tensor<2, burn::tensor::Bool>,
    indices: &[usize],
) -> Tensor<2, burn::tensor::Bool> {
    let idx = index_tensor(indices, &mask.device());
    mask.int().select(0, idx).greater_elem(0)
}

/// Reads a boolean tensor back to the host (tests).
#[cfg(test)]
pub(crate) fn read_bools<const D: usize>(t: Tensor<D, burn::tensor::Bool>) -> Vec<bool> {
    let ints: Vec<i64> = t
        .int()
        .into_data()
        .convert::<i64>()
        .try_to_vec()
        .expect("int data");
    ints.into_iter().map(|v| v != 0).collect()
}

/// Mixes `x` with a row-aligned `partner`: row `i` becomes
/// `lambdas[i] * x[i] + (1 - lambdas[i]) * partner[i]`.
///
/// When every lambda is 1 the input is returned untouched (bit-identical).
///
/// # Arguments
///
/// - `x`: the batch.
/// - `partner`: what each row is mixed with (a permuted copy of `x`, or a second batch).
/// - `lambdas`: one weight per row.
///
/// # Shapes
///
/// - `x`, `partner`: `[n, ...]`; returns `[n, ...]`.
///
/// # Panics
///
/// If the shapes differ or `lambdas.len() != n`.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// let device = Device::flex();
/// let a = Tensor::<2>::from_floats([[0.0, 0.0], [4.0, 4.0]], &device);
/// let b = Tensor::<2>::from_floats([[2.0, 2.0], [0.0, 0.0]], &device);
/// let mixed = mixup_core::mix_with(a, b, &[0.5, 0.75]);
/// assert_eq!(mixed.into_data().try_to_vec::<f32>().unwrap(), vec![1.0, 1.0, 3.0, 3.0]);
/// ```
pub fn mix_with<const D: usize>(x: Tensor<D>, partner: Tensor<D>, lambdas: &[f32]) -> Tensor<D> {
    assert_eq!(
        x.dims(),
        partner.dims(),
        "mix_with: input shape {:?} and partner shape {:?} differ",
        x.dims(),
        partner.dims()
    );
    assert_eq!(
        lambdas.len(),
        x.dims()[0],
        "mix_with: {} lambdas for a batch of {} rows",
        lambdas.len(),
        x.dims()[0]
    );
    if lambdas.iter().all(|&l| l == 1.0) {
        return x;
    }
    let first = lambdas[0];
    if lambdas.iter().all(|&l| l == first) {
        // One lambda for the batch: scalar ops, no broadcast tensor.
        return x.mul_scalar(first).add(partner.mul_scalar(1.0 - first));
    }
    let lam = lambda_tensor::<D>(lambdas, &x.device());
    let rest = lam.clone().neg().add_scalar(1.0);
    x.mul(lam).add(partner.mul(rest))
}

/// Mixes each row of `x` with its partner row of the same batch, as `params` says.
///
/// # Shapes
///
/// - `x`: `[n, ...]` of any rank; returns `[n, ...]`.
///
/// # Panics
///
/// If `params` does not describe `n` rows.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use mixup_core::{MixParams, mix_rows};
/// let device = Device::flex();
/// let x = Tensor::<2>::from_floats([[1.0], [3.0]], &device);
/// let params = MixParams { lambdas: vec![0.5, 1.0], partners: vec![1, 0] };
/// assert_eq!(mix_rows(x, &params).into_data().try_to_vec::<f32>().unwrap(), vec![2.0, 3.0]);
/// ```
pub fn mix_rows<const D: usize>(x: Tensor<D>, params: &MixParams) -> Tensor<D> {
    if params.is_identity() {
        assert_eq!(
            params.len(),
            x.dims()[0],
            "MixParams for {} rows",
            params.len()
        );
        return x;
    }
    let partner = partner_rows(x.clone(), params);
    mix_with(x, partner, &params.lambdas)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MixupConfig;
    use burn::tensor::{Distribution, Tolerance};
    use proptest::prelude::*;
    use rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn mixes_by_hand() {
        let device = Device::flex();
        let x = Tensor::<2>::from_floats([[1.0, 2.0], [10.0, 20.0], [100.0, 200.0]], &device);
        let params = MixParams {
            lambdas: vec![0.5, 1.0, 0.25],
            partners: vec![1, 0, 0],
        };
        let y = mix_rows(x, &params);
        let expected =
            Tensor::<2>::from_floats([[5.5, 11.0], [10.0, 20.0], [25.75, 51.5]], &device);
        y.into_data()
            .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::default());
    }

    #[test]
    fn symmetric_under_swap() {
        // (x_i, x_j, l) and (x_j, x_i, 1 - l) give the same row.
        let device = Device::flex();
        let a = Tensor::<3>::random([2, 3, 4], Distribution::Default, &device);
        let b = Tensor::<3>::random([2, 3, 4], Distribution::Default, &device);
        let ab = mix_with(a.clone(), b.clone(), &[0.3, 0.8]);
        let ba = mix_with(b, a, &[0.7, 0.2]);
        ab.into_data()
            .assert_approx_eq::<f32>(&ba.into_data(), Tolerance::default());
    }

    fn values(n: usize, rest: usize) -> impl Strategy<Value = Vec<f32>> {
        proptest::collection::vec(-100.0f32..100.0, n * rest)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn lambda_one_is_identity((n, d, data) in (1usize..9, 1usize..16)
                .prop_flat_map(|(n, d)| (Just(n), Just(d), values(n, d))), seed: u64) {
            let device = Device::flex();
            let x = Tensor::<2>::from_data(TensorData::new(data, [n, d]), &device);
            let mut rng = StdRng::seed_from_u64(seed);
            let mut params = MixupConfig::default().sample(n, &mut rng);
            params.lambdas.iter_mut().for_each(|l| *l = 1.0);
            let y = mix_rows(x.clone(), &params);
            prop_assert_eq!(y.into_data(), x.into_data());
        }

        #[test]
        fn disabled_config_is_bit_identical((n, d, data) in (1usize..9, 1usize..16)
                .prop_flat_map(|(n, d)| (Just(n), Just(d), values(n, d))),
                seed: u64, zero_alpha: bool) {
            let device = Device::flex();
            let x = Tensor::<2>::from_data(TensorData::new(data, [n, d]), &device);
            let cfg = if zero_alpha { MixupConfig { alpha: 0.0, ..Default::default() } }
                      else { MixupConfig { prob: 0.0, ..Default::default() } };
            let params = cfg.sample(n, &mut StdRng::seed_from_u64(seed));
            let y = mix_rows(x.clone(), &params);
            let (y, x) = (y.into_data(), x.into_data());
            prop_assert_eq!(y.as_bytes(), x.as_bytes());
        }

        #[test]
        fn mixed_rows_lie_between_the_two((n, d, data) in (1usize..9, 1usize..8)
                .prop_flat_map(|(n, d)| (Just(n), Just(d), values(n, d))), seed: u64) {
            let device = Device::flex();
            let x = Tensor::<2>::from_data(TensorData::new(data.clone(), [n, d]), &device);
            let cfg = MixupConfig { mode: crate::LambdaMode::Elem, ..Default::default() };
            let params = cfg.sample(n, &mut StdRng::seed_from_u64(seed));
            let y: Vec<f32> = mix_rows(x, &params).into_data().try_to_vec().expect("tensor data");
            for i in 0..n {
                let j = params.partners[i];
                for k in 0..d {
                    let (a, b) = (data[i * d + k], data[j * d + k]);
                    let (lo, hi) = (a.min(b) - 1e-3, a.max(b) + 1e-3);
                    prop_assert!(y[i * d + k] >= lo && y[i * d + k] <= hi);
                }
            }
        }
    }
}
