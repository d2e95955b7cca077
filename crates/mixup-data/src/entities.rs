//! Entity-level precision, recall and F1 with the semantics of the CoNLL shared task's
//! `conlleval` script, for BIO tag sequences.
//!
//! An entity starts at `B-X`, or at an `I-X` that does not continue an entity of type `X`
//! (after `O`, after another type, or at the start); it ends before the next `O`, `B-*` or
//! `I-Y` with `Y != X`. A predicted entity is correct when a gold entity has the same type and
//! the same span. Tags that are neither `B-` nor `I-` count as `O`.

use std::collections::BTreeMap;

/// One entity: its type and its token span `[start, end)`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entity {
    /// The type (`PER`, `LOC`, ...).
    pub kind: String,
    /// First token.
    pub start: usize,
    /// One past the last token.
    pub end: usize,
}

fn split(tag: &str) -> Option<(bool, &str)> {
    match tag.split_once('-') {
        Some(("B", k)) if !k.is_empty() => Some((true, k)),
        Some(("I", k)) if !k.is_empty() => Some((false, k)),
        _ => None,
    }
}

/// The entities of one tag sequence, in order.
pub fn entities<S: AsRef<str>>(tags: &[S]) -> Vec<Entity> {
    let mut out = Vec::new();
    let mut open: Option<Entity> = None;
    for (i, tag) in tags.iter().enumerate() {
        let t = split(tag.as_ref());
        let continues = matches!((&open, t), (Some(e), Some((false, k))) if e.kind == k);
        if continues {
            continue;
        }
        if let Some(mut e) = open.take() {
            e.end = i;
            out.push(e);
        }
        if let Some((_, k)) = t {
            open = Some(Entity {
                kind: k.to_string(),
                start: i,
                end: i + 1,
            });
        }
    }
    if let Some(mut e) = open {
        e.end = tags.len();
        out.push(e);
    }
    out
}

/// Counts and scores for one entity type, or for all (micro-averaged).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Prf {
    /// Gold entities.
    pub gold: usize,
    /// Predicted entities.
    pub predicted: usize,
    /// Predicted entities that match a gold one exactly (type and span).
    pub correct: usize,
    /// `correct / predicted` (0 when nothing is predicted).
    pub precision: f64,
    /// `correct / gold` (0 when there is no gold entity).
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
}

impl Prf {
    fn from_counts(gold: usize, predicted: usize, correct: usize) -> Self {
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let (p, r) = (ratio(correct, predicted), ratio(correct, gold));
        Self {
            gold,
            predicted,
            correct,
            precision: p,
            recall: r,
            f1: if p + r == 0.0 {
                0.0
            } else {
                2.0 * p * r / (p + r)
            },
        }
    }
}

/// Entity scores over a corpus: per type and micro-averaged over all types.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct EntityScores {
    /// Per entity type.
    pub per_type: BTreeMap<String, Prf>,
    /// All types together.
    pub micro: Prf,
}

/// Scores predicted tag sequences against gold ones, sentence by sentence.
///
/// # Panics
///
/// If the two corpora differ in the number of sentences or a sentence's length (a caller's
/// bug: predictions come from the same sentences).
pub fn entity_scores<S: AsRef<str>, T: AsRef<str>>(
    gold: &[Vec<S>],
    pred: &[Vec<T>],
) -> EntityScores {
    assert_eq!(gold.len(), pred.len(), "gold and predicted sentence counts");
    let mut counts: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    for (g, p) in gold.iter().zip(pred) {
        assert_eq!(g.len(), p.len(), "gold and predicted sentence lengths");
        let ge = entities(g);
        let pe = entities(p);
        for e in &ge {
            counts.entry(e.kind.clone()).or_default().0 += 1;
        }
        for e in &pe {
            let c = counts.entry(e.kind.clone()).or_default();
            c.1 += 1;
            if ge.contains(e) {
                c.2 += 1;
            }
        }
    }
    let per_type: BTreeMap<String, Prf> = counts
        .iter()
        .map(|(k, &(g, p, c))| (k.clone(), Prf::from_counts(g, p, c)))
        .collect();
    let (g, p, c) = counts
        .values()
        .fold((0, 0, 0), |a, &(g, p, c)| (a.0 + g, a.1 + p, a.2 + c));
    EntityScores {
        per_type,
        micro: Prf::from_counts(g, p, c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    fn e(kind: &str, start: usize, end: usize) -> Entity {
        Entity {
            kind: kind.into(),
            start,
            end,
        }
    }

    #[test]
    fn entities_follow_conlleval() {
        assert_eq!(
            entities(&tags("B-PER I-PER O B-LOC")),
            vec![e("PER", 0, 2), e("LOC", 3, 4)]
        );
        // An I- without a B- opens an entity; a type change closes one.
        assert_eq!(
            entities(&tags("I-ORG I-ORG I-LOC O I-PER")),
            vec![e("ORG", 0, 2), e("LOC", 2, 3), e("PER", 4, 5)]
        );
        // B- after B- of the same type: two entities.
        assert_eq!(
            entities(&tags("B-PER B-PER I-PER")),
            vec![e("PER", 0, 1), e("PER", 1, 3)]
        );
        assert!(entities(&tags("O O X")).is_empty());
    }

    #[test]
    fn scores_match_hand_counts() {
        let gold = vec![tags("B-PER I-PER O B-LOC O"), tags("B-ORG O B-MISC I-MISC")];
        let pred = vec![
            // PER right; LOC predicted as ORG (wrong type).
            tags("B-PER I-PER O B-ORG O"),
            // ORG right; MISC span too short (wrong span); an extra PER.
            tags("B-ORG B-PER B-MISC O"),
        ];
        let s = entity_scores(&gold, &pred);
        // gold 4 (PER, LOC, ORG, MISC), predicted 5 (PER, ORG, ORG, PER, MISC), correct 2.
        assert_eq!(
            (s.micro.gold, s.micro.predicted, s.micro.correct),
            (4, 5, 2)
        );
        assert!((s.micro.precision - 0.4).abs() < 1e-12);
        assert!((s.micro.recall - 0.5).abs() < 1e-12);
        assert!((s.micro.f1 - 2.0 * 0.4 * 0.5 / 0.9).abs() < 1e-12);
        let per = &s.per_type["PER"];
        assert_eq!((per.gold, per.predicted, per.correct), (1, 2, 1));
        assert!((per.f1 - 2.0 / 3.0).abs() < 1e-12);
        let loc = &s.per_type["LOC"];
        assert_eq!(
            (loc.gold, loc.predicted, loc.correct, loc.f1),
            (1, 0, 0, 0.0)
        );
        let org = &s.per_type["ORG"];
        assert_eq!((org.gold, org.predicted, org.correct), (1, 2, 1));
        // Perfect predictions score 1; no entities at all score 0, not NaN.
        assert_eq!(entity_scores(&gold, &gold).micro.f1, 1.0);
        let none = vec![tags("O O")];
        assert_eq!(entity_scores(&none, &none).micro.f1, 0.0);
    }
}
