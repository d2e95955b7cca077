//! # mixup-data
//!
//! Text-classification data for the mixup zoo, from files on disk to Burn tensors:
//!
//! - [`read_examples`]: loaders for `label<TAB>text` TSV, CSV with a header (columns by name),
//!   JSONL (`{"text": .., "label": ..}`) and the original TREC line format
//!   (`COARSE:fine question`), all returning [`Example`]s that remember their file and line.
//! - [`Splits::load`]: the `train` / `dev` / `test` layout of a dataset folder.
//! - [`LabelSet`] (built from train; an unseen dev/test label is an error naming file and line)
//!   and [`WordTokenizer`] (lowercasing, `min_freq`, `max_vocab`, `<pad>` = 0, `<unk>` = 1),
//!   both serde-serialisable so a run can save them beside its checkpoint.
//! - [`WordPieceTokenizer`]: BERT's WordPiece subwords (from a model's `tokenizer.json` or a
//!   bare `vocab.txt`) with `[CLS]`/`[SEP]`, truncation that keeps `[SEP]` last, and the
//!   sub-token → word alignment for token labelling.
//! - Sequence labelling: [`read_conll`] (CoNLL columns, `-DOCSTART-` skipped, IOB1 converted
//!   to BIO), [`entity_scores`] (entity-level precision, recall and F1 with `conlleval`
//!   semantics) and [`KneserNeyLm`] (a word n-gram model with modified Kneser-Ney smoothing,
//!   SeqMix's plausibility filter).
//! - [`TextBatch`]: token ids padded to the longest item of the batch (capped by `max_len`),
//!   the padding mask and the labels.
//!
//! Every failure on user input is a [`DataError`] that names the file and, where there is
//! one, the line; nothing here panics on a malformed file.

#![deny(missing_docs)]

mod batch;
mod conll;
mod entities;
mod error;
mod labels;
mod ngram;
mod read;
mod splits;
mod unlabelled;
mod vocab;
mod wordpiece;

pub use batch::{TextBatch, batch_indices};
pub use conll::{ConllOptions, TagScheme, TaggedSentence, iob1_to_bio, parse_conll, read_conll};
pub use entities::{Entity, EntityScores, Prf, entities, entity_scores};
pub use error::DataError;
pub use labels::LabelSet;
pub use ngram::KneserNeyLm;
pub use read::{
    Example, Format, MAX_LINE_BYTES, TrecLabels, parse_examples, parse_trec_line, read_examples,
    read_trec, read_tsv,
};
pub use splits::Splits;
pub use unlabelled::{UnlabelledText, augment_words, read_unlabelled};
pub use vocab::{EncodedExample, PAD_ID, SEP_TOKEN, UNK_ID, WordTokenizer, WordTokenizerConfig};
pub use wordpiece::WordPieceTokenizer;
