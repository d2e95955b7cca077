//! Sequence taggers (one label a token, e.g. NER): the BiLSTM or Transformer encoder of the
//! classifiers with a per-token linear head instead of pooling.
//!
//! A tagger has the mixing points of its encoder: the embedding output and each layer. Its
//! last point holds one row per token position, `[n · L, d]` (as [`MixState::Pooled`]), so
//! [`MixingPoints::forward`] returns `[n · L, classes]` token logits; [`SequenceTagger::token_logits`]
//! gives them as `[n, L, classes]`. Mixing at sequence points (embedding, layers) works as for
//! the classifiers; the last point is per token and is not a mixing point for sentence-level
//! methods.
//!
//! [`SequenceTagger::on_bert`] puts the same head on a pretrained BERT-family encoder.
//!
//! The encoder is built as a classifier with a single output (its pooling head is never run;
//! it is a few hundred parameters that get no gradient). The Transformer encoder is built
//! without a `[CLS]` vector, so positions line up with tokens; with pre-LN its final
//! LayerNorm is applied to every token state.

use burn::{
    config::Config,
    module::Module,
    nn::{Dropout, DropoutConfig, Linear, LinearConfig},
    tensor::{Bool, Device, Int, Tensor},
};
use mixup_core::{MixState, PointKind};

use crate::{
    BertClassifier, BertEncoder, BiLstmClassifier, BiLstmClassifierConfig, CharCnn, CharCnnConfig,
    Crf, MixingPoints, TransformerClassifier, TransformerClassifierConfig,
};

/// The encoder of a [`SequenceTagger`].
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum TaggerEncoder {
    /// Stacked bidirectional LSTM layers.
    BiLstm(BiLstmClassifier),
    /// Transformer encoder layers.
    Transformer(TransformerClassifier),
    /// A pretrained BERT-family encoder (its sentence head is never run).
    Bert(BertClassifier),
}

/// Which encoder a [`SequenceTaggerConfig`] builds.
#[derive(Config, Debug)]
pub enum TaggerKind {
    /// BiLSTM with this configuration (its `num_classes` and pooling are ignored).
    BiLstm(BiLstmClassifierConfig),
    /// Transformer with this configuration (`num_classes` and `cls_pooling` are ignored).
    Transformer(TransformerClassifierConfig),
}

/// Configuration of a [`SequenceTagger`].
#[derive(Config, Debug)]
pub struct SequenceTaggerConfig {
    /// The encoder.
    pub encoder: TaggerKind,
    /// Number of tags.
    pub num_tags: usize,
    /// Dropout before the token head.
    #[config(default = 0.5)]
    pub dropout: f64,
    /// A CRF output layer over the token scores ([`Crf`]).
    #[config(default = false)]
    pub crf: bool,
    /// Character features of every word ([`CharCnn`]): concatenated to the word embedding
    /// before the first BiLSTM layer; for the Transformer, projected to `d_model` and added
    /// to the token embedding (the same as concatenating and projecting both).
    pub chars: Option<CharCnnConfig>,
    /// Dropout on the encoder's input (the word embedding and character features).
    #[config(default = 0.0)]
    pub input_dropout: f64,
}

/// A sequence tagger: encoder, dropout, a linear layer applied to every token state, and
/// optionally a CRF over the token scores (then the head's outputs are the CRF's emissions).
#[derive(Module, Debug)]
pub struct SequenceTagger {
    /// The encoder.
    pub encoder: TaggerEncoder,
    /// Dropout before the head.
    pub dropout: Dropout,
    /// Token head.
    pub head: Linear,
    /// The CRF layer, when the tagger has one.
    pub crf: Option<Crf>,
    /// The character CNN, when the tagger reads character features.
    pub chars: Option<CharCnn>,
    /// The Transformer's projection of character features to `d_model`.
    pub char_proj: Option<Linear>,
    /// Dropout on the encoder's input.
    pub input_dropout: Dropout,
}

impl SequenceTaggerConfig {
    /// Builds the tagger with freshly initialised parameters.
    ///
    /// # Panics
    ///
    /// If a size is zero.
    pub fn init(&self, device: &Device) -> SequenceTagger {
        assert!(self.num_tags > 0, "a tagger needs at least one tag");
        let chars = self.chars.as_ref().map(|c| c.init(device));
        let extra = chars.as_ref().map_or(0, CharCnn::filters);
        let mut char_proj = None;
        let (encoder, width) = match &self.encoder {
            TaggerKind::BiLstm(c) => (
                TaggerEncoder::BiLstm({
                    let mut c = c.clone();
                    c.num_classes = 1;
                    c.d_extra_input = extra;
                    c.init(device)
                }),
                2 * c.d_hidden,
            ),
            TaggerKind::Transformer(c) => (
                TaggerEncoder::Transformer({
                    let mut c = c.clone().with_cls_pooling(false);
                    c.num_classes = 1;
                    c.init(device)
                }),
                {
                    if extra > 0 {
                        char_proj = Some(LinearConfig::new(extra, c.d_model).init(device));
                    }
                    c.d_model
                },
            ),
        };
        SequenceTagger {
            encoder,
            dropout: DropoutConfig::new(self.dropout).init(),
            head: LinearConfig::new(width, self.num_tags).init(device),
            crf: self.crf.then(|| Crf::new(self.num_tags, device)),
            chars,
            char_proj,
            input_dropout: DropoutConfig::new(self.input_dropout).init(),
        }
    }
}

impl SequenceTagger {
    /// A tagger on a pretrained BERT-family encoder: dropout and a fresh linear layer on every
    /// sub-token state (the caller labels, e.g., the first sub-token of each word), and a CRF
    /// over the labelled positions when `crf` is set.
    pub fn on_bert(
        encoder: BertEncoder,
        num_tags: usize,
        dropout: f64,
        crf: bool,
        device: &Device,
    ) -> Self {
        let width = encoder.hidden_size();
        Self {
            encoder: TaggerEncoder::Bert(BertClassifier::new(encoder, 1, dropout, device)),
            dropout: DropoutConfig::new(dropout).init(),
            head: LinearConfig::new(width, num_tags).init(device),
            crf: crf.then(|| Crf::new(num_tags, device)),
            chars: None,
            char_proj: None,
            input_dropout: DropoutConfig::new(0.0).init(),
        }
    }

    /// Whether the tagger reads character features (then its inputs need byte ids:
    /// [`Self::forward_tokens`] with `Some(bytes)`).
    pub fn has_char_features(&self) -> bool {
        self.chars.is_some()
    }

    /// The encoder's input state: the word embedding, with the character features of `bytes`
    /// (`[n, L, W]` byte ids, [`crate::chars::byte_ids`]) when the tagger has them, and the
    /// input dropout.
    ///
    /// # Panics
    ///
    /// A tagger with character features given no bytes, or bytes whose `[n, L]` differ from
    /// the ids'.
    pub fn embed_tokens(
        &self,
        ids: Tensor<2, Int>,
        bytes: Option<Tensor<3, Int>>,
        mask: Tensor<2, Bool>,
    ) -> MixState {
        let state = match &self.encoder {
            TaggerEncoder::BiLstm(m) => m.embed(ids.clone(), mask),
            TaggerEncoder::Transformer(m) => m.embed(ids.clone(), mask),
            TaggerEncoder::Bert(m) => m.embed(ids.clone(), mask),
        };
        let MixState::Sequence { hidden, mask } = state else {
            return state;
        };
        let hidden = match (&self.chars, bytes) {
            (None, _) => hidden,
            (Some(cnn), Some(bytes)) => {
                let [n, l] = ids.dims();
                let [bn, bl, _] = bytes.dims();
                assert!(
                    bn == n && bl == l,
                    "SequenceTagger: byte ids [{bn}, {bl}, _] for ids [{n}, {l}]"
                );
                let words = cnn.forward(bytes);
                let words = mixup_core::zero_padding(words, mask.clone());
                match &self.char_proj {
                    Some(proj) => hidden + proj.forward(words),
                    None => Tensor::cat(vec![hidden, words], 2),
                }
            }
            (Some(_), None) => panic!(
                "SequenceTagger: this tagger reads character features; pass the byte ids \
                 (SequenceTagger::forward_tokens)"
            ),
        };
        let hidden = mixup_kernels::dropout(&self.input_dropout, hidden);
        MixState::Sequence { hidden, mask }
    }

    /// Token scores `[n · L, tags]` (see [`Self::embed_tokens`] for `bytes`).
    pub fn forward_tokens(
        &self,
        ids: Tensor<2, Int>,
        bytes: Option<Tensor<3, Int>>,
        mask: Tensor<2, Bool>,
    ) -> Tensor<2> {
        let mut state = self.embed_tokens(ids, bytes, mask);
        for p in 0..self.num_points() - 1 {
            state = self.advance(state, p);
        }
        match state {
            MixState::Pooled(tokens) => self.head(tokens),
            MixState::Sequence { .. } => unreachable!("a tagger's last point holds token rows"),
        }
    }

    fn encoder_points(&self) -> Vec<PointKind> {
        match &self.encoder {
            TaggerEncoder::BiLstm(m) => m.points(),
            TaggerEncoder::Transformer(m) => m.points(),
            TaggerEncoder::Bert(m) => m.points(),
        }
    }

    /// Token logits `[n, L, tags]` for ids `[n, L]`, their byte ids when the tagger reads
    /// character features, and their mask (true = real token).
    pub fn token_logits(
        &self,
        ids: Tensor<2, Int>,
        bytes: Option<Tensor<3, Int>>,
        mask: Tensor<2, Bool>,
    ) -> Tensor<3> {
        let [n, l] = ids.dims();
        let logits = self.forward_tokens(ids, bytes, mask);
        let c = logits.dims()[1];
        logits.reshape([n, l, c])
    }

    /// The embedding table `[vocab, d]` (SeqMix projects mixed embeddings onto it).
    pub fn embedding_table(&self) -> Tensor<2> {
        match &self.encoder {
            TaggerEncoder::BiLstm(m) => m.embedding.weight.val(),
            TaggerEncoder::Transformer(m) => m.token.weight.val(),
            TaggerEncoder::Bert(m) => m.encoder.embeddings.word.weight.val(),
        }
    }
}

impl MixingPoints for SequenceTagger {
    fn points(&self) -> Vec<PointKind> {
        self.encoder_points()
    }

    /// The embedding output, with the input dropout.
    ///
    /// # Panics
    ///
    /// A tagger with character features (it needs byte ids: [`SequenceTagger::embed_tokens`]).
    fn embed(&self, ids: Tensor<2, Int>, mask: Tensor<2, Bool>) -> MixState {
        self.embed_tokens(ids, None, mask)
    }

    fn advance(&self, state: MixState, point: usize) -> MixState {
        let last = self.encoder_points().len() - 1;
        if point + 1 < last {
            return match &self.encoder {
                TaggerEncoder::BiLstm(m) => m.advance(state, point),
                TaggerEncoder::Transformer(m) => m.advance(state, point),
                TaggerEncoder::Bert(m) => m.advance(state, point),
            };
        }
        match state {
            MixState::Sequence { hidden, .. } if point + 1 == last => {
                let hidden = match &self.encoder {
                    TaggerEncoder::Transformer(m) => match &m.norm_final {
                        Some(norm) => norm.forward(hidden),
                        None => hidden,
                    },
                    TaggerEncoder::BiLstm(_) | TaggerEncoder::Bert(_) => hidden,
                };
                let [n, l, d] = hidden.dims();
                MixState::Pooled(hidden.reshape([n * l, d]))
            }
            _ => panic!("SequenceTagger has no step from point {point} (points are 0..={last})"),
        }
    }

    fn head_params(&self) -> Vec<burn::module::ParamId> {
        crate::mixing::linear_params(&self.head)
    }

    fn head(&self, tokens: Tensor<2>) -> Tensor<2> {
        self.head
            .forward(mixup_kernels::dropout(&self.dropout, tokens))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taggers(device: &Device) -> Vec<SequenceTagger> {
        device.seed(0);
        vec![
            SequenceTaggerConfig::new(
                TaggerKind::BiLstm(
                    BiLstmClassifierConfig::new(20, 1)
                        .with_d_embed(8)
                        .with_d_hidden(6),
                ),
                5,
            )
            .init(device),
            SequenceTaggerConfig::new(
                TaggerKind::Transformer(
                    TransformerClassifierConfig::new(20, 1)
                        .with_d_model(8)
                        .with_n_heads(2)
                        .with_n_layers(2)
                        .with_d_ff(16)
                        .with_max_positions(10),
                ),
                5,
            )
            .init(device),
        ]
    }

    #[test]
    fn token_logits_have_one_row_per_token_and_ignore_padding() {
        let device = Device::flex();
        for tagger in taggers(&device) {
            let ids = Tensor::<2, Int>::from_ints([[3, 4, 5, 0], [6, 7, 0, 0]], &device);
            let mask = ids.clone().greater_elem(0);
            let a = tagger.token_logits(ids, None, mask.clone());
            assert_eq!(a.dims(), [2, 4, 5]);
            // Changing a padded id leaves every real token's logits unchanged.
            let ids2 = Tensor::<2, Int>::from_ints([[3, 4, 5, 9], [6, 7, 9, 1]], &device);
            let b = tagger.token_logits(ids2, None, mask);
            let diff: f32 = (a.slice([0..1, 0..3]) - b.clone().slice([0..1, 0..3]))
                .abs()
                .max()
                .into_scalar();
            assert!(diff < 1e-5, "padding leaked: {diff}");
            assert_eq!(tagger.embedding_table().dims(), [20, 8]);
            assert_eq!(tagger.points().len(), tagger.num_points());
            assert!(matches!(tagger.points().last(), Some(PointKind::Pooled)));
        }
    }

    /// With character features: the byte ids change a real token's scores (an `<unk>` word
    /// spelled differently scores differently), padding tokens and padding bytes do not, and
    /// gradients reach the character CNN.
    #[test]
    fn char_features_reach_the_scores_and_keep_padding_out() {
        use crate::chars::byte_ids;
        use burn::tensor::TensorData;
        for encoder in [
            TaggerKind::BiLstm(
                BiLstmClassifierConfig::new(20, 1)
                    .with_d_embed(8)
                    .with_d_hidden(6),
            ),
            TaggerKind::Transformer(
                TransformerClassifierConfig::new(20, 1)
                    .with_d_model(8)
                    .with_n_heads(2)
                    .with_n_layers(1)
                    .with_d_ff(16)
                    .with_max_positions(10),
            ),
        ] {
            for autodiff in [false, true] {
                let device = if autodiff {
                    Device::flex().autodiff()
                } else {
                    Device::flex()
                };
                device.seed(1);
                let tagger = SequenceTaggerConfig::new(encoder.clone(), 5)
                    .with_chars(Some(CharCnnConfig::new().with_filters(4).with_d_char(3)))
                    .init(&device);
                assert!(tagger.has_char_features());
                let bytes = |words: &[&str], w: usize| {
                    let mut v = Vec::new();
                    for word in words {
                        let b = byte_ids(word);
                        v.extend((0..w).map(|j| b.get(j).map_or(0, |&x| i64::from(x))));
                    }
                    Tensor::<3, Int>::from_data(TensorData::new(v, [1, words.len(), w]), &device)
                };
                // Both words are <unk> (id 1); the third position is padding.
                let ids = Tensor::<2, Int>::from_ints([[1, 1, 0]], &device);
                let mask = ids.clone().greater_elem(0);
                if autodiff {
                    // Gradients reach the byte embedding.
                    let loss = tagger
                        .token_logits(ids, Some(bytes(&["Smith", "Paris", ""], 6)), mask)
                        .sum();
                    let grads = loss.backward();
                    let cnn = tagger.chars.as_ref().expect("cnn");
                    let g = cnn
                        .embedding
                        .weight
                        .grad(&grads)
                        .expect("byte embedding gradient");
                    let g: f32 = g.abs().sum().into_scalar();
                    assert!(g > 0.0);
                    continue;
                }
                let tagger = tagger.valid();
                let score = |b| -> Vec<f32> {
                    tagger
                        .token_logits(ids.clone(), Some(b), mask.clone())
                        .into_data()
                        .try_to_vec::<f32>()
                        .expect("host")
                };
                let a = score(bytes(&["Smith", "Paris", ""], 6));
                let b = score(bytes(&["Smith", "Paris", "zzz"], 9));
                let c = score(bytes(&["Smith", "Rome", ""], 6));
                for (x, y) in a[..10].iter().zip(&b[..10]) {
                    assert!((x - y).abs() < 1e-5, "padding leaked into real tokens");
                }
                assert!(
                    a[5..10]
                        .iter()
                        .zip(&c[5..10])
                        .any(|(x, y)| (x - y).abs() > 1e-5),
                    "the spelling of an <unk> word must change its scores"
                );
            }
        }
    }
}
