//! [`WordPieceTokenizer`]: BERT's subword tokenization (Wu et al. 2016, "Google's Neural
//! Machine Translation System", <https://arxiv.org/abs/1609.08144>; as used by Devlin et al.
//! 2019, <https://arxiv.org/abs/1810.04805>), through Hugging Face's `tokenizers` crate.
//!
//! Two sources give the same pipeline for a BERT checkpoint:
//!
//! - [`WordPieceTokenizer::from_tokenizer_json`]: a `tokenizer.json` as shipped with the model.
//!   Its built-in padding and truncation are switched off: batches pad themselves
//!   ([`crate::TextBatch`]-style) and [`WordPieceTokenizer::encode`] truncates to the
//!   `max_len` it is given.
//! - [`WordPieceTokenizer::from_vocab_txt`]: a bare `vocab.txt` (one token per line, line
//!   index = id), with BERT's normaliser (clean-up, CJK spacing, optional lowercasing and accent
//!   stripping), BERT's pre-tokeniser (whitespace and punctuation), WordPiece (`##`
//!   continuation prefix, `[UNK]` for words it cannot split) and `[CLS] … [SEP]`
//!   post-processing.
//!
//! Every encoding starts with `[CLS]` and ends with `[SEP]`, also when it is cut to `max_len`.
//! [`WordPieceTokenizer::encode_words`] takes pre-split words (CoNLL-style NER) and returns,
//! for every sub-token, the index of the word it came from (`None` for `[CLS]`/`[SEP]`), so
//! labels can go on the first sub-token of each word.

use std::path::{Path, PathBuf};

use tokenizers::{
    AddedToken, EncodeInput, Encoding, Tokenizer, TruncationDirection,
    decoders::wordpiece::WordPiece as WordPieceDecoder, models::wordpiece::WordPiece,
    normalizers::bert::BertNormalizer, pre_tokenizers::bert::BertPreTokenizer,
    processors::bert::BertProcessing,
};

use crate::error::DataError;

/// BERT's special tokens, in the order `vocab.txt` files usually list them.
const SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// A WordPiece tokenizer for BERT-family encoders. Load it with
/// [`WordPieceTokenizer::from_tokenizer_json`], [`WordPieceTokenizer::from_vocab_txt`] or
/// [`WordPieceTokenizer::from_dir`].
#[derive(Clone, Debug)]
pub struct WordPieceTokenizer {
    tokenizer: Tokenizer,
    /// The file it was loaded from (named in errors).
    source: PathBuf,
    pad_id: u32,
    cls_id: u32,
    sep_id: u32,
    /// Tokens the post-processor adds to one sequence (2: `[CLS]`, `[SEP]`).
    n_special: usize,
}

impl WordPieceTokenizer {
    /// Loads a Hugging Face `tokenizer.json`, with its padding and truncation turned off.
    ///
    /// # Errors
    ///
    /// [`DataError::Io`] if the file cannot be read; [`DataError::Tokenizer`] if it is not a
    /// valid `tokenizer.json` or lacks `[CLS]`, `[SEP]` or a padding token.
    pub fn from_tokenizer_json(path: impl AsRef<Path>) -> Result<Self, DataError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut tokenizer = Tokenizer::from_bytes(&bytes)
            .map_err(|e| DataError::tokenizer(path, format!("not a valid tokenizer.json: {e}")))?;
        let pad_from_padding = tokenizer.get_padding().map(|p| p.pad_id);
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| DataError::tokenizer(path, format!("cannot turn off truncation: {e}")))?;
        Self::finish(tokenizer, path, pad_from_padding)
    }

    /// Builds BERT's pipeline around a bare `vocab.txt`: [`BertNormalizer`] (lowercasing and
    /// accent stripping when `lowercase`), [`BertPreTokenizer`], WordPiece (`##` prefix,
    /// `[UNK]`, words over 100 characters become `[UNK]`) and `[CLS] … [SEP]`.
    ///
    /// # Errors
    ///
    /// [`DataError::Io`] if the file cannot be read; [`DataError::Empty`] if it has no tokens;
    /// [`DataError::Tokenizer`] if it is not UTF-8 or lacks `[UNK]`, `[CLS]`, `[SEP]` or
    /// `[PAD]`.
    pub fn from_vocab_txt(path: impl AsRef<Path>, lowercase: bool) -> Result<Self, DataError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let vocab = WordPiece::read_bytes(&bytes)
            .map_err(|e| DataError::tokenizer(path, format!("unreadable vocabulary: {e}")))?;
        if vocab.is_empty() {
            return Err(DataError::Empty {
                path: path.to_path_buf(),
            });
        }
        let id = |token: &str| {
            vocab.get(token).copied().ok_or_else(|| {
                DataError::tokenizer(path, format!("the vocabulary has no {token} token"))
            })
        };
        let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
        id("[UNK]")?;
        let model = WordPiece::builder()
            .vocab(vocab.clone())
            .unk_token("[UNK]".into())
            .continuing_subword_prefix("##".into())
            .max_input_chars_per_word(100)
            .build()
            .map_err(|e| DataError::tokenizer(path, format!("cannot build WordPiece: {e}")))?;
        let mut tokenizer = Tokenizer::new(model);
        tokenizer
            .with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)))
            .with_pre_tokenizer(Some(BertPreTokenizer))
            .with_post_processor(Some(BertProcessing::new(
                ("[SEP]".into(), sep),
                ("[CLS]".into(), cls),
            )))
            .with_decoder(Some(WordPieceDecoder::new("##".into(), true)));
        let specials: Vec<AddedToken> = SPECIAL_TOKENS
            .iter()
            .filter(|t| vocab.contains_key(**t))
            .map(|t| AddedToken::from(*t, true))
            .collect();
        tokenizer.add_special_tokens(&specials);
        Self::finish(tokenizer, path, None)
    }

    /// Loads `dir/tokenizer.json` if there is one, else `dir/vocab.txt` (lowercased, as the
    /// uncased BERT models).
    ///
    /// # Errors
    ///
    /// As the two loaders; [`DataError::Io`] naming `vocab.txt` when neither file exists.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, DataError> {
        let json = dir.as_ref().join("tokenizer.json");
        if json.is_file() {
            Self::from_tokenizer_json(json)
        } else {
            Self::from_vocab_txt(dir.as_ref().join("vocab.txt"), true)
        }
    }

    fn finish(tokenizer: Tokenizer, path: &Path, pad: Option<u32>) -> Result<Self, DataError> {
        let id = |token: &str| {
            tokenizer.token_to_id(token).ok_or_else(|| {
                DataError::tokenizer(path, format!("the tokenizer has no {token} token"))
            })
        };
        let (cls_id, sep_id) = (id("[CLS]")?, id("[SEP]")?);
        let pad_id = match pad {
            Some(pad) => pad,
            None => id("[PAD]")?,
        };
        let n_special = tokenizer
            .get_post_processor()
            .map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, false));
        Ok(Self {
            tokenizer,
            source: path.to_path_buf(),
            pad_id,
            cls_id,
            sep_id,
            n_special,
        })
    }

    /// Id of the padding token `[PAD]`.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Id of `[CLS]`, the first token of every encoding.
    pub fn cls_id(&self) -> u32 {
        self.cls_id
    }

    /// Id of `[SEP]`, the last token of every encoding.
    pub fn sep_id(&self) -> u32 {
        self.sep_id
    }

    /// Number of ids (rows the embedding table needs), added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// The token of `id`, if any.
    pub fn token(&self, id: u32) -> Option<String> {
        self.tokenizer.id_to_token(id)
    }

    /// The id of `token`, if it is in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    /// The file the tokenizer was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Encodes with special tokens and cuts the content so that the whole encoding has at most
    /// `max_len` ids, `[CLS]` first and `[SEP]` last. A `max_len` below the number of special
    /// tokens (2) is raised to it.
    fn encode_input<'s>(
        &self,
        input: impl Into<EncodeInput<'s>>,
        max_len: usize,
    ) -> Result<Encoding, DataError> {
        let fail = |e: tokenizers::Error| {
            DataError::tokenizer(&self.source, format!("encoding failed: {e}"))
        };
        let mut encoding = self.tokenizer.encode(input, false).map_err(fail)?;
        let room = max_len.saturating_sub(self.n_special);
        if encoding.len() > room {
            encoding.truncate(room, 0, TruncationDirection::Right);
            // Dropped parts are not wanted (no sliding windows).
            encoding.set_overflowing(Vec::new());
        }
        self.tokenizer
            .post_process(encoding, None, true)
            .map_err(fail)
    }

    /// The ids of `text`: `[CLS]`, its WordPiece ids, `[SEP]`, cut to at most `max_len` ids
    /// (at least 2) with `[SEP]` kept last.
    ///
    /// # Errors
    ///
    /// [`DataError::Tokenizer`] if the tokenizer fails on the text.
    pub fn encode(&self, text: &str, max_len: usize) -> Result<Vec<u32>, DataError> {
        Ok(self.encode_input(text, max_len)?.get_ids().to_vec())
    }

    /// The ids of a text pair, `[CLS] a [SEP] b [SEP]`, at most `max_len` ids (at least 3):
    /// longer pairs lose sub-tokens from the end of the longer text first (Hugging Face's
    /// `longest_first`). The second text starts after the first `[SEP]` (its token type is 1;
    /// BERT-family models find it there).
    ///
    /// # Errors
    ///
    /// [`DataError::Tokenizer`] if the tokenizer fails on a text.
    pub fn encode_pair(&self, a: &str, b: &str, max_len: usize) -> Result<Vec<u32>, DataError> {
        let fail = |e: tokenizers::Error| {
            DataError::tokenizer(&self.source, format!("encoding failed: {e}"))
        };
        let ea = self.tokenizer.encode(a, false).map_err(fail)?;
        let eb = self.tokenizer.encode(b, false).map_err(fail)?;
        let special = self
            .tokenizer
            .get_post_processor()
            .map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, true));
        let params = tokenizers::TruncationParams {
            max_length: max_len.max(special + 1).saturating_sub(special),
            strategy: tokenizers::TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        };
        let (mut ea, eb) = tokenizers::utils::truncation::truncate_encodings(ea, Some(eb), &params)
            .map_err(fail)?;
        ea.set_overflowing(Vec::new());
        let mut eb = eb.unwrap_or_default();
        eb.set_overflowing(Vec::new());
        let joined = self
            .tokenizer
            .post_process(ea, Some(eb), true)
            .map_err(fail)?;
        Ok(joined.get_ids().to_vec())
    }

    /// The ids of pre-split `words` (each may become several sub-tokens), cut as
    /// [`WordPieceTokenizer::encode`], and for each id the index of its word in `words`
    /// (`None` for `[CLS]` and `[SEP]`).
    ///
    /// # Errors
    ///
    /// [`DataError::Tokenizer`] if the tokenizer fails on the words.
    pub fn encode_words(
        &self,
        words: &[&str],
        max_len: usize,
    ) -> Result<(Vec<u32>, Vec<Option<usize>>), DataError> {
        let encoding = self.encode_input(words, max_len)?;
        let word_ids = encoding
            .get_word_ids()
            .iter()
            .map(|w| w.map(|w| w as usize))
            .collect();
        Ok((encoding.get_ids().to_vec(), word_ids))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::Value;

    use super::*;

    /// `shared/data/all-minilm-l6-v2`, or `None` (after a note) when it is absent outside CI.
    ///
    /// # Panics
    ///
    /// When it is absent and `CI=true`.
    fn minilm_dir() -> Option<PathBuf> {
        let data = std::env::var_os("MIXUP_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
        let dir = data.join("all-minilm-l6-v2");
        if dir.join("vocab.txt").is_file() && dir.join("tokenizer.json").is_file() {
            return Some(dir);
        }
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "{}: all-MiniLM-L6-v2 is missing (set MIXUP_DATA_DIR to the folder holding \
                 all-minilm-l6-v2/); CI must run this test",
                dir.display()
            );
        }
        eprintln!("skipped: {} not found (set MIXUP_DATA_DIR)", dir.display());
        None
    }

    fn both(dir: &Path) -> [WordPieceTokenizer; 2] {
        [
            WordPieceTokenizer::from_tokenizer_json(dir.join("tokenizer.json"))
                .expect("tokenizer.json"),
            WordPieceTokenizer::from_vocab_txt(dir.join("vocab.txt"), true).expect("vocab.txt"),
        ]
    }

    #[test]
    fn reference_sentences_match_from_both_sources() {
        let Some(dir) = minilm_dir() else { return };
        let text =
            std::fs::read_to_string(dir.join("reference_outputs.json")).expect("reference file");
        let reference: Value = serde_json::from_str(&text).expect("reference json");
        let sentences = reference["sentences"].as_array().expect("sentences");
        assert!(!sentences.is_empty());
        for tok in both(&dir) {
            assert_eq!(tok.vocab_size(), 30522, "{}", tok.source().display());
            assert_eq!((tok.pad_id(), tok.cls_id(), tok.sep_id()), (0, 101, 102));
            for s in sentences {
                let text = s["text"].as_str().expect("text");
                let want_ids: Vec<u32> = s["input_ids"]
                    .as_array()
                    .expect("ids")
                    .iter()
                    .map(|v| v.as_u64().expect("id") as u32)
                    .collect();
                let want_tokens: Vec<&str> = s["tokens"]
                    .as_array()
                    .expect("tokens")
                    .iter()
                    .map(|v| v.as_str().expect("token"))
                    .collect();
                let ids = tok.encode(text, 256).expect("encode");
                assert_eq!(ids, want_ids, "{}: {text}", tok.source().display());
                let tokens: Vec<String> =
                    ids.iter().map(|&i| tok.token(i).expect("token")).collect();
                assert_eq!(tokens, want_tokens, "{}: {text}", tok.source().display());
            }
        }
    }

    /// A pair is `[CLS] a [SEP] b [SEP]`, and a cut pair loses sub-tokens from the end of the
    /// longer text first.
    #[test]
    fn pairs_join_with_sep_and_cut_the_longer_text_first() {
        let Some(dir) = minilm_dir() else { return };
        let (a, b) = (
            "How did serfdom develop in and then leave Russia ?",
            "Why ?",
        );
        for tok in both(&dir) {
            let (ia, ib) = (
                tok.encode(a, 512).expect("a"),
                tok.encode(b, 512).expect("b"),
            );
            let (ca, cb) = (&ia[1..ia.len() - 1], &ib[1..ib.len() - 1]);
            let mut want = vec![tok.cls_id()];
            want.extend_from_slice(ca);
            want.push(tok.sep_id());
            want.extend_from_slice(cb);
            want.push(tok.sep_id());
            assert_eq!(tok.encode_pair(a, b, 512).expect("pair"), want);
            // 12 + 2 content tokens into 8 - 3 = 5: the longer loses 9, the shorter nothing.
            let cut = tok.encode_pair(a, b, 8).expect("cut");
            let mut want = vec![tok.cls_id()];
            want.extend_from_slice(&ca[..3]);
            want.push(tok.sep_id());
            want.extend_from_slice(cb);
            want.push(tok.sep_id());
            assert_eq!(cut, want);
            assert_eq!(tok.encode_pair(a, b, 0).expect("tiny").len(), 4);
        }
    }

    #[test]
    fn truncation_keeps_cls_first_and_sep_last() {
        let Some(dir) = minilm_dir() else { return };
        let text = "How did serfdom develop in and then leave Russia ?";
        for tok in both(&dir) {
            let full = tok.encode(text, 512).expect("full");
            assert_eq!(full.len(), 14);
            for max_len in [0, 1, 2, 3, 5, 13, 14, 20] {
                let ids = tok.encode(text, max_len).expect("cut");
                let len = full.len().min(max_len.max(2));
                assert_eq!(ids.len(), len, "max_len {max_len}");
                assert_eq!(ids[0], tok.cls_id());
                assert_eq!(ids[len - 1], tok.sep_id());
                assert_eq!(ids[..len - 1], full[..len - 1], "a prefix of the content");
            }
            // The built-in fixed padding of tokenizer.json is off.
            assert_eq!(tok.encode("hi", 128).expect("short").len(), 3);
        }
    }

    #[test]
    fn word_ids_align_with_words() {
        let Some(dir) = minilm_dir() else { return };
        let words = ["Serfdom", "re-imagining", "in", "Russia", "!"];
        for tok in both(&dir) {
            let (ids, word_ids) = tok.encode_words(&words, 64).expect("words");
            assert_eq!(ids.len(), word_ids.len());
            let tokens: Vec<String> = ids.iter().map(|&i| tok.token(i).expect("tok")).collect();
            assert_eq!(
                tokens,
                [
                    "[CLS]",
                    "ser",
                    "##f",
                    "##dom",
                    "re",
                    "-",
                    "imagining",
                    "in",
                    "russia",
                    "!",
                    "[SEP]"
                ]
            );
            assert_eq!(
                word_ids,
                [
                    None,
                    Some(0),
                    Some(0),
                    Some(0),
                    Some(1),
                    Some(1),
                    Some(1),
                    Some(2),
                    Some(3),
                    Some(4),
                    None
                ]
            );
            // Cut inside the second word: the alignment of what is kept is unchanged.
            let (cut, cut_words) = tok.encode_words(&words, 6).expect("cut");
            assert_eq!(cut.len(), 6);
            assert_eq!(*cut.last().expect("sep"), tok.sep_id());
            assert_eq!(cut[..5], ids[..5]);
            assert_eq!(cut_words[..5], word_ids[..5]);
            assert_eq!(cut_words[5], None);
        }
    }

    fn temp_file(name: &str, contents: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mixup-wordpiece-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        std::fs::write(&path, contents).expect("write");
        path
    }

    #[test]
    fn tiny_vocab_pipeline_and_errors() {
        let path = temp_file(
            "vocab.txt",
            "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n##s\n,\n",
        );
        let tok = WordPieceTokenizer::from_vocab_txt(&path, true).expect("tiny vocab");
        assert_eq!(tok.vocab_size(), 9);
        assert_eq!(
            tok.encode("Hello, WORLDS zzz", 16).expect("encode"),
            [2, 5, 8, 6, 7, 1, 3]
        );
        // A literal special token in the text is that token.
        assert_eq!(
            tok.encode("hello [SEP]", 16).expect("special"),
            [2, 5, 3, 3]
        );
        let (ids, words) = tok.encode_words(&[], 4).expect("no words");
        assert_eq!((ids, words), (vec![2, 3], vec![None, None]));

        // Errors name the file.
        let missing = path.with_file_name("absent.txt");
        let err = WordPieceTokenizer::from_vocab_txt(&missing, true).expect_err("absent");
        assert!(err.to_string().contains("absent.txt"), "{err}");
        let no_cls = temp_file("nocls.txt", "[PAD]\n[UNK]\n[SEP]\nhello\n");
        let err = WordPieceTokenizer::from_vocab_txt(&no_cls, true).expect_err("no cls");
        assert!(
            err.to_string().contains("nocls.txt") && err.to_string().contains("[CLS]"),
            "{err}"
        );
        let empty = temp_file("empty.txt", "");
        assert!(matches!(
            WordPieceTokenizer::from_vocab_txt(&empty, true),
            Err(DataError::Empty { .. })
        ));
        let bad_json = temp_file("tokenizer.json", "{\"version\": \"1.0\", \"model\": ");
        let err = WordPieceTokenizer::from_tokenizer_json(&bad_json).expect_err("bad json");
        assert!(
            matches!(err, DataError::Tokenizer { .. })
                && err.to_string().contains("tokenizer.json"),
            "{err}"
        );
        let err = WordPieceTokenizer::from_tokenizer_json(path.with_file_name("none.json"))
            .expect_err("absent json");
        assert!(matches!(err, DataError::Io { .. }) && err.to_string().contains("none.json"));
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }
}
