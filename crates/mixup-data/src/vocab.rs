//! [`WordTokenizer`]: whitespace word tokenization over a vocabulary built from training text.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Id of the padding token `<pad>`.
pub const PAD_ID: u32 = 0;
/// Id of the unknown-word token `<unk>`.
pub const UNK_ID: u32 = 1;
/// The word placed between the two texts of a pair ([`WordTokenizer::with_separator`]).
pub const SEP_TOKEN: &str = "<sep>";

/// How a [`WordTokenizer`] is built.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WordTokenizerConfig {
    /// Lowercase text before splitting.
    pub lowercase: bool,
    /// Words seen fewer times than this in training become `<unk>`.
    pub min_freq: usize,
    /// Keep at most this many entries, `<pad>` and `<unk>` included (most frequent first).
    pub max_vocab: Option<usize>,
    /// Replace every ASCII digit by `0` before looking a word up (Lample et al. 2016), so
    /// that `1996` and `2004` share one entry.
    #[serde(default)]
    pub zero_digits: bool,
}

impl Default for WordTokenizerConfig {
    fn default() -> Self {
        Self {
            lowercase: true,
            min_freq: 1,
            max_vocab: None,
            zero_digits: false,
        }
    }
}

/// A word-level tokenizer: splits on whitespace (after optional lowercasing) and maps words to
/// ids, `<pad>` = 0 and `<unk>` = 1. Serialisable, so a run's vocabulary can be saved and
/// reused by evaluation and prediction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "SavedTokenizer", into = "SavedTokenizer")]
pub struct WordTokenizer {
    lowercase: bool,
    zero_digits: bool,
    tokens: Vec<String>,
    index: HashMap<String, u32>,
}

#[derive(Serialize, Deserialize)]
struct SavedTokenizer {
    lowercase: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    zero_digits: bool,
    tokens: Vec<String>,
}

impl From<SavedTokenizer> for WordTokenizer {
    fn from(s: SavedTokenizer) -> Self {
        let index = s
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        Self {
            lowercase: s.lowercase,
            zero_digits: s.zero_digits,
            tokens: s.tokens,
            index,
        }
    }
}

impl From<WordTokenizer> for SavedTokenizer {
    fn from(t: WordTokenizer) -> Self {
        Self {
            lowercase: t.lowercase,
            zero_digits: t.zero_digits,
            tokens: t.tokens,
        }
    }
}

/// A text as token ids, with its class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedExample {
    /// Token ids, at least one.
    pub ids: Vec<u32>,
    /// Class index.
    pub label: usize,
}

impl WordTokenizerConfig {
    /// Builds the vocabulary from training texts. Words are ordered by falling frequency, ties
    /// by the word, so the same texts always give the same ids.
    pub fn build<'a>(&self, texts: impl IntoIterator<Item = &'a str>) -> WordTokenizer {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for text in texts {
            for word in split(text, self.lowercase, self.zero_digits) {
                *counts.entry(word).or_default() += 1;
            }
        }
        let mut words: Vec<(String, usize)> = counts
            .into_iter()
            .filter(|(_, c)| *c >= self.min_freq.max(1))
            .collect();
        words.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut tokens = vec!["<pad>".to_string(), "<unk>".to_string()];
        let room = self
            .max_vocab
            .map(|m| m.saturating_sub(2))
            .unwrap_or(usize::MAX);
        tokens.extend(words.into_iter().take(room).map(|(w, _)| w));
        WordTokenizer::from(SavedTokenizer {
            lowercase: self.lowercase,
            zero_digits: self.zero_digits,
            tokens,
        })
    }
}

fn split(text: &str, lowercase: bool, zero_digits: bool) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            let w = if lowercase {
                w.to_lowercase()
            } else {
                w.to_string()
            };
            if zero_digits && w.bytes().any(|b| b.is_ascii_digit()) {
                w.chars()
                    .map(|c| if c.is_ascii_digit() { '0' } else { c })
                    .collect()
            } else {
                w
            }
        })
        .collect()
}

impl WordTokenizer {
    /// The tokenizer with [`SEP_TOKEN`] in its vocabulary (appended when missing), so that it
    /// can encode text pairs.
    pub fn with_separator(mut self) -> Self {
        if !self.index.contains_key(SEP_TOKEN) {
            self.index
                .insert(SEP_TOKEN.to_string(), self.tokens.len() as u32);
            self.tokens.push(SEP_TOKEN.to_string());
        }
        self
    }

    /// The id of [`SEP_TOKEN`], when the vocabulary has it.
    pub fn sep_id(&self) -> Option<u32> {
        self.index.get(SEP_TOKEN).copied()
    }

    /// The ids of a text pair: `a`'s words, [`SEP_TOKEN`], `b`'s words, at most `max_len` ids
    /// in all (at least 3). Longer pairs lose words from the end of the longer text first
    /// (BERT's "longest first"); each text keeps at least one id (`<unk>` for an empty one).
    /// `None` when the vocabulary has no separator ([`WordTokenizer::with_separator`]).
    pub fn encode_pair(&self, a: &str, b: &str, max_len: usize) -> Option<Vec<u32>> {
        let sep = self.sep_id()?;
        let budget = max_len.max(3) - 1;
        let (mut a, mut b) = (self.encode(a, usize::MAX), self.encode(b, usize::MAX));
        while a.len() + b.len() > budget {
            if a.len() >= b.len() {
                a.pop();
            } else {
                b.pop();
            }
        }
        a.push(sep);
        a.extend(b);
        Some(a)
    }

    /// Vocabulary size, `<pad>` and `<unk>` included.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The token of `id`.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The ids of `text`'s first `max_len` words (unknown words map to `<unk>`). An empty text
    /// gives `[<unk>]`, so that every sequence has at least one position.
    pub fn encode(&self, text: &str, max_len: usize) -> Vec<u32> {
        let mut ids: Vec<u32> = split(text, self.lowercase, self.zero_digits)
            .into_iter()
            .take(max_len.max(1))
            .map(|w| self.index.get(&w).copied().unwrap_or(UNK_ID))
            .collect();
        if ids.is_empty() {
            ids.push(UNK_ID);
        }
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_counts_caps_and_round_trips() {
        let texts = ["The cat sat", "the cat ran", "a dog"];
        let tok = WordTokenizerConfig::default().build(texts);
        assert_eq!(tok.token(0), Some("<pad>"));
        assert_eq!(tok.token(1), Some("<unk>"));
        assert_eq!(tok.token(2), Some("cat")); // 2 occurrences, tie with "the" broken by word
        assert_eq!(tok.token(3), Some("the"));
        assert_eq!(tok.encode("THE zebra cat", 10), vec![3, UNK_ID, 2]);
        assert_eq!(tok.encode("the cat sat", 2), vec![3, 2]);
        assert_eq!(tok.encode("   ", 5), vec![UNK_ID]);

        let cased = WordTokenizerConfig {
            lowercase: false,
            min_freq: 2,
            max_vocab: None,
            zero_digits: false,
        }
        .build(texts);
        assert_eq!(cased.vocab_size(), 3); // <pad>, <unk>, cat
        let capped = WordTokenizerConfig {
            max_vocab: Some(4),
            ..Default::default()
        }
        .build(texts);
        assert_eq!(capped.vocab_size(), 4);

        let pairs = tok.clone().with_separator();
        let sep = pairs.sep_id().expect("a separator");
        assert_eq!(sep as usize, tok.vocab_size(), "appended after the words");
        assert_eq!(pairs.clone().with_separator(), pairs, "added once");
        assert_eq!(
            tok.encode_pair("the", "cat", 8),
            None,
            "no separator, no pair"
        );
        assert_eq!(
            pairs.encode_pair("the cat", "a", 8),
            Some(vec![3, 2, sep, 4])
        );
        // Longest first: 5 + 2 words into 5 ids leave 2 + 2 around the separator.
        assert_eq!(
            pairs.encode_pair("the cat sat the cat", "cat the", 5),
            Some(vec![3, 2, sep, 2, 3])
        );
        assert_eq!(pairs.encode_pair("the", "", 1), Some(vec![3, sep, UNK_ID]));

        let json = serde_json::to_string(&tok).expect("json");
        let back: WordTokenizer = serde_json::from_str(&json).expect("back");
        assert_eq!(back, tok);
        assert_eq!(back.encode("the cat", 5), tok.encode("the cat", 5));
    }

    /// `zero_digits` maps every ASCII digit to `0` for counting and lookup alike, leaves other
    /// words alone, and survives a save and load (an old file without the key reads as off).
    #[test]
    fn zero_digits_share_entries_and_round_trip() {
        let config = WordTokenizerConfig {
            lowercase: false,
            min_freq: 2,
            zero_digits: true,
            ..Default::default()
        };
        let tok = config.build(["In 1996 Bonn", "in 2004 Bonn", "3-2 win"]);
        // 1996 and 2004 are one word seen twice; "3-2" and "0-0" share an entry too.
        assert_eq!(tok.token(2), Some("0000"));
        assert_eq!(tok.encode("1871", 5), vec![2]);
        assert_eq!(tok.encode("Bonn", 5), vec![3]);
        assert_eq!(tok.encode("In", 5), vec![UNK_ID]);
        assert_eq!(
            tok.encode("9-1", 5),
            vec![UNK_ID],
            "seen once: below min_freq"
        );
        let plain = WordTokenizerConfig {
            zero_digits: false,
            ..config.clone()
        }
        .build(["In 1996 Bonn", "in 2004 Bonn"]);
        assert_eq!(plain.encode("1996", 5), vec![UNK_ID]);

        let json = serde_json::to_string(&tok).expect("json");
        let back: WordTokenizer = serde_json::from_str(&json).expect("back");
        assert_eq!(back.encode("2011", 5), vec![2]);
        let old: WordTokenizer =
            serde_json::from_str(r#"{"lowercase":false,"tokens":["<pad>","<unk>","0000"]}"#)
                .expect("a file written before zero_digits");
        assert_eq!(old.encode("1996", 5), vec![UNK_ID]);
        assert!(
            !serde_json::to_string(&plain)
                .expect("json")
                .contains("zero_digits")
        );
    }
}
