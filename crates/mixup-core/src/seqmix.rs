//! SeqMix (Zhang, Yu and Zhang 2020): new labelled sequences for sequence labelling, made by
//! mixing the token embeddings of two labelled sentences and projecting each mixed vector back
//! to the nearest real token.
//!
//! - **Whole-sequence**: two sentences of equal length, each with at least `min_labelled`
//!   non-`O` tags, mixed at every position.
//! - **Sub-sequence**: a window of `window` tokens in each sentence that starts on a non-`O`
//!   tag and holds at least `min_labelled` non-`O` tags; the first sentence's window is
//!   replaced by the mix of the two windows.
//! - **Label-constrained**: two windows whose tag sequences are identical; both sentences get
//!   the mixed window, their tags unchanged (two new sentences, hard labels).
//!
//! At each mixed position the new token is the vocabulary row nearest to
//! `lambda * E[a] + (1 - lambda) * E[b]` ([`Projection`]: by cosine similarity, or by squared
//! L2 distance among the `top_k` nearest as the official code does), skipping the two source
//! tokens and the blocked ids (specials, and rows the model never trained), and its label is `lambda * onehot(tag_a) + (1 - lambda) *
//! onehot(tag_b)` (hard for label-constrained). These soft labels are trained with a soft
//! cross-entropy, so their gradient reaches the model (the released code detaches them).

use burn::tensor::Tensor;

/// Which SeqMix variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, burn::serde::Serialize, burn::serde::Deserialize)]
#[serde(crate = "burn::serde", rename_all = "kebab-case")]
pub enum SeqMixVariant {
    /// Whole-sequence mixup of two sentences of equal length.
    Whole,
    /// Sub-sequence mixup of two labelled windows.
    Sub,
    /// Label-constrained sub-sequence mixup: windows with identical tags.
    LabelConstrained,
}

impl SeqMixVariant {
    /// The name used in recipes and on the command line: `whole`, `sub`, `label-constrained`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Whole => "whole",
            Self::Sub => "sub",
            Self::LabelConstrained => "label-constrained",
        }
    }

    /// Parses [`SeqMixVariant::name`].
    ///
    /// # Errors
    ///
    /// An unknown name, with the known ones.
    pub fn parse(s: &str) -> Result<Self, String> {
        [Self::Whole, Self::Sub, Self::LabelConstrained]
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| format!("unknown SeqMix variant {s:?} (whole, sub, label-constrained)"))
    }
}

/// One labelled sentence as ids and tag indices.
#[derive(Clone, Debug, PartialEq)]
pub struct TaggedIds {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Tag index per token.
    pub tags: Vec<usize>,
}

/// A generated sentence: ids and, per token, its label distribution as `(tag, weight)` pairs
/// summing to 1.
#[derive(Clone, Debug, PartialEq)]
pub struct SoftTagged {
    /// Token ids (same length as the first source).
    pub ids: Vec<u32>,
    /// Label distribution per token.
    pub labels: Vec<Vec<(usize, f32)>>,
}

/// Start positions of the labelled windows of `tags`: `window` tokens that start on a
/// non-`outside` tag and hold at least `min_labelled` non-`outside` tags.
pub fn labelled_windows(
    tags: &[usize],
    outside: usize,
    window: usize,
    min_labelled: usize,
) -> Vec<usize> {
    if window == 0 || tags.len() < window {
        return Vec::new();
    }
    (0..=tags.len() - window)
        .filter(|&s| {
            tags[s] != outside
                && tags[s..s + window]
                    .iter()
                    .filter(|&&t| t != outside)
                    .count()
                    >= min_labelled
        })
        .collect()
}

/// Pairs `(start_a, start_b)` of windows of length `window` whose tag sequences are equal and
/// contain at least `min_labelled` non-`outside` tags.
pub fn matching_windows(
    a: &[usize],
    b: &[usize],
    outside: usize,
    window: usize,
    min_labelled: usize,
) -> Vec<(usize, usize)> {
    let wa = labelled_windows(a, outside, window, min_labelled);
    let wb = labelled_windows(b, outside, window, min_labelled);
    let mut out = Vec::new();
    for &sa in &wa {
        for &sb in &wb {
            if a[sa..sa + window] == b[sb..sb + window] {
                out.push((sa, sb));
            }
        }
    }
    out
}

/// How [`Projection`] ranks vocabulary rows against a mixed vector.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, burn::serde::Serialize, burn::serde::Deserialize,
)]
#[serde(crate = "burn::serde", rename_all = "kebab-case")]
pub enum ProjectionMetric {
    /// Highest cosine similarity (the paper's "nearest token").
    #[default]
    Cosine,
    /// Smallest squared L2 distance (the official code's `most_similar`).
    SquaredL2,
}

/// How a mixed embedding is mapped back to a token: the metric, how many of the nearest
/// tokens are candidates, and which ids may never be produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Projection {
    /// The ranking.
    pub metric: ProjectionMetric,
    /// Only the `k` nearest allowed tokens are candidates, and the first of them that is not a
    /// source token is taken (the official code takes 7); when all are source tokens, the
    /// position has no projection. `None`: the nearest allowed token that is not a source.
    pub top_k: Option<usize>,
    /// `blocked[id]`: the id is never produced (specials, rows the model never trained). Ids
    /// past its end are allowed.
    pub blocked: Vec<bool>,
}

impl Projection {
    /// A projection by `metric` over `top_k` candidates, nothing blocked.
    pub fn new(metric: ProjectionMetric, top_k: Option<usize>) -> Self {
        Self {
            metric,
            top_k,
            blocked: Vec::new(),
        }
    }

    /// Also blocks `ids`.
    pub fn block(mut self, ids: impl IntoIterator<Item = u32>) -> Self {
        for id in ids {
            let i = id as usize;
            if self.blocked.len() <= i {
                self.blocked.resize(i + 1, false);
            }
            self.blocked[i] = true;
        }
        self
    }

    /// Blocks every id of a `vocab`-row table but `allowed` (and keeps what was blocked).
    pub fn allow_only(mut self, vocab: usize, allowed: impl IntoIterator<Item = u32>) -> Self {
        let mut keep = vec![false; vocab];
        for id in allowed {
            if let Some(k) = keep.get_mut(id as usize) {
                *k = true;
            }
        }
        self.blocked.resize(vocab.max(self.blocked.len()), false);
        for (b, k) in self.blocked.iter_mut().zip(keep) {
            *b = *b || !k;
        }
        self
    }

    /// Whether `id` is never produced.
    pub fn is_blocked(&self, id: u32) -> bool {
        self.blocked.get(id as usize).copied().unwrap_or(false)
    }
}

/// For each row of `mixed` (`[k, d]`), the id of the nearest row of `table` (`[V, d]`) by
/// `projection`, skipping the ids in `exclude[row]` (the source tokens) and the blocked ids.
/// Returns `None` for a row when no candidate is left.
///
/// # Panics
///
/// If the widths differ or `exclude` has not one entry per row.
pub fn nearest_tokens(
    mixed: Tensor<2>,
    table: Tensor<2>,
    exclude: &[Vec<u32>],
    projection: &Projection,
) -> Vec<Option<u32>> {
    let [k, d] = mixed.dims();
    assert_eq!(
        table.dims()[1],
        d,
        "mixed vectors and embedding table widths"
    );
    assert_eq!(exclude.len(), k, "one exclusion list per mixed vector");
    // Higher is nearer.
    let scores = match projection.metric {
        ProjectionMetric::Cosine => {
            let unit = |t: Tensor<2>| {
                let norm = t.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
                t / norm
            };
            unit(mixed).matmul(unit(table).transpose())
        }
        // -|m - t|^2 = 2 m.t - |t|^2 - |m|^2; the last term is the same for every t.
        ProjectionMetric::SquaredL2 => {
            let sq = table.clone().square().sum_dim(1).transpose(); // [1, V]
            mixed.matmul(table.transpose()).mul_scalar(2.0) - sq
        }
    };
    let v = scores.dims()[1];
    let values: Vec<f32> = match scores.into_data().try_to_vec::<f32>() {
        Ok(values) => values,
        Err(e) => panic!("projection scores could not be read back: {e:?}"),
    };
    (0..k)
        .map(|row| {
            let s = &values[row * v..(row + 1) * v];
            let allowed = (0..v as u32).filter(|&id| !projection.is_blocked(id));
            match projection.top_k {
                None => allowed
                    .filter(|id| !exclude[row].contains(id))
                    .min_by(nearest_first(s)),
                Some(top) => {
                    let mut ranked: Vec<u32> = allowed.collect();
                    let top = top.min(ranked.len());
                    if top == 0 {
                        return None;
                    }
                    ranked.select_nth_unstable_by(top - 1, nearest_first(s));
                    ranked.truncate(top);
                    ranked.sort_by(nearest_first(s));
                    ranked.into_iter().find(|id| !exclude[row].contains(id))
                }
            }
        })
        .collect()
}

/// Orders ids nearest first by their scores `s` (higher is nearer).
fn nearest_first(s: &[f32]) -> impl Fn(&u32, &u32) -> std::cmp::Ordering + '_ {
    move |x, y| s[*y as usize].total_cmp(&s[*x as usize])
}

fn one_hot(tag: usize) -> Vec<(usize, f32)> {
    vec![(tag, 1.0)]
}

fn mixed_label(ta: usize, tb: usize, lambda: f32) -> Vec<(usize, f32)> {
    if ta == tb {
        vec![(ta, 1.0)]
    } else {
        vec![(ta, lambda), (tb, 1.0 - lambda)]
    }
}

/// Mixes position pairs `(i in a, j in b)` of two sentences: the mixed embedding rows of
/// `table` for each pair, projected to the nearest tokens. `None` when a projection finds no
/// token.
fn project_pairs(
    a: &TaggedIds,
    b: &TaggedIds,
    pairs: &[(usize, usize)],
    lambda: f32,
    table: &Tensor<2>,
    projection: &Projection,
) -> Option<Vec<u32>> {
    let device = table.device();
    let idx = |ids: Vec<i64>| {
        Tensor::<1, burn::tensor::Int>::from_data(
            burn::tensor::TensorData::new(ids.clone(), [ids.len()]),
            &device,
        )
    };
    let ia: Vec<i64> = pairs.iter().map(|&(i, _)| a.ids[i] as i64).collect();
    let ib: Vec<i64> = pairs.iter().map(|&(_, j)| b.ids[j] as i64).collect();
    let ea = table.clone().select(0, idx(ia));
    let eb = table.clone().select(0, idx(ib));
    let mixed = ea.mul_scalar(lambda) + eb.mul_scalar(1.0 - lambda);
    let exclude: Vec<Vec<u32>> = pairs
        .iter()
        .map(|&(i, j)| vec![a.ids[i], b.ids[j]])
        .collect();
    nearest_tokens(mixed, table.clone(), &exclude, projection)
        .into_iter()
        .collect()
}

/// Generates SeqMix sentences from the pair `(a, b)` with mixing weight `lambda` (drawn by the
/// caller from Beta(alpha, alpha)) over the embedding `table`. `outside` is the `O` tag,
/// `projection` maps mixed vectors to tokens (its blocked ids: padding, unknown, untrained
/// rows, are never produced). For the window variants, the first
/// qualifying window (pair) is used, as in the paper's code. Returns no sentence when the
/// pair does not qualify (lengths differ for `Whole`, no window, no matching tags).
#[allow(clippy::too_many_arguments)]
pub fn seqmix_pair(
    a: &TaggedIds,
    b: &TaggedIds,
    variant: SeqMixVariant,
    lambda: f32,
    window: usize,
    min_labelled: usize,
    outside: usize,
    table: &Tensor<2>,
    projection: &Projection,
) -> Vec<SoftTagged> {
    match variant {
        SeqMixVariant::Whole => {
            let labelled = |t: &TaggedIds| t.tags.iter().filter(|&&x| x != outside).count();
            if a.ids.len() != b.ids.len()
                || labelled(a) < min_labelled
                || labelled(b) < min_labelled
            {
                return Vec::new();
            }
            let pairs: Vec<(usize, usize)> = (0..a.ids.len()).map(|i| (i, i)).collect();
            let Some(ids) = project_pairs(a, b, &pairs, lambda, table, projection) else {
                return Vec::new();
            };
            let labels = (0..a.ids.len())
                .map(|i| mixed_label(a.tags[i], b.tags[i], lambda))
                .collect();
            vec![SoftTagged { ids, labels }]
        }
        SeqMixVariant::Sub => {
            let wa = labelled_windows(&a.tags, outside, window, min_labelled);
            let wb = labelled_windows(&b.tags, outside, window, min_labelled);
            let (Some(&sa), Some(&sb)) = (wa.first(), wb.first()) else {
                return Vec::new();
            };
            let pairs: Vec<(usize, usize)> = (0..window).map(|i| (sa + i, sb + i)).collect();
            let Some(mixed) = project_pairs(a, b, &pairs, lambda, table, projection) else {
                return Vec::new();
            };
            let mut ids = a.ids.clone();
            let mut labels: Vec<Vec<(usize, f32)>> = a.tags.iter().map(|&t| one_hot(t)).collect();
            for (i, id) in mixed.into_iter().enumerate() {
                ids[sa + i] = id;
                labels[sa + i] = mixed_label(a.tags[sa + i], b.tags[sb + i], lambda);
            }
            vec![SoftTagged { ids, labels }]
        }
        SeqMixVariant::LabelConstrained => {
            let Some(&(sa, sb)) =
                matching_windows(&a.tags, &b.tags, outside, window, min_labelled).first()
            else {
                return Vec::new();
            };
            let pairs: Vec<(usize, usize)> = (0..window).map(|i| (sa + i, sb + i)).collect();
            let Some(mixed) = project_pairs(a, b, &pairs, lambda, table, projection) else {
                return Vec::new();
            };
            let with_window = |s: &TaggedIds, start: usize| {
                let mut ids = s.ids.clone();
                ids[start..start + window].copy_from_slice(&mixed);
                SoftTagged {
                    ids,
                    labels: s.tags.iter().map(|&t| one_hot(t)).collect(),
                }
            };
            vec![with_window(a, sa), with_window(b, sb)]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    /// A table where token `i` points along axis `i % 4` with a small tilt, so nearest
    /// neighbours are predictable.
    fn table(device: &Device) -> Tensor<2> {
        let rows: Vec<f32> = (0..12)
            .flat_map(|i| {
                let mut r = [0.05f32 * i as f32; 4];
                r[i % 4] = 1.0;
                r
            })
            .collect();
        Tensor::<1>::from_floats(rows.as_slice(), device).reshape([12, 4])
    }

    #[test]
    fn windows_start_on_a_label_and_hold_enough_labels() {
        // O=0.
        let tags = [0, 1, 2, 0, 3, 0, 0, 1];
        assert_eq!(labelled_windows(&tags, 0, 3, 2), vec![1, 2]);
        assert_eq!(labelled_windows(&tags, 0, 3, 3), Vec::<usize>::new());
        assert!(labelled_windows(&tags, 0, 9, 1).is_empty());
        let b = [0, 0, 1, 2, 0];
        assert_eq!(matching_windows(&tags, &b, 0, 3, 2), vec![(1, 2)]);
    }

    #[test]
    fn projected_tokens_are_vocabulary_ids_other_than_the_sources() {
        let device = Device::flex();
        let t = table(&device);
        let specials = Projection::default().block([0]);
        let a = TaggedIds {
            ids: vec![1, 2, 3, 5, 6],
            tags: vec![1, 2, 0, 1, 2],
        };
        let b = TaggedIds {
            ids: vec![5, 6, 7, 9, 10],
            tags: vec![3, 4, 0, 3, 0],
        };
        for variant in [SeqMixVariant::Whole, SeqMixVariant::Sub] {
            let out = seqmix_pair(&a, &b, variant, 0.7, 2, 2, 0, &t, &specials);
            assert_eq!(out.len(), 1, "{variant:?}");
            let g = &out[0];
            // A generated sentence keeps its length.
            assert_eq!(g.ids.len(), a.ids.len());
            assert_eq!(g.labels.len(), a.ids.len());
            for (i, (id, labels)) in g.ids.iter().zip(&g.labels).enumerate() {
                assert!((*id as usize) < 12 && *id != 0, "{variant:?}: id {id}");
                // Soft labels sum to 1.
                let total: f32 = labels.iter().map(|l| l.1).sum();
                assert!(
                    (total - 1.0).abs() < 1e-6,
                    "{variant:?} pos {i}: {labels:?}"
                );
                if labels.len() == 2 {
                    // A mixed position: its token is neither source token.
                    // (Both variants pair position i with position i here: the first windows
                    // of a and b both start at 0.)
                    assert_ne!(*id, a.ids[i], "{variant:?} pos {i}");
                    assert_ne!(*id, b.ids[i], "{variant:?} pos {i}");
                    assert_eq!(labels[0], (a.tags[i], 0.7));
                }
            }
        }
        // Different lengths: no whole-sequence mix.
        let short = TaggedIds {
            ids: vec![5, 6],
            tags: vec![3, 4],
        };
        assert!(
            seqmix_pair(
                &a,
                &short,
                SeqMixVariant::Whole,
                0.5,
                2,
                1,
                0,
                &t,
                &specials,
            )
            .is_empty()
        );
        // Label-constrained: both sentences get the same mixed window, hard labels kept.
        let c = TaggedIds {
            ids: vec![7, 9, 10, 11],
            tags: vec![0, 1, 2, 0],
        };
        let out = seqmix_pair(
            &a,
            &c,
            SeqMixVariant::LabelConstrained,
            0.5,
            2,
            2,
            0,
            &t,
            &specials,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].ids[0..2], out[1].ids[1..3]);
        assert_eq!(out[0].labels[0], vec![(1, 1.0)]);
        assert!(out[0].ids[0] != 1 && out[0].ids[0] != 9);
    }

    /// On random vectors, the projection returns exactly the token a brute-force cosine search
    /// on the host (in f64) finds, with the exclusions and specials skipped.
    #[test]
    fn nearest_tokens_is_the_brute_force_nearest() {
        use burn::tensor::TensorData;
        use rand::{RngExt, SeedableRng, rngs::StdRng};
        let device = Device::flex();
        let mut rng = StdRng::seed_from_u64(9);
        let (v, d, k) = (40usize, 6usize, 8usize);
        let mut draw =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
        let table_v = draw(v * d);
        let mixed_v = draw(k * d);
        let exclude: Vec<Vec<u32>> = (0..k as u32).map(|r| vec![r, r + 7]).collect();
        // Specials 0 and 1; ids 30.. are rows the model never trained.
        let blocked: Vec<u32> = [0u32, 1].into_iter().chain(30..v as u32).collect();
        let norm = |x: &[f32]| x.iter().map(|&a| (a as f64).powi(2)).sum::<f64>().sqrt();
        let dot = |m: &[f32], t: &[f32]| -> f64 {
            m.iter().zip(t).map(|(&a, &b)| a as f64 * b as f64).sum()
        };
        let mut limited = 0;
        for (metric, top_k) in [
            (ProjectionMetric::Cosine, None),
            (ProjectionMetric::SquaredL2, None),
            (ProjectionMetric::SquaredL2, Some(7)),
            (ProjectionMetric::Cosine, Some(1)),
        ] {
            let projection = Projection::new(metric, top_k)
                .block([0, 1])
                .allow_only(v, 0..30);
            let got = nearest_tokens(
                Tensor::from_data(TensorData::new(mixed_v.clone(), [k, d]), &device),
                Tensor::from_data(TensorData::new(table_v.clone(), [v, d]), &device),
                &exclude,
                &projection,
            );
            for (row, got) in got.iter().enumerate() {
                let m = &mixed_v[row * d..(row + 1) * d];
                // Every allowed id, nearest first, by a host search in f64.
                let mut ranked: Vec<(u32, f64)> = (0..v as u32)
                    .filter(|id| !blocked.contains(id))
                    .map(|id| {
                        let t = &table_v[id as usize * d..(id as usize + 1) * d];
                        let score = match metric {
                            ProjectionMetric::Cosine => dot(m, t) / (norm(m) * norm(t)),
                            ProjectionMetric::SquaredL2 => -m
                                .iter()
                                .zip(t)
                                .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                                .sum::<f64>(),
                        };
                        (id, score)
                    })
                    .collect();
                ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
                ranked.truncate(top_k.unwrap_or(usize::MAX));
                let best = ranked
                    .iter()
                    .map(|&(id, _)| id)
                    .find(|id| !exclude[row].contains(id));
                limited += usize::from(best.is_none());
                assert_eq!(*got, best, "{metric:?} top {top_k:?}, row {row}");
                assert!(got.is_none_or(|id| !blocked.contains(&id)));
            }
        }
        assert!(
            limited > 0,
            "top 1 must sometimes leave only a source token"
        );
    }
}
