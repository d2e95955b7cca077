//! [`MixState`]: a model's state at a mixing point, and how two states mix.

use burn::tensor::{Bool, Tensor};

use crate::{
    mask::union_mask,
    mix::{index_tensor, mix_with, select_bool_rows},
    params::MixParams,
};

/// What a model holds at one of its mixing points.
// Both variants hold tensor handles (a few words each, the data lives on the device), built
// and taken apart once per mixing point: boxing the larger one would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum MixState {
    /// A padded sequence of hidden vectors and its padding mask (true = real token).
    Sequence {
        /// Hidden states, `[n, L, d]`.
        hidden: Tensor<3>,
        /// Padding mask, `[n, L]`.
        mask: Tensor<2, Bool>,
    },
    /// One pooled vector per row, `[n, d]`.
    Pooled(Tensor<2>),
}

impl MixState {
    /// Number of rows.
    pub fn batch_size(&self) -> usize {
        match self {
            Self::Sequence { hidden, .. } => hidden.dims()[0],
            Self::Pooled(p) => p.dims()[0],
        }
    }

    /// The partner rows of the same batch (`params.partners`), as a new state.
    ///
    /// Rows that `params` leaves unmixed (lambda 1) are their own partner.
    pub fn partner_rows(&self, params: &MixParams) -> MixState {
        let partners = params.effective_partners();
        match self {
            Self::Sequence { hidden, mask } => Self::Sequence {
                hidden: hidden
                    .clone()
                    .select(0, index_tensor(&partners, &hidden.device())),
                mask: select_bool_rows(mask.clone(), &partners),
            },
            Self::Pooled(p) => {
                Self::Pooled(p.clone().select(0, index_tensor(&partners, &p.device())))
            }
        }
    }

    /// Mixes this state with a row-aligned `partner` state: row `i` becomes
    /// `lambdas[i] * self[i] + (1 - lambdas[i]) * partner[i]`.
    ///
    /// For sequences, each side's padded positions are zeroed first (so padding contributes
    /// nothing, as in wordMixup's zero padding), the shorter side is zero-padded to the longer
    /// length, and the mixed mask is the union of both masks for mixed rows; rows with lambda 1
    /// keep their own mask.
    ///
    /// # Panics
    ///
    /// If one state is a sequence and the other pooled, or the batch or feature sizes differ.
    pub fn mix(self, partner: MixState, lambdas: &[f32]) -> MixState {
        match (self, partner) {
            (Self::Pooled(a), Self::Pooled(b)) => Self::Pooled(mix_with(a, b, lambdas)),
            (
                Self::Sequence {
                    hidden: ha,
                    mask: ma,
                },
                Self::Sequence {
                    hidden: hb,
                    mask: mb,
                },
            ) => {
                if lambdas.iter().all(|&l| l == 1.0) {
                    return Self::Sequence {
                        hidden: ha,
                        mask: ma,
                    };
                }
                let [n, la, d] = ha.dims();
                let [nb, lb, db] = hb.dims();
                assert!(
                    n == nb && d == db,
                    "MixState::mix: sequence shapes {:?} and {:?} do not match",
                    ha.dims(),
                    hb.dims()
                );
                let l = la.max(lb);
                let (ha, ma) = pad_to(zero_padding(ha, ma.clone()), ma, l);
                let (hb, mb) = pad_to(zero_padding(hb, mb.clone()), mb, l);
                let hidden = mix_with(ha, hb, lambdas);
                // Unmixed rows keep their own mask.
                let keep_own: Vec<usize> = lambdas
                    .iter()
                    .enumerate()
                    .map(|(i, &lam)| if lam == 1.0 { i } else { i + n })
                    .collect();
                let both = Tensor::cat(vec![ma.clone(), union_mask(ma, mb)], 0);
                let mask = select_bool_rows(both, &keep_own);
                Self::Sequence { hidden, mask }
            }
            _ => panic!("MixState::mix: cannot mix a sequence state with a pooled state"),
        }
    }
}

/// Zeroes the hidden vectors at the positions `mask` marks as padding.
///
/// # Shapes
///
/// - `hidden`: `[n, L, d]`, `mask`: `[n, L]`; returns `[n, L, d]`.
pub fn zero_padding(hidden: Tensor<3>, mask: Tensor<2, Bool>) -> Tensor<3> {
    let dims = hidden.dims();
    hidden.mask_fill(
        mask.bool_not().reshape([dims[0], dims[1], 1]).expand(dims),
        0.0,
    )
}

/// The mean of the hidden vectors over the valid positions of each row (padding excluded;
/// a row without valid positions gives zeros).
///
/// # Shapes
///
/// - `hidden`: `[n, L, d]`, `mask`: `[n, L]`; returns `[n, d]`.
pub fn masked_mean(hidden: Tensor<3>, mask: Tensor<2, Bool>) -> Tensor<2> {
    let [n, _, d] = hidden.dims();
    let count = mask.clone().float().sum_dim(1).clamp_min(1.0); // [n, 1]
    zero_padding(hidden, mask)
        .sum_dim(1)
        .reshape([n, d])
        .div(count)
}

/// Pads a sequence state with zero vectors (mask false) up to length `l`.
fn pad_to(hidden: Tensor<3>, mask: Tensor<2, Bool>, l: usize) -> (Tensor<3>, Tensor<2, Bool>) {
    let [n, cur, d] = hidden.dims();
    if cur == l {
        return (hidden, mask);
    }
    let device = hidden.device();
    let hidden = Tensor::cat(vec![hidden, Tensor::zeros([n, l - cur, d], &device)], 1);
    let pad = Tensor::<2, Bool>::from_data(
        burn::tensor::TensorData::new(vec![false; n * (l - cur)], [n, l - cur]),
        &device,
    );
    let mask = Tensor::cat(vec![mask, pad], 1);
    (hidden, mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn seq(values: Vec<f32>, mask: Vec<bool>, n: usize, l: usize, d: usize) -> MixState {
        let device = Device::flex();
        MixState::Sequence {
            hidden: Tensor::from_data(TensorData::new(values, [n, l, d]), &device),
            mask: Tensor::from_data(TensorData::new(mask, [n, l]), &device),
        }
    }

    #[test]
    fn sequences_of_different_lengths_mix_under_the_union_mask() {
        // a: 1 row, length 2 (second position padding, holding garbage 9.0)
        let a = seq(vec![1.0, 9.0], vec![true, false], 1, 2, 1);
        // b: 1 row, length 3, all real
        let b = seq(vec![2.0, 4.0, 6.0], vec![true, true, true], 1, 3, 1);
        let MixState::Sequence { hidden, mask } = a.mix(b, &[0.5]) else {
            panic!()
        };
        let h: Vec<f32> = hidden.into_data().try_to_vec().expect("tensor data");
        assert_eq!(h, vec![1.5, 2.0, 3.0]); // garbage at the pad never leaks
        let m = crate::mix::read_bools(mask);
        assert_eq!(m, vec![true, true, true]);
    }

    #[test]
    fn unmixed_rows_keep_their_mask() {
        let a = seq(
            vec![1.0, 0.0, 1.0, 0.0],
            vec![true, false, true, false],
            2,
            2,
            1,
        );
        let b = seq(
            vec![1.0, 1.0, 1.0, 1.0],
            vec![true, true, true, true],
            2,
            2,
            1,
        );
        let MixState::Sequence { mask, .. } = a.mix(b, &[1.0, 0.5]) else {
            panic!()
        };
        let m = crate::mix::read_bools(mask);
        assert_eq!(m, vec![true, false, true, true]);
    }

    #[test]
    #[should_panic(expected = "cannot mix a sequence state with a pooled state")]
    fn kinds_must_match() {
        let device = Device::flex();
        let a = seq(vec![1.0], vec![true], 1, 1, 1);
        let _ = a.mix(MixState::Pooled(Tensor::zeros([1, 1], &device)), &[0.5]);
    }
}
