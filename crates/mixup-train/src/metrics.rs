//! Classification scores beyond accuracy: the confusion matrix, per-class precision, recall
//! and F1, and their macro average.

use serde::{Deserialize, Serialize};

/// One class's scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassScore {
    /// Of the examples predicted as this class, the share that are.
    pub precision: f64,
    /// Of the examples of this class, the share predicted as it.
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    /// Examples of this class.
    pub support: usize,
}

/// The scores of a set of predictions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    /// `confusion[true][predicted]`: how many examples of class `true` were predicted as
    /// `predicted`.
    pub confusion: Vec<Vec<usize>>,
    /// Share of examples predicted right.
    pub accuracy: f64,
    /// Per class, in class order.
    pub per_class: Vec<ClassScore>,
    /// Mean F1 over the classes that occur in the labels or the predictions (a class that is
    /// neither has no defined F1; scikit-learn's default label set is the same).
    pub macro_f1: f64,
}

/// Scores `predicted` against `labels` (class indices below `classes`; out-of-range entries
/// are ignored).
pub fn class_scores(labels: &[usize], predicted: &[usize], classes: usize) -> ClassScores {
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut total = 0usize;
    for (&t, &p) in labels.iter().zip(predicted) {
        if t < classes && p < classes {
            confusion[t][p] += 1;
            total += 1;
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let per_class: Vec<ClassScore> = (0..classes)
        .map(|c| {
            let tp = confusion[c][c];
            let support: usize = confusion[c].iter().sum();
            let predicted_as: usize = confusion.iter().map(|row| row[c]).sum();
            let (precision, recall) = (ratio(tp, predicted_as), ratio(tp, support));
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            ClassScore {
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect();
    let present: Vec<f64> = (0..classes)
        .filter(|&c| per_class[c].support > 0 || confusion.iter().any(|row| row[c] > 0))
        .map(|c| per_class[c].f1)
        .collect();
    let macro_f1 = if present.is_empty() {
        0.0
    } else {
        present.iter().sum::<f64>() / present.len() as f64
    };
    let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
    ClassScores {
        confusion,
        accuracy: ratio(correct, total),
        per_class,
        macro_f1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_and_macro_f1_by_hand() {
        // Class 0: 3 examples, 2 right, 1 taken for class 1; class 1: 2 examples, both right;
        // class 2 never occurs (left out of the macro average).
        let labels = [0, 0, 0, 1, 1];
        let predicted = [0, 1, 0, 1, 1];
        let s = class_scores(&labels, &predicted, 3);
        assert_eq!(
            s.confusion,
            vec![vec![2, 1, 0], vec![0, 2, 0], vec![0, 0, 0]]
        );
        assert!((s.accuracy - 0.8).abs() < 1e-12);
        let (p0, r0) = (1.0, 2.0 / 3.0);
        let f0 = 2.0 * p0 * r0 / (p0 + r0);
        let (p1, r1) = (2.0 / 3.0, 1.0);
        let f1 = 2.0 * p1 * r1 / (p1 + r1);
        assert!((s.per_class[0].f1 - f0).abs() < 1e-12);
        assert!((s.per_class[1].f1 - f1).abs() < 1e-12);
        assert_eq!(s.per_class[2].support, 0);
        assert!((s.macro_f1 - (f0 + f1) / 2.0).abs() < 1e-12);
        // Predicting a class that never occurs counts it in (with F1 0).
        let s = class_scores(&[0, 0], &[0, 2], 3);
        assert!(
            (s.macro_f1 - (2.0 / 3.0) / 2.0).abs() < 1e-12,
            "{}",
            s.macro_f1
        );
        assert_eq!(class_scores(&[], &[], 2).macro_f1, 0.0);
    }
}
