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
    BertClassifier, BertEncoder, BiLstmClassifier, BiLstmClassifierConfig, Crf, MixingPoints,
    TransformerClassifier, TransformerClassifierConfig,
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
}

impl SequenceTaggerConfig {
    /// Builds the tagger with freshly initialised parameters.
    ///
    /// # Panics
    ///
    /// If a size is zero.
    pub fn init(&self, device: &Device) -> SequenceTagger {
        assert!(self.num_tags > 0, "a tagger needs at least one tag");
        let (encoder, width) = match &self.encoder {
            TaggerKind::BiLstm(c) => (
                TaggerEncoder::BiLstm({
                    let mut c = c.clone();
                    c.num_classes = 1;
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
                c.d_model,
            ),
        };
        SequenceTagger {
            encoder,
            dropout: DropoutConfig::new(self.dropout).init(),
            head: LinearConfig::new(width, self.num_tags).init(device),
            crf: self.crf.then(|| Crf::new(self.num_tags, device)),
        }
    }
}

impl SequenceTagger {
    /// A tagger on a pretrained BERT-family encoder: dropout and a fresh linear layer on every
    /// sub-token state (the caller labels, e.g., the first sub-token of each word).
    pub fn on_bert(encoder: BertEncoder, num_tags: usize, dropout: f64, device: &Device) -> Self {
        let width = encoder.hidden_size();
        Self {
            encoder: TaggerEncoder::Bert(BertClassifier::new(encoder, 1, dropout, device)),
            dropout: DropoutConfig::new(dropout).init(),
            head: LinearConfig::new(width, num_tags).init(device),
            crf: None,
        }
    }

    fn encoder_points(&self) -> Vec<PointKind> {
        match &self.encoder {
            TaggerEncoder::BiLstm(m) => m.points(),
            TaggerEncoder::Transformer(m) => m.points(),
            TaggerEncoder::Bert(m) => m.points(),
        }
    }

    /// Token logits `[n, L, tags]` for ids `[n, L]` and their mask (true = real token).
    pub fn token_logits(&self, ids: Tensor<2, Int>, mask: Tensor<2, Bool>) -> Tensor<3> {
        let [n, l] = ids.dims();
        let logits = self.forward(ids, mask);
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

    fn embed(&self, ids: Tensor<2, Int>, mask: Tensor<2, Bool>) -> MixState {
        match &self.encoder {
            TaggerEncoder::BiLstm(m) => m.embed(ids, mask),
            TaggerEncoder::Transformer(m) => m.embed(ids, mask),
            TaggerEncoder::Bert(m) => m.embed(ids, mask),
        }
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
            let a = tagger.token_logits(ids, mask.clone());
            assert_eq!(a.dims(), [2, 4, 5]);
            // Changing a padded id leaves every real token's logits unchanged.
            let ids2 = Tensor::<2, Int>::from_ints([[3, 4, 5, 9], [6, 7, 9, 1]], &device);
            let b = tagger.token_logits(ids2, mask);
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
}
