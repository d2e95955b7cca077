//! [`TextBatch`]: padded token ids, mask and labels as Burn tensors.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use rand::{Rng, seq::SliceRandom};

use crate::vocab::{EncodedExample, PAD_ID};

/// A batch of texts: ids right-padded with `<pad>` to the longest item (capped by `max_len`).
#[derive(Clone, Debug)]
pub struct TextBatch {
    /// Token ids, `[n, L]`.
    pub ids: Tensor<2, Int>,
    /// True at real tokens, false at padding, `[n, L]`.
    pub mask: Tensor<2, Bool>,
    /// Class indices, `[n]`.
    pub labels: Tensor<1, Int>,
}

impl TextBatch {
    /// Pads `items` into tensors on `device`. Items longer than `max_len` are cut.
    ///
    /// # Panics
    ///
    /// If `items` is empty.
    pub fn new(items: &[&EncodedExample], max_len: usize, device: &Device) -> Self {
        assert!(!items.is_empty(), "TextBatch::new needs at least one item");
        let max_len = max_len.max(1);
        let len = items
            .iter()
            .map(|e| e.ids.len().min(max_len))
            .max()
            .unwrap_or(1)
            .max(1);
        let mut ids = vec![PAD_ID as i64; items.len() * len];
        for (row, item) in items.iter().enumerate() {
            for (t, &id) in item.ids.iter().take(len).enumerate() {
                ids[row * len + t] = id as i64;
            }
        }
        let labels: Vec<i64> = items.iter().map(|e| e.label as i64).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [items.len(), len]), device);
        let mask = ids.clone().not_equal_elem(PAD_ID as i64);
        let labels = Tensor::from_data(TensorData::new(labels, [items.len()]), device);
        Self { ids, mask, labels }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ids.dims()[0]
    }

    /// Whether the batch has no rows (never true for a batch made by [`TextBatch::new`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The example indices `0..n` cut into batches of `batch_size` (the last may be smaller),
/// shuffled by `rng` when given.
pub fn batch_indices<R: Rng + ?Sized>(
    n: usize,
    batch_size: usize,
    rng: Option<&mut R>,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    if let Some(rng) = rng {
        order.shuffle(rng);
    }
    order
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    #[test]
    fn pads_to_longest_capped() {
        let device = Device::flex();
        let a = EncodedExample {
            ids: vec![5, 6, 7],
            label: 1,
        };
        let b = EncodedExample {
            ids: vec![8],
            label: 0,
        };
        let batch = TextBatch::new(&[&a, &b], 10, &device);
        assert_eq!(batch.ids.dims(), [2, 3]);
        let ids: Vec<i64> = batch
            .ids
            .into_data()
            .convert::<i64>()
            .try_to_vec()
            .expect("ids");
        assert_eq!(ids, vec![5, 6, 7, 8, 0, 0]);
        let mask: Vec<i64> = batch
            .mask
            .int()
            .into_data()
            .convert::<i64>()
            .try_to_vec()
            .expect("mask");
        assert_eq!(mask, vec![1, 1, 1, 1, 0, 0]);
        let capped = TextBatch::new(&[&a, &b], 2, &device);
        assert_eq!(capped.ids.dims(), [2, 2]);
    }

    #[test]
    fn batches_cover_every_index_once() {
        let mut rng = StdRng::seed_from_u64(1);
        let b = batch_indices(10, 4, Some(&mut rng));
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4, 2]);
        let mut all: Vec<usize> = b.into_iter().flatten().collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        let plain = batch_indices::<StdRng>(3, 2, None);
        assert_eq!(plain, vec![vec![0, 1], vec![2]]);
    }
}
