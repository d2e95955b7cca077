//! SSMix span selection (Yoon, Kim and Park 2021, "SSMix: Saliency-Based Span Mixup for Text
//! Classification", <https://arxiv.org/abs/2106.08062>).
//!
//! SSMix replaces the **least salient** span of sentence A by the **most salient** span of
//! sentence B, in token ids (the positions need not match, the length of A is unchanged), and
//! labels the result `ratio * y_A + (1 - ratio) * y_B` with
//! `ratio = 1 - span / (non-special length of A)`. The span is a fixed share of A's non-special
//! length (10% in the paper), at least one token; special tokens (`[CLS]`, `[SEP]`) and padding
//! are never replaced nor copied. Saliency is the per-token gradient norm of the loss with
//! respect to the embedding output ([`token_saliency`]), averaged over each window of the span
//! length.
//!
//! The two ablations of the paper are here too: random spans without saliency
//! ([`SpanMode::RandomSpan`]: the same start in both sentences) and random tokens without
//! a span ([`SpanMode::RandomTokens`]: a random set of aligned positions).
//!
//! Text pairs (NLI, paraphrase) keep their structure, as the official code does: a row's text
//! is cut into segments at its separator tokens ([`Layout::sep`]), each segment of A takes a
//! span from the same segment of B, spans never cross or copy a separator, and the label ratio
//! is `1 - (sum of spans) / (sum of segment lengths)`: the segments' ratios weighted by their
//! lengths ([`choose_segment_spans`], [`saliency_span_mix_segments`]).
//!
//! [`choose_span`] works on one pair at a time, on plain slices, so that each invariant is
//! testable on hand-made saliency vectors; it is the reference, and what the random ablations
//! use. [`saliency_span_mix`] makes the saliency choice for a whole batch on the device (no
//! read-back), and is tested to agree with [`choose_span`].

use burn::tensor::{Bool, Int, Tensor, TensorData};
use rand::{Rng, RngExt, seq::index};

/// How the replaced positions are chosen.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, burn::serde::Serialize, burn::serde::Deserialize,
)]
#[serde(crate = "burn::serde", rename_all = "kebab-case")]
pub enum SpanMode {
    /// SSMix: least salient window of A, most salient window of B.
    #[default]
    Saliency,
    /// Ablation "no saliency": a random window, at the same start in A and B.
    RandomSpan,
    /// Ablation "no span": a random set of positions, aligned in A and B.
    RandomTokens,
}

/// Where the non-special tokens of a row are: `front` special tokens (e.g. `[CLS]`), then the
/// text, then `back` special tokens (e.g. `[SEP]`), then padding. With `sep`, the text is a
/// pair (or more) of segments separated by that id (`a [SEP] b` inside `[CLS] ... [SEP]`, or
/// `a <sep> b` for word vocabularies).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Special tokens at the start of every row.
    pub front: usize,
    /// Special tokens at the end of every row's valid part.
    pub back: usize,
    /// The id that separates the segments of a text pair, if rows can be pairs.
    pub sep: Option<u32>,
}

impl Layout {
    /// A word-level row: no special tokens.
    pub const PLAIN: Layout = Layout {
        front: 0,
        back: 0,
        sep: None,
    };
    /// A BERT row: `[CLS]` first, `[SEP]` last.
    pub const BERT: Layout = Layout {
        front: 1,
        back: 1,
        sep: None,
    };

    /// This layout with rows that may be pairs separated by `sep`.
    pub const fn with_sep(self, sep: u32) -> Layout {
        Layout {
            sep: Some(sep),
            ..self
        }
    }

    /// The non-special positions `front..len - back` of a row of valid length `len`.
    pub fn text(&self, len: usize) -> std::ops::Range<usize> {
        let end = len.saturating_sub(self.back);
        self.front.min(end)..end
    }

    /// The segments of the row `ids` (its valid part): [`Layout::text`] cut at every
    /// separator, the separators themselves in none (empty segments are kept, so segment `k`
    /// of two rows is the same part of the pair). One segment without `sep`.
    pub fn segments(&self, ids: &[u32]) -> Vec<std::ops::Range<usize>> {
        let text = self.text(ids.len());
        let Some(sep) = self.sep else {
            return vec![text];
        };
        let mut out = Vec::new();
        let mut start = text.start;
        for t in text.clone() {
            if ids[t] == sep {
                out.push(start..t);
                start = t + 1;
            }
        }
        out.push(start..text.end.max(start));
        out
    }
}

/// The result of mixing one pair: copy `ids_b[src]` into `ids_a[dst]` for each pair of
/// `positions`, and weight A's label by `ratio` (B's by `1 - ratio`).
#[derive(Clone, Debug, PartialEq)]
pub struct SpanMix {
    /// `(dst in A, src in B)` position pairs.
    pub positions: Vec<(usize, usize)>,
    /// A's share of the label.
    pub ratio: f32,
}

impl SpanMix {
    /// No mixing (ratio 1).
    pub fn none() -> Self {
        SpanMix {
            positions: Vec::new(),
            ratio: 1.0,
        }
    }

    /// A's ids with B's tokens copied in.
    ///
    /// # Panics
    ///
    /// If a position is out of range of `a` or `b`.
    pub fn apply<T: Copy>(&self, a: &[T], b: &[T]) -> Vec<T> {
        let mut out = a.to_vec();
        for &(dst, src) in &self.positions {
            out[dst] = b[src];
        }
        out
    }
}

/// The span length for a row with `text_len` non-special tokens: `share` of it, at least 1
/// (the official code's `max(int(len * share), 1)`).
pub fn span_len(text_len: usize, share: f64) -> usize {
    ((text_len as f64 * share) as usize).max(1)
}

/// Means of every window of `w` consecutive values (`len - w + 1` of them); empty when
/// `w == 0` or `w > values.len()`.
pub fn window_means(values: &[f32], w: usize) -> Vec<f32> {
    if w == 0 || w > values.len() {
        return Vec::new();
    }
    let mut sum: f32 = values[..w].iter().sum();
    let mut out = Vec::with_capacity(values.len() - w + 1);
    out.push(sum / w as f32);
    for i in w..values.len() {
        sum += values[i] - values[i - w];
        out.push(sum / w as f32);
    }
    out
}

/// Chooses what of B goes into A.
///
/// `sal_a` / `sal_b` are the rows' saliencies (at least their valid lengths long; ignored for
/// the random modes), `len_a` / `len_b` their valid lengths (specials included), `share` the
/// span's share of A's text. Returns [`SpanMix::none`] when B's text is shorter than the span
/// (or, for the aligned random modes, than the span's end in A) or A has no text.
///
/// # Panics
///
/// If a saliency slice is shorter than its valid length in [`SpanMode::Saliency`].
#[allow(clippy::too_many_arguments)]
pub fn choose_span<R: Rng + ?Sized>(
    mode: SpanMode,
    sal_a: &[f32],
    len_a: usize,
    sal_b: &[f32],
    len_b: usize,
    layout: Layout,
    share: f64,
    rng: &mut R,
) -> SpanMix {
    let (ta, tb) = (layout.text(len_a), layout.text(len_b));
    if ta.is_empty() {
        return SpanMix::none();
    }
    let w = span_len(ta.len(), share);
    if tb.len() < w {
        return SpanMix::none();
    }
    let ratio = 1.0 - w as f32 / ta.len() as f32;
    let positions: Vec<(usize, usize)> = match mode {
        SpanMode::Saliency => {
            let wa = window_means(&sal_a[ta.clone()], w);
            let wb = window_means(&sal_b[tb.clone()], w);
            // First minimum of A, first maximum of B (ties resolved to the earliest window).
            let dst = argbest(&wa, |x, best| x < best);
            let src = argbest(&wb, |x, best| x > best);
            (0..w)
                .map(|k| (ta.start + dst + k, tb.start + src + k))
                .collect()
        }
        SpanMode::RandomSpan => {
            // The same start in both: the window must fit in both texts.
            let end = ta.end.min(tb.end);
            if end < ta.start + w {
                return SpanMix::none();
            }
            let start = rng.random_range(ta.start..=end - w);
            (start..start + w).map(|p| (p, p)).collect()
        }
        SpanMode::RandomTokens => {
            let end = ta.end.min(tb.end);
            let shared = end.saturating_sub(ta.start);
            if shared < w {
                return SpanMix::none();
            }
            let mut picked: Vec<usize> = index::sample(rng, shared, w)
                .into_iter()
                .map(|i| ta.start + i)
                .collect();
            picked.sort_unstable();
            picked.into_iter().map(|p| (p, p)).collect()
        }
    };
    SpanMix { positions, ratio }
}

/// [`choose_span`] for rows made of segments ([`Layout::segments`]): segment `k` of A takes a
/// span from segment `k` of B (their texts only; a segment B lacks, or one too short, is left
/// as it is), and A's ratio is `1 - (sum of spans) / (sum of A's segment lengths)`, the
/// segments' ratios weighted by their lengths. With one segment this is [`choose_span`].
///
/// # Panics
///
/// If a range is out of the saliency slices in [`SpanMode::Saliency`].
#[allow(clippy::too_many_arguments)]
pub fn choose_segment_spans<R: Rng + ?Sized>(
    mode: SpanMode,
    sal_a: &[f32],
    segs_a: &[std::ops::Range<usize>],
    sal_b: &[f32],
    segs_b: &[std::ops::Range<usize>],
    share: f64,
    rng: &mut R,
) -> SpanMix {
    let total: usize = segs_a.iter().map(|r| r.len()).sum();
    let mut positions = Vec::new();
    for (ra, rb) in segs_a.iter().zip(segs_b) {
        let slice = |sal: &[f32], r: &std::ops::Range<usize>| -> Vec<f32> {
            if mode == SpanMode::Saliency {
                sal[r.clone()].to_vec()
            } else {
                Vec::new()
            }
        };
        let (sa, sb) = (slice(sal_a, ra), slice(sal_b, rb));
        let mix = choose_span(
            mode,
            &sa,
            ra.len(),
            &sb,
            rb.len(),
            Layout::PLAIN,
            share,
            rng,
        );
        positions.extend(
            mix.positions
                .into_iter()
                .map(|(dst, src)| (ra.start + dst, rb.start + src)),
        );
    }
    if positions.is_empty() || total == 0 {
        return SpanMix::none();
    }
    SpanMix {
        ratio: 1.0 - positions.len() as f32 / total as f32,
        positions,
    }
}

fn argbest(values: &[f32], better: impl Fn(f32, f32) -> bool) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate().skip(1) {
        if better(v, values[best]) {
            best = i;
        }
    }
    best
}

/// Per-token saliency from the gradient of the loss with respect to the embedding output:
/// `sqrt(mean(g^2))` over the hidden axis, zero at padding, divided by each row's maximum
/// (rows whose gradient is all zero stay zero).
///
/// # Shapes
///
/// - `grad`: `[n, L, d]`, `mask`: `[n, L]` (true = valid); returns `[n, L]`.
pub fn token_saliency(grad: Tensor<3>, mask: Tensor<2, Bool>) -> Tensor<2> {
    let [n, l, _] = grad.dims();
    let norms = grad
        .powf_scalar(2.0)
        .mean_dim(2)
        .sqrt()
        .reshape([n, l])
        .mask_fill(mask.bool_not(), 0.0);
    let max = norms.clone().max_dim(1).clamp_min(1e-12);
    norms.div(max)
}

/// SSMix in [`SpanMode::Saliency`] for a whole batch, on the device: the same choice as
/// [`choose_span`] followed by [`SpanMix::apply`] for every row, without reading the saliency
/// back to the host.
///
/// Row `i` gets the most salient window of row `partners[i]` in place of its own least
/// salient window, both of `span_len` of row `i`'s text; window sums come from a cumulative
/// sum, and the first minimum / maximum is taken (as [`choose_span`] does; windows whose
/// means differ only by rounding may be ranked differently). Rows mixed with themselves, rows
/// without text and rows whose partner's text is shorter than the span are left as they are.
/// The label ratios depend only on lengths, so they are computed on the host and returned.
///
/// # Shapes
///
/// - `ids`: `[n, L]`, right-padded; `saliency`: `[n, L]`, aligned with `ids`;
/// - `lens[i]`: row `i`'s valid length (specials included, at most `L`);
/// - returns the mixed ids `[n, L]` and `n` ratios.
///
/// # Panics
///
/// If `lens` or `partners` do not have `n` entries, or a partner is out of range.
pub fn saliency_span_mix(
    ids: Tensor<2, Int>,
    saliency: Tensor<2>,
    lens: &[usize],
    partners: &[usize],
    layout: Layout,
    share: f64,
) -> (Tensor<2, Int>, Vec<f32>) {
    let n = ids.dims()[0];
    assert!(
        lens.len() == n,
        "saliency_span_mix: {n} rows, {} lengths",
        lens.len()
    );
    let l = ids.dims()[1];
    let segments: Vec<Vec<std::ops::Range<usize>>> = lens
        .iter()
        .map(|&len| vec![layout.text(len.min(l))])
        .collect();
    saliency_span_mix_segments(ids, saliency, &segments, partners, share)
}

/// [`saliency_span_mix`] for rows made of segments (`segments[i]`: row `i`'s, from
/// [`Layout::segments`]): the choice of [`choose_segment_spans`] for every row, segment by
/// segment, on the device.
///
/// # Panics
///
/// If `segments` or `partners` do not have `n` entries, a partner is out of range or a segment
/// reaches past `L`.
pub fn saliency_span_mix_segments(
    ids: Tensor<2, Int>,
    saliency: Tensor<2>,
    segments: &[Vec<std::ops::Range<usize>>],
    partners: &[usize],
    share: f64,
) -> (Tensor<2, Int>, Vec<f32>) {
    let [n, l] = ids.dims();
    assert!(
        segments.len() == n
            && partners.len() == n
            && partners.iter().all(|&j| j < n)
            && segments.iter().flatten().all(|r| r.end <= l),
        "saliency_span_mix: {n} rows of {l}, {} segment lists, {} partners (all below {n})",
        segments.len(),
        partners.len()
    );
    let most = segments.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = ids;
    let mut spans = vec![0usize; n];
    let empty = 0..0;
    for k in 0..most {
        let pick = |i: usize| segments[i].get(k).unwrap_or(&empty).clone();
        let dst: Vec<_> = (0..n).map(pick).collect();
        let src: Vec<_> = (0..n).map(|i| pick(partners[i])).collect();
        let (mixed, widths) = span_mix_once(ids, saliency.clone(), &dst, &src, partners, share);
        ids = mixed;
        for (s, w) in spans.iter_mut().zip(widths) {
            *s += w;
        }
    }
    let ratios = (0..n)
        .map(|i| {
            let total: usize = segments[i].iter().map(|r| r.len()).sum();
            if spans[i] == 0 || total == 0 {
                1.0
            } else {
                1.0 - spans[i] as f32 / total as f32
            }
        })
        .collect();
    (ids, ratios)
}

/// One span per row: row `i`'s least salient window inside `dst[i]` takes the most salient
/// window of row `partners[i]` inside `src[i]`, both of `span_len(dst[i])`. Returns the ids
/// and each row's span width (0: unchanged).
fn span_mix_once(
    ids: Tensor<2, Int>,
    saliency: Tensor<2>,
    dst_ranges: &[std::ops::Range<usize>],
    src_ranges: &[std::ops::Range<usize>],
    partners: &[usize],
    share: f64,
) -> (Tensor<2, Int>, Vec<usize>) {
    let [n, l] = ids.dims();
    let device = ids.device();
    // Host side: each row's span width (0 = unchanged), the end index of every window
    // start in the cumulative sums, and the starts that are allowed in A and in B.
    const OFF: f32 = 1e30;
    let mut width = vec![0i64; n];
    let mut ends = Vec::with_capacity(n * l);
    let mut penalty_a = Vec::with_capacity(n * l);
    let mut penalty_b = Vec::with_capacity(n * l);
    for i in 0..n {
        let j = partners[i];
        let (ta, tb) = (dst_ranges[i].clone(), src_ranges[i].clone());
        let w = if ta.is_empty() {
            0
        } else {
            span_len(ta.len(), share)
        };
        let on = j != i && w > 0 && tb.len() >= w;
        if on {
            width[i] = w as i64;
        }
        for t in 0..l {
            ends.push((t + w.max(1)).min(l) as i64);
            let in_a = on && t >= ta.start && t + w <= ta.end;
            let in_b = on && t >= tb.start && t + w <= tb.end;
            penalty_a.push(if in_a { 0.0 } else { OFF });
            penalty_b.push(if in_b { 0.0 } else { -OFF });
        }
    }
    let grid = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, [n, l]), &device);
    let ends = Tensor::<2, Int>::from_data(TensorData::new(ends, [n, l]), &device);
    let partner_rows = crate::mix::index_tensor(partners, &device);
    // Sum of every window: C[t + w] - C[t], with C the cumulative sums after a leading 0.
    let window_sums = |sal: Tensor<2>| -> Tensor<2> {
        let c = Tensor::cat(vec![Tensor::zeros([n, 1], &device), sal.cumsum(1)], 1);
        c.clone().gather(1, ends.clone()) - c.narrow(1, 0, l)
    };
    let saliency = saliency.detach();
    let dst = (window_sums(saliency.clone()) + grid(penalty_a)).argmin(1); // [n, 1]
    let src = (window_sums(saliency.select(0, partner_rows.clone())) + grid(penalty_b)).argmax(1);
    let widths: Vec<usize> = width.iter().map(|&w| w as usize).collect();
    let width = Tensor::<2, Int>::from_data(TensorData::new(width, [n, 1]), &device);
    let pos = Tensor::<1, Int>::arange(0..l as i64, &device)
        .reshape([1, l])
        .repeat_dim(0, n);
    let dst = dst.repeat_dim(1, l);
    let end = dst.clone() + width.repeat_dim(1, l);
    let in_span = pos
        .clone()
        .greater_equal(dst.clone())
        .bool_and(pos.clone().lower(end));
    let from = (pos - dst + src.repeat_dim(1, l)).clamp(0, l as i64 - 1);
    let copied = ids.clone().select(0, partner_rows).gather(1, from);
    (ids.mask_where(in_span, copied), widths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use proptest::prelude::*;
    use rand::{SeedableRng, rngs::StdRng};

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    #[test]
    fn windows_and_span_lengths() {
        assert_eq!(window_means(&[1.0, 2.0, 3.0, 6.0], 2), vec![1.5, 2.5, 4.5]);
        assert_eq!(window_means(&[1.0, 2.0], 3), Vec::<f32>::new());
        assert_eq!(span_len(20, 0.1), 2);
        assert_eq!(span_len(9, 0.1), 1);
        assert_eq!(span_len(3, 0.1), 1);
        assert_eq!(Layout::BERT.text(7), 1..6);
        assert_eq!(Layout::PLAIN.text(7), 0..7);
        assert!(Layout::BERT.text(1).is_empty());
    }

    /// Hand-made saliencies: A = [CLS] t1..t10 [SEP], least salient window at t3-t4;
    /// B = [CLS] u1..u12 [SEP] pad, most salient at u7-u8 (positions 7 and 8).
    #[test]
    fn least_salient_of_a_gets_most_salient_of_b() {
        let mut sal_a = vec![1.0f32; 12];
        sal_a[0] = 0.0; // [CLS] would be least salient: it must not be chosen
        sal_a[3] = 0.1;
        sal_a[4] = 0.2;
        let mut sal_b = vec![0.3f32; 16];
        sal_b[7] = 0.9;
        sal_b[8] = 1.0;
        sal_b[13] = 5.0; // [SEP] of B: never copied
        sal_b[14] = 9.0; // padding: never copied
        let mix = choose_span(
            SpanMode::Saliency,
            &sal_a,
            12,
            &sal_b,
            14,
            Layout::BERT,
            0.2,
            &mut rng(),
        );
        assert_eq!(mix.positions, vec![(3, 7), (4, 8)]);
        assert!((mix.ratio - 0.8).abs() < 1e-6, "ratio {}", mix.ratio);
        let a: Vec<i64> = (100..112).collect();
        let b: Vec<i64> = (200..216).collect();
        let out = mix.apply(&a, &b);
        assert_eq!(out.len(), a.len());
        assert_eq!(&out[..3], &a[..3]);
        assert_eq!(&out[3..5], &[207, 208]);
        assert_eq!(&out[5..], &a[5..]);
    }

    #[test]
    fn too_short_partner_or_empty_text_means_no_mix() {
        let sal = vec![1.0f32; 30];
        // A has 20 text tokens (span 2 at 10%), B only 1.
        let mix = choose_span(
            SpanMode::Saliency,
            &sal,
            22,
            &sal,
            3,
            Layout::BERT,
            0.1,
            &mut rng(),
        );
        assert_eq!(mix, SpanMix::none());
        let mix = choose_span(
            SpanMode::Saliency,
            &sal,
            2,
            &sal,
            10,
            Layout::BERT,
            0.1,
            &mut rng(),
        );
        assert_eq!(mix, SpanMix::none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Specials and padding are never written nor read, the length is kept, positions stay
        /// inside the texts, and the ratio is 1 - span / text length.
        #[test]
        fn invariants_hold_in_every_mode(
            len_a in 1usize..30, len_b in 1usize..30, share in 0.05f64..0.6,
            mode in 0usize..3, bert: bool, seed: u64,
            sal in proptest::collection::vec(0.0f32..1.0, 64),
        ) {
            let mode = [SpanMode::Saliency, SpanMode::RandomSpan, SpanMode::RandomTokens][mode];
            let layout = if bert { Layout::BERT } else { Layout::PLAIN };
            let mut r = StdRng::seed_from_u64(seed);
            let mix = choose_span(mode, &sal[..32], len_a, &sal[32..], len_b, layout, share, &mut r);
            let (ta, tb) = (layout.text(len_a), layout.text(len_b));
            if mix.positions.is_empty() {
                prop_assert_eq!(mix.ratio, 1.0);
            } else {
                let w = span_len(ta.len(), share);
                prop_assert_eq!(mix.positions.len(), w);
                prop_assert!((mix.ratio - (1.0 - w as f32 / ta.len() as f32)).abs() < 1e-6);
                for &(dst, src) in &mix.positions {
                    prop_assert!(ta.contains(&dst), "dst {} outside {:?}", dst, ta);
                    prop_assert!(tb.contains(&src), "src {} outside {:?}", src, tb);
                }
                let mut dsts: Vec<usize> = mix.positions.iter().map(|p| p.0).collect();
                dsts.dedup();
                prop_assert_eq!(dsts.len(), w);
                if mode == SpanMode::Saliency || mode == SpanMode::RandomSpan {
                    // Contiguous spans.
                    prop_assert!(mix.positions.windows(2).all(|p| p[1].0 == p[0].0 + 1
                        && p[1].1 == p[0].1 + 1));
                }
                let a: Vec<i64> = (0..len_a as i64).collect();
                let b: Vec<i64> = (100..100 + len_b as i64).collect();
                let out = mix.apply(&a, &b);
                prop_assert_eq!(out.len(), len_a);
                prop_assert_eq!(&out[..ta.start], &a[..ta.start]);
                prop_assert_eq!(&out[ta.end..], &a[ta.end..]);
            }
        }
    }

    #[test]
    fn segments_split_at_the_separator() {
        let bert = Layout::BERT.with_sep(102);
        // [CLS] a a [SEP] b [SEP]
        assert_eq!(bert.segments(&[101, 5, 6, 102, 7, 102]), vec![1..3, 4..5]);
        assert_eq!(bert.segments(&[101, 5, 6, 102]), vec![1..3], "one text");
        assert_eq!(Layout::BERT.segments(&[101, 5, 102, 7, 102]), vec![1..4]);
        let words = Layout::PLAIN.with_sep(9);
        assert_eq!(words.segments(&[3, 9, 4, 5]), vec![0..1, 2..4]);
        assert_eq!(
            words.segments(&[9, 4]),
            vec![0..0, 1..2],
            "empty first text kept"
        );
    }

    /// Pairs: each segment takes its span from the same segment of the partner, no span
    /// touches a separator, the ratio weighs the segments by length, and the device agrees.
    #[test]
    fn pair_segments_mix_apart_on_host_and_device() {
        const SEP: i64 = 999;
        let device = Device::flex();
        let mut rng = StdRng::seed_from_u64(5);
        let mut changed = 0;
        for case in 0..30 {
            let n = 2 + case % 5;
            let layout = if case % 2 == 0 {
                Layout::BERT.with_sep(SEP as u32)
            } else {
                Layout::PLAIN.with_sep(SEP as u32)
            };
            let rows: Vec<Vec<i64>> = (0..n)
                .map(|i| {
                    let (la, lb) = (rng.random_range(1..9), rng.random_range(1..9));
                    let mut r = Vec::new();
                    if layout.front == 1 {
                        r.push(101);
                    }
                    r.extend((0..la).map(|t| (100 * i + t + 1) as i64));
                    r.push(SEP);
                    r.extend((0..lb).map(|t| (100 * i + 50 + t) as i64));
                    if layout.back == 1 {
                        r.push(SEP);
                    }
                    r
                })
                .collect();
            let l = rows.iter().map(Vec::len).max().unwrap_or(1);
            let partners: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
            let (mut ids, mut sal) = (vec![0i64; n * l], vec![0.0f32; n * l]);
            for (i, r) in rows.iter().enumerate() {
                for (t, &v) in r.iter().enumerate() {
                    ids[i * l + t] = v;
                    sal[i * l + t] = rng.random::<f32>();
                }
            }
            let segs: Vec<Vec<std::ops::Range<usize>>> = rows
                .iter()
                .map(|r| layout.segments(&r.iter().map(|&v| v as u32).collect::<Vec<_>>()))
                .collect();
            let share = [0.2, 0.5][case % 2];
            let (mixed, ratios) = saliency_span_mix_segments(
                Tensor::from_data(TensorData::new(ids.clone(), [n, l]), &device),
                Tensor::from_data(TensorData::new(sal.clone(), [n, l]), &device),
                &segs,
                &partners,
                share,
            );
            let mixed: Vec<i64> = mixed
                .into_data()
                .convert::<i64>()
                .try_to_vec()
                .expect("ids");
            for i in 0..n {
                let j = partners[i];
                let host = if i == j {
                    SpanMix::none()
                } else {
                    choose_segment_spans(
                        SpanMode::Saliency,
                        &sal[i * l..(i + 1) * l],
                        &segs[i],
                        &sal[j * l..(j + 1) * l],
                        &segs[j],
                        share,
                        &mut rng,
                    )
                };
                for &(dst, src) in &host.positions {
                    let k = segs[i]
                        .iter()
                        .position(|r| r.contains(&dst))
                        .expect("in a segment");
                    assert!(
                        segs[j][k].contains(&src),
                        "case {case}: a span crossed segments"
                    );
                }
                let total: usize = segs[i].iter().map(|r| r.len()).sum();
                if !host.positions.is_empty() {
                    changed += 1;
                    let want = 1.0 - host.positions.len() as f32 / total as f32;
                    assert!((host.ratio - want).abs() < 1e-6);
                }
                let want = host.apply(&ids[i * l..(i + 1) * l], &ids[j * l..(j + 1) * l]);
                assert_eq!(&mixed[i * l..(i + 1) * l], &want[..], "case {case} row {i}");
                assert_eq!(
                    want.iter().filter(|&&v| v == SEP).count(),
                    rows[i].iter().filter(|&&v| v == SEP).count(),
                    "separators stay where they were"
                );
                assert!((ratios[i] - host.ratio).abs() < 1e-6, "case {case} row {i}");
            }
        }
        assert!(changed >= 20, "only {changed} rows were mixed");
    }

    #[test]
    fn saliency_is_a_normalised_gradient_norm_without_padding() {
        let device = Device::flex();
        // Row 0: token norms 2, 4 (sqrt(mean(g^2)) of [2, 2] and [4, 4]); row 1: 1 then padding.
        let grad = Tensor::<3>::from_data(
            TensorData::new(vec![2.0f32, 2.0, 4.0, 4.0, 1.0, 1.0, 8.0, 8.0], [2, 2, 2]),
            &device,
        );
        let mask = Tensor::<2, burn::tensor::Int>::from_data(
            TensorData::new(vec![1i64, 1, 1, 0], [2, 2]),
            &device,
        )
        .equal_elem(1);
        let s: Vec<f32> = token_saliency(grad, mask)
            .into_data()
            .try_to_vec()
            .expect("f32");
        assert_eq!(s, vec![0.5, 1.0, 1.0, 0.0]);
    }

    /// The device version makes the host version's choice, row by row.
    #[test]
    fn device_span_mix_matches_the_host_choice() {
        let device = Device::flex();
        let mut rng = StdRng::seed_from_u64(11);
        let mut changed = 0;
        for case in 0..40 {
            let n = 1 + case % 7;
            let l = 3 + (case * 5) % 17;
            let layout = if case % 2 == 0 {
                Layout::BERT
            } else {
                Layout::PLAIN
            };
            let lens: Vec<usize> = (0..n).map(|_| rng.random_range(1..=l)).collect();
            let partners: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
            // Distinct saliencies (no ties), zero at padding.
            let mut sal = vec![0.0f32; n * l];
            let mut ids = vec![0i64; n * l];
            for i in 0..n {
                for t in 0..lens[i] {
                    sal[i * l + t] = rng.random::<f32>();
                    ids[i * l + t] = (100 * i + t + 1) as i64;
                }
            }
            let share = [0.1, 0.3, 0.5][case % 3];
            let (mixed, ratios) = saliency_span_mix(
                Tensor::from_data(TensorData::new(ids.clone(), [n, l]), &device),
                Tensor::from_data(TensorData::new(sal.clone(), [n, l]), &device),
                &lens,
                &partners,
                layout,
                share,
            );
            let mixed: Vec<i64> = mixed
                .into_data()
                .convert::<i64>()
                .try_to_vec()
                .expect("ids");
            for i in 0..n {
                let j = partners[i];
                let host = if i == j {
                    SpanMix::none()
                } else {
                    choose_span(
                        SpanMode::Saliency,
                        &sal[i * l..i * l + lens[i]],
                        lens[i],
                        &sal[j * l..j * l + lens[j]],
                        lens[j],
                        layout,
                        share,
                        &mut rng,
                    )
                };
                let want = host.apply(&ids[i * l..(i + 1) * l], &ids[j * l..(j + 1) * l]);
                changed += usize::from(!host.positions.is_empty());
                assert_eq!(&mixed[i * l..(i + 1) * l], &want[..], "case {case} row {i}");
                assert!((ratios[i] - host.ratio).abs() < 1e-6, "case {case} row {i}");
            }
        }
        assert!(
            changed >= 30,
            "only {changed} rows were mixed: the test proves little"
        );
    }
}
