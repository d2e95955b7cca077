//! A word n-gram language model with interpolated modified Kneser-Ney smoothing (Chen and
//! Goodman 1998), the plausibility filter of SeqMix: generated sentences whose perplexity is
//! above a threshold are dropped.
//!
//! The vocabulary is the training words plus `</s>` and `<unk>`; a word never seen in training
//! is scored as `<unk>`. Sentences are padded on the left with `order - 1` `<s>` and end with
//! `</s>`, which is predicted like a word. The highest order uses raw counts; lower orders use
//! continuation counts (the number of distinct words seen before an n-gram). Each order has
//! three discounts, D1, D2 and D3+, estimated from its count-of-counts. The unigram level is
//! interpolated with the uniform distribution over the vocabulary, so every word, `<unk>`
//! included, has a probability above zero, and the probabilities over the vocabulary sum to 1
//! for any context.

use std::collections::HashMap;

const BOS: &str = "<s>";
const EOS: &str = "</s>";
const UNK: &str = "<unk>";

/// Per-context sums at one order: total count and the number of words seen once, twice and
/// three or more times after it.
#[derive(Clone, Copy, Debug, Default)]
struct ContextStats {
    total: f64,
    n1: f64,
    n2: f64,
    n3: f64,
}

/// An interpolated modified Kneser-Ney n-gram model (see the module docs).
#[derive(Clone, Debug)]
pub struct KneserNeyLm {
    order: usize,
    vocab: HashMap<String, u32>,
    /// `counts[n - 1]`: n-gram -> count (raw at the top order, continuation below).
    counts: Vec<HashMap<Vec<u32>, f64>>,
    /// `contexts[n - 1]`: (n-1)-gram context -> its stats at order n.
    contexts: Vec<HashMap<Vec<u32>, ContextStats>>,
    /// `discounts[n - 1]`: D1, D2, D3+ of order n.
    discounts: Vec<[f64; 3]>,
}

impl KneserNeyLm {
    /// Trains an `order`-gram model (at least 1) on tokenised sentences.
    ///
    /// # Panics
    ///
    /// If `order` is 0.
    pub fn train<S: AsRef<str>>(sentences: &[Vec<S>], order: usize) -> Self {
        assert!(order >= 1, "an n-gram model needs order >= 1");
        let mut vocab: HashMap<String, u32> = HashMap::new();
        for w in [BOS, EOS, UNK] {
            let id = vocab.len() as u32;
            vocab.insert(w.to_string(), id);
        }
        let mut top: HashMap<Vec<u32>, f64> = HashMap::new();
        for s in sentences {
            let mut ids = vec![0u32; order - 1];
            for w in s {
                let next = vocab.len() as u32;
                ids.push(*vocab.entry(w.as_ref().to_string()).or_insert(next));
            }
            ids.push(1);
            for end in order - 1..ids.len() {
                *top.entry(ids[end + 1 - order..=end].to_vec()).or_default() += 1.0;
            }
        }
        // Continuation counts: N1+(. w_2..w_n) from the n-grams of the order above.
        let mut counts = vec![HashMap::new(); order];
        counts[order - 1] = top;
        for n in (1..order).rev() {
            let mut lower: HashMap<Vec<u32>, f64> = HashMap::new();
            for gram in counts[n].keys() {
                *lower.entry(gram[1..].to_vec()).or_default() += 1.0;
            }
            counts[n - 1] = lower;
        }
        let mut contexts = Vec::with_capacity(order);
        let mut discounts = Vec::with_capacity(order);
        for level in &counts {
            let mut stats: HashMap<Vec<u32>, ContextStats> = HashMap::new();
            let mut of_count = [0f64; 5];
            for (gram, &c) in level {
                let s = stats.entry(gram[..gram.len() - 1].to_vec()).or_default();
                s.total += c;
                match c as usize {
                    1 => s.n1 += 1.0,
                    2 => s.n2 += 1.0,
                    _ => s.n3 += 1.0,
                }
                if (c as usize) <= 4 {
                    of_count[c as usize] += 1.0;
                }
            }
            contexts.push(stats);
            discounts.push(modified_discounts(&of_count));
        }
        Self {
            order,
            vocab,
            counts,
            contexts,
            discounts,
        }
    }

    /// The model's order.
    pub fn order(&self) -> usize {
        self.order
    }

    /// Words that can be predicted: the training words, `</s>` and `<unk>` (`<s>` excluded).
    pub fn vocabulary(&self) -> Vec<&str> {
        self.vocab
            .keys()
            .map(String::as_str)
            .filter(|w| *w != BOS)
            .collect()
    }

    fn id(&self, w: &str) -> u32 {
        self.vocab.get(w).copied().unwrap_or(2)
    }

    /// `P(word | context)` for id sequences, recursing down the orders.
    fn prob_ids(&self, context: &[u32], word: u32) -> f64 {
        let n = context.len() + 1;
        let lower = if n == 1 {
            1.0 / (self.vocab.len() - 1) as f64
        } else {
            self.prob_ids(&context[1..], word)
        };
        let Some(stats) = self.contexts[n - 1].get(context) else {
            return lower;
        };
        let mut gram = context.to_vec();
        gram.push(word);
        let c = self.counts[n - 1].get(&gram).copied().unwrap_or(0.0);
        let [d1, d2, d3] = self.discounts[n - 1];
        let d = match c as usize {
            0 => 0.0,
            1 => d1,
            2 => d2,
            _ => d3,
        };
        let gamma = d1 * stats.n1 + d2 * stats.n2 + d3 * stats.n3;
        ((c - d).max(0.0) + gamma * lower) / stats.total
    }

    /// `P(word | context)`, the context being the preceding words (only the last
    /// `order - 1` count; a shorter one is padded with `<s>`). Unknown words are `<unk>`.
    pub fn prob<S: AsRef<str>>(&self, context: &[S], word: &str) -> f64 {
        let mut ids: Vec<u32> = vec![0; self.order - 1];
        ids.extend(context.iter().map(|w| self.id(w.as_ref())));
        let ctx = &ids[ids.len() - (self.order - 1)..];
        self.prob_ids(ctx, self.id(word))
    }

    /// Perplexity of a sentence: `exp(-mean log P)` over its words and `</s>`.
    pub fn perplexity<S: AsRef<str>>(&self, sentence: &[S]) -> f64 {
        let mut ids: Vec<u32> = vec![0; self.order - 1];
        ids.extend(sentence.iter().map(|w| self.id(w.as_ref())));
        ids.push(1);
        let mut log_sum = 0.0;
        for end in self.order - 1..ids.len() {
            log_sum += self
                .prob_ids(&ids[end + 1 - self.order..end], ids[end])
                .ln();
        }
        (-log_sum / (ids.len() - (self.order - 1)) as f64).exp()
    }
}

/// D1, D2, D3+ from the numbers of n-grams seen exactly 1..4 times (Chen and Goodman's
/// estimates), each kept inside `[0, k]` and falling back to 0.5/1/1.5 style values when a
/// count-of-count is zero (tiny corpora).
fn modified_discounts(n: &[f64; 5]) -> [f64; 3] {
    let fallback = [0.5, 1.0, 1.5];
    if n[1] == 0.0 || n[2] == 0.0 {
        return fallback;
    }
    let y = n[1] / (n[1] + 2.0 * n[2]);
    let est = [
        1.0 - 2.0 * y * n[2] / n[1],
        if n[2] > 0.0 {
            2.0 - 3.0 * y * n[3] / n[2]
        } else {
            fallback[1]
        },
        if n[3] > 0.0 {
            3.0 - 4.0 * y * n[4] / n[3]
        } else {
            fallback[2]
        },
    ];
    let mut d = [0.0; 3];
    for k in 0..3 {
        d[k] = if est[k].is_finite() && est[k] > 0.0 {
            est[k].min((k + 1) as f64)
        } else {
            fallback[k]
        };
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<Vec<String>> {
        [
            "the cat sat on the mat",
            "the dog sat on the log",
            "a cat saw the dog",
            "the dog saw a cat on the mat",
            "john lives in new york",
            "mary lives in paris",
            "the cat lives in the house",
        ]
        .iter()
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .collect()
    }

    #[test]
    fn probabilities_sum_to_one_over_the_vocabulary_for_any_context() {
        for order in 1..=4 {
            let lm = KneserNeyLm::train(&corpus(), order);
            let vocab = lm.vocabulary();
            for ctx in [
                vec![],
                vec!["the"],
                vec!["sat", "on", "the"],
                vec!["never", "seen"],
                vec!["lives", "in"],
            ] {
                let total: f64 = vocab.iter().map(|w| lm.prob(&ctx, w)).sum();
                assert!(
                    (total - 1.0).abs() < 1e-9,
                    "order {order}, context {ctx:?}: sum {total}"
                );
            }
        }
    }

    #[test]
    fn unseen_words_get_a_small_nonzero_probability() {
        let lm = KneserNeyLm::train(&corpus(), 3);
        let unseen = lm.prob(&["the"], "zebra");
        assert!(
            unseen > 0.0 && unseen < lm.prob(&["the"], "cat"),
            "{unseen}"
        );
        assert_eq!(unseen, lm.prob(&["the"], "<unk>"));
        assert!(lm.perplexity(&["zebra", "quokka"]).is_finite());
    }

    #[test]
    fn a_training_sentence_is_more_plausible_than_its_shuffle() {
        let lm = KneserNeyLm::train(&corpus(), 3);
        let s = ["the", "dog", "saw", "a", "cat", "on", "the", "mat"];
        let shuffled = ["mat", "the", "on", "cat", "a", "saw", "dog", "the"];
        let (p, q) = (lm.perplexity(&s), lm.perplexity(&shuffled));
        assert!(p < q, "training {p} vs shuffled {q}");
    }
}
