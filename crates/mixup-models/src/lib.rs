//! # mixup-models
//!
//! The models of the mixup zoo, as ordinary Burn modules (`XConfig::init(&device)`,
//! `forward`), each exposing its **mixing points** through one trait, [`MixingPoints`]:
//! point 0 is the embedding output, then the output of each layer, and the last point is the
//! pooled sentence vector. "Run both inputs to point k, mix them under the union of their
//! padding masks, continue with the mixed state" is [`MixingPoints::forward_mixed`] (partner
//! rows of the same batch) or [`MixingPoints::forward_mixed_pair`] (a separate partner batch).
//!
//! | model | file | points |
//! |---|---|---|
//! | [`TextCnn`] (Kim 2014) | `textcnn.rs` | embedding, convolution features, pooled |
//! | [`BiLstmClassifier`] (Guo et al. 2019) | `bilstm.rs` | embedding, each BiLSTM layer, pooled |
//! | [`TransformerClassifier`] (Vaswani et al. 2017) | `transformer.rs` | embedding, each encoder layer, pooled |
//! | [`BertClassifier`] (Devlin et al. 2019) | `bert.rs` | embedding, each encoder layer, `[CLS]` (pooled) |
//! | [`SequenceTagger`] (NER) | `tagger.rs` | its encoder's, the last one per token; optional [`Crf`] (`crf.rs`) and [`CharCnn`] character features (`chars.rs`) |
//!
//! [`BertEncoder::from_pretrained`] loads a Hugging Face BERT checkpoint folder (`config.json`
//! and safetensors weights, single file or sharded); [`BertTokenClassifier`] puts a per-position
//! head on the same encoder. Apart from that loader, nothing here reads files (other than
//! through Burn's record API), prints, or picks a backend.

#![deny(missing_docs)]

mod bert;
mod bilstm;
pub mod chars;
pub mod crf;
mod mixing;
mod tagger;
#[cfg(test)]
mod testing;
mod textcnn;
mod transformer;

pub use bert::{
    BertClassifier, BertConfig, BertEmbeddings, BertEncoder, BertLayer, BertLoadError,
    BertSelfAttention, BertTokenClassifier, HF_TO_BURN, pair_token_types,
};
pub use bilstm::{BiLayer, BiLstmClassifier, BiLstmClassifierConfig};
pub use chars::{CharCnn, CharCnnConfig};
pub use crf::Crf;
pub use mixing::{MixingPoints, linear_params};
pub use tagger::{SequenceTagger, SequenceTaggerConfig, TaggerEncoder, TaggerKind};
pub use textcnn::{TextCnn, TextCnnConfig};
pub use transformer::{EncoderLayer, TransformerClassifier, TransformerClassifierConfig};
