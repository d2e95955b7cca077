//! Character features of words: a character CNN over each word's UTF-8 bytes (Ma and Hovy
//! 2016, "End-to-end Sequence Labeling via Bi-directional LSTM-CNNs-CRF",
//! <https://arxiv.org/abs/1603.01354>), so that a word the vocabulary maps to `<unk>` still
//! has a vector made from its spelling.
//!
//! Input: byte ids `[n, L, W]` ([`byte_ids`]: byte `b` is id `b + 1`, 0 is padding), one row
//! of at most `W` bytes per token. Each byte is embedded (`d_char`), a width-`kernel`
//! convolution (zero padding at both ends of the word, so every real byte is a window centre)
//! gives `filters` features per byte, and the maximum over the word's real bytes is the word's
//! vector `[n, L, filters]`. Padding bytes never reach a word's vector (their windows are
//! masked out of the maximum, and the convolution's zero padding is applied after masking the
//! embeddings), and a padding token (no bytes) gets the zero vector.
//!
//! Bytes, not a character vocabulary: nothing to store beside the weights, no `<unk>`
//! characters, and CoNLL-style text is almost all ASCII (a non-ASCII character is its 2-4
//! bytes).

use burn::{
    config::Config,
    module::Module,
    nn::{Embedding, EmbeddingConfig, Linear, LinearConfig},
    tensor::{Bool, Device, Int, Tensor},
};

/// Ids per word: at most this many bytes of a word are read (longer words keep their first
/// `MAX_WORD_BYTES / 2` and last `MAX_WORD_BYTES / 2` bytes, so suffixes still count).
pub const MAX_WORD_BYTES: usize = 24;

/// A word's byte ids (`b + 1` per byte; see [`MAX_WORD_BYTES`] for long words).
pub fn byte_ids(word: &str) -> Vec<u32> {
    let bytes = word.as_bytes();
    let ids = |s: &[u8]| s.iter().map(|&b| u32::from(b) + 1).collect::<Vec<_>>();
    if bytes.len() <= MAX_WORD_BYTES {
        return ids(bytes);
    }
    let half = MAX_WORD_BYTES / 2;
    let mut out = ids(&bytes[..half]);
    out.extend(ids(&bytes[bytes.len() - half..]));
    out
}

/// Configuration of a [`CharCnn`].
#[derive(Config, Debug)]
pub struct CharCnnConfig {
    /// Output features per word (convolution filters).
    #[config(default = 50)]
    pub filters: usize,
    /// Byte embedding width.
    #[config(default = 30)]
    pub d_char: usize,
    /// Convolution width (odd).
    #[config(default = 3)]
    pub kernel: usize,
}

/// A character CNN (see the module documentation).
#[derive(Module, Debug)]
pub struct CharCnn {
    /// Byte embedding: 257 rows (padding and the 256 byte values).
    pub embedding: Embedding,
    /// The convolution as one linear map of each window `[kernel · d_char] -> [filters]`.
    pub conv: Linear,
    /// Convolution width.
    pub kernel: usize,
}

impl CharCnnConfig {
    /// Builds the CNN with fresh parameters.
    ///
    /// # Panics
    ///
    /// A zero size or an even kernel.
    pub fn init(&self, device: &Device) -> CharCnn {
        assert!(
            self.filters > 0 && self.d_char > 0 && self.kernel % 2 == 1,
            "CharCnn: filters and d_char must be positive and the kernel odd"
        );
        CharCnn {
            embedding: EmbeddingConfig::new(257, self.d_char).init(device),
            conv: LinearConfig::new(self.kernel * self.d_char, self.filters).init(device),
            kernel: self.kernel,
        }
    }
}

impl CharCnn {
    /// Output width.
    pub fn filters(&self) -> usize {
        self.conv.weight.dims()[1]
    }

    /// Word vectors `[n, L, filters]` from byte ids `[n, L, W]` (0 = padding).
    pub fn forward(&self, bytes: Tensor<3, Int>) -> Tensor<3> {
        let [n, l, w] = bytes.dims();
        let device = bytes.device();
        let real: Tensor<2, Bool> = bytes.clone().reshape([n * l, w]).greater_elem(0);
        let e = self.embedding.forward(bytes.reshape([n * l, w])); // [nl, W, d]
        let d = e.dims()[2];
        let e = e.mask_fill(
            real.clone()
                .bool_not()
                .unsqueeze_dim::<3>(2)
                .expand([n * l, w, d]),
            0.0,
        );
        let half = self.kernel / 2;
        let pad = Tensor::<3>::zeros([n * l, half, d], &device);
        let padded = Tensor::cat(vec![pad.clone(), e, pad], 1); // [nl, W + 2h, d]
        let windows: Vec<Tensor<3>> = (0..self.kernel)
            .map(|k| padded.clone().narrow(1, k, w))
            .collect();
        let windows = Tensor::cat(windows, 2); // [nl, W, k·d]
        let f = self.conv.forward(windows); // [nl, W, filters]
        let filters = f.dims()[2];
        let pad_byte = real
            .clone()
            .bool_not()
            .unsqueeze_dim::<3>(2)
            .expand([n * l, w, filters]);
        let pooled = f
            .mask_fill(pad_byte, -1e9)
            .max_dim(1)
            .reshape([n * l, filters]);
        // A padding token has no bytes: its maximum is the mask value; make it zero.
        let empty = real.int().sum_dim(1).equal_elem(0).expand([n * l, filters]);
        pooled.mask_fill(empty, 0.0).reshape([n, l, filters])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn ids(rows: &[Vec<Vec<u32>>], w: usize) -> Vec<i64> {
        let mut out = Vec::new();
        for s in rows {
            for t in s {
                for j in 0..w {
                    out.push(t.get(j).map_or(0, |&b| i64::from(b)));
                }
            }
        }
        out
    }

    #[test]
    fn long_words_keep_both_ends() {
        assert_eq!(byte_ids("Ab"), vec![66, 99]);
        let long = "a".repeat(30) + "xyz";
        let b = byte_ids(&long);
        assert_eq!(b.len(), MAX_WORD_BYTES);
        assert_eq!(&b[MAX_WORD_BYTES - 3..], &[121, 122, 123]);
        assert_eq!(byte_ids("é").len(), 2);
    }

    /// Padding bytes (past a word's end) and padding tokens never change a real word's vector;
    /// a padding token's vector is zero; the same word gives the same vector wherever it is.
    #[test]
    fn char_features_keep_padding_out() {
        let device = Device::flex();
        device.seed(3);
        let cnn = CharCnnConfig::new()
            .with_filters(6)
            .with_d_char(4)
            .init(&device);
        let words = [
            vec![byte_ids("Paris"), byte_ids("is")],
            vec![byte_ids("Lee")],
        ];
        let sent = |w: usize| {
            let v = ids(&[words[0].clone(), vec![words[1][0].clone(), vec![]]], w);
            Tensor::<3, Int>::from_data(TensorData::new(v, [2, 2, w]), &device)
        };
        let a: Vec<f32> = cnn
            .forward(sent(5))
            .into_data()
            .try_to_vec::<f32>()
            .expect("host");
        // A wider byte axis (more padding bytes per word) changes nothing.
        let b: Vec<f32> = cnn
            .forward(sent(9))
            .into_data()
            .try_to_vec::<f32>()
            .expect("host");
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5, "padding bytes leaked: {x} vs {y}");
        }
        // The padding token (sentence 1, position 1) is zero.
        assert!(a[3 * 6..4 * 6].iter().all(|&x| x == 0.0));
        // "Lee" alone in a batch gives the vector it had beside other words.
        let alone = Tensor::<3, Int>::from_data(
            TensorData::new(ids(&[vec![byte_ids("Lee")]], 3), [1, 1, 3]),
            &device,
        );
        let c: Vec<f32> = cnn
            .forward(alone)
            .into_data()
            .try_to_vec::<f32>()
            .expect("host");
        for (x, y) in c.iter().zip(&a[2 * 6..3 * 6]) {
            assert!((x - y).abs() < 1e-5);
        }
        // And a word's vector depends on its bytes (a bug that pooled padding would not
        // separate these two).
        assert!(
            a[..6]
                .iter()
                .zip(&a[6..12])
                .any(|(x, y)| (x - y).abs() > 1e-4)
        );
    }
}
