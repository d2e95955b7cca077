//! [`WordTokenizer`]: whitespace word tokenization over a vocabulary built from training text.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Id of the padding token `<pad>`.
pub const PAD_ID: u32 = 0;
/// Id of the unknown-word token `<unk>`.
pub const UNK_ID: u32 = 1;

/// How a [`WordTokenizer`] is built.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WordTokenizerConfig {
    /// Lowercase text before splitting.
    pub lowercase: bool,
    /// Words seen fewer times than this in training become `<unk>`.
    pub min_freq: usize,
    /// Keep at most this many entries, `<pad>` and `<unk>` included (most frequent first).
    pub max_vocab: Option<usize>,
}

impl Default for WordTokenizerConfig {
    fn default() -> Self {
        Self {
            lowercase: true,
            min_freq: 1,
            max_vocab: None,
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
    tokens: Vec<String>,
    index: HashMap<String, u32>,
}

#[derive(Serialize, Deserialize)]
struct SavedTokenizer {
    lowercase: bool,
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
            tokens: s.tokens,
            index,
        }
    }
}

impl From<WordTokenizer> for SavedTokenizer {
    fn from(t: WordTokenizer) -> Self {
        Self {
            lowercase: t.lowercase,
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
            for word in split(text, self.lowercase) {
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
            tokens,
        })
    }
}

fn split(text: &str, lowercase: bool) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            if lowercase {
                w.to_lowercase()
            } else {
                w.to_string()
            }
        })
        .collect()
}

impl WordTokenizer {
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
        let mut ids: Vec<u32> = split(text, self.lowercase)
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
        }
        .build(texts);
        assert_eq!(cased.vocab_size(), 3); // <pad>, <unk>, cat
        let capped = WordTokenizerConfig {
            max_vocab: Some(4),
            ..Default::default()
        }
        .build(texts);
        assert_eq!(capped.vocab_size(), 4);

        let json = serde_json::to_string(&tok).expect("json");
        let back: WordTokenizer = serde_json::from_str(&json).expect("back");
        assert_eq!(back, tok);
        assert_eq!(back.encode("the cat", 5), tok.encode("the cat", 5));
    }
}
