//! A linear-chain CRF output layer (Lafferty et al. 2001; as in Lample et al. 2016, "Neural
//! Architectures for Named Entity Recognition") and constrained Viterbi decoding.
//!
//! The score of tags `y_1..y_n` for emissions `e` (the tagger's token logits) is
//! `start[y_1] + sum_t e_t[y_t] + sum_t A[y_{t-1}, y_t] + end[y_n]`. [`Crf::log_partition`]
//! is the forward algorithm (log-sum-exp over all tag sequences, on the device, differentiable);
//! [`Crf::nll`] the mean negative log-likelihood.
//!
//! **Soft labels** (SeqMix's mixed tags, label smoothing): with a label distribution `p_t` at
//! each position, the loss is the expected negative log-likelihood under the product of the
//! `p_t`: `log Z - E[score]`, where `E[score] = sum_t p_t . e_t + sum_t p_{t-1}^T A p_t +
//! start . p_1 + end . p_n` (positions independent, so the pairwise term is the outer product of
//! neighbouring distributions). For one-hot `p` it is the usual NLL ([`Crf::expected_score`]).
//!
//! [`viterbi`] decodes on the host, exactly, with transitions that may be forbidden
//! (`-inf`): [`bio_allowed`] forbids `I-X` after anything but `B-X` / `I-X`, and at the start,
//! which also gives BIO-constrained decoding for taggers without a CRF (emissions =
//! log-probabilities, all allowed transitions scored 0).

use burn::{
    module::{Module, Param},
    tensor::{Bool, Device, Tensor, TensorData},
};

/// Transition, start and end scores of a linear-chain CRF over `T` tags.
#[derive(Module, Debug)]
pub struct Crf {
    /// `A[i, j]`: the score of tag `j` right after tag `i`, `[T, T]`.
    pub transitions: Param<Tensor<2>>,
    /// The score of starting with each tag, `[T]`.
    pub start: Param<Tensor<1>>,
    /// The score of ending with each tag, `[T]`.
    pub end: Param<Tensor<1>>,
}

impl Crf {
    /// A CRF over `num_tags` tags with every score 0 (training learns them).
    pub fn new(num_tags: usize, device: &Device) -> Self {
        Self {
            transitions: Param::from_tensor(Tensor::zeros([num_tags, num_tags], device)),
            start: Param::from_tensor(Tensor::zeros([num_tags], device)),
            end: Param::from_tensor(Tensor::zeros([num_tags], device)),
        }
    }

    /// Number of tags.
    pub fn num_tags(&self) -> usize {
        self.start.dims()[0]
    }

    /// `log Z` of each sentence: log-sum-exp of the scores of all tag sequences over its
    /// valid positions (the forward algorithm).
    ///
    /// # Shapes
    ///
    /// - `emissions`: `[n, L, T]`; `mask`: `[n, L]`, true at real tokens, each row a prefix
    ///   (right padding) of at least one token; returns `[n]`.
    pub fn log_partition(&self, emissions: Tensor<3>, mask: Tensor<2, Bool>) -> Tensor<1> {
        let [n, l, t] = emissions.dims();
        let step = |k: usize| emissions.clone().narrow(1, k, 1).reshape([n, t]);
        let valid = |k: usize| {
            mask.clone()
                .narrow(1, k, 1)
                .reshape([n, 1])
                .repeat_dim(1, t)
        };
        let trans = self.transitions.val().reshape([1, t, t]);
        // alpha[b, j]: log-sum of the scores of all prefixes ending in tag j.
        let mut alpha = self.start.val().reshape([1, t]) + step(0);
        for k in 1..l {
            // [n, T, 1] + [1, T, T] → log-sum-exp over the previous tag.
            let scores = alpha.clone().reshape([n, t, 1]) + trans.clone();
            let next = log_sum_exp(scores, 1).reshape([n, t]) + step(k);
            alpha = next.mask_where(valid(k).bool_not(), alpha);
        }
        log_sum_exp(alpha + self.end.val().reshape([1, t]), 1).reshape([n])
    }

    /// The expected score of each sentence under per-position tag distributions `targets`
    /// (one-hot rows: the score of that tag sequence).
    ///
    /// # Shapes
    ///
    /// - `emissions`, `targets`: `[n, L, T]`; `mask`: `[n, L]` (right padding); returns `[n]`.
    pub fn expected_score(
        &self,
        emissions: Tensor<3>,
        targets: Tensor<3>,
        mask: Tensor<2, Bool>,
    ) -> Tensor<1> {
        let [n, l, t] = emissions.dims();
        let m = mask.clone().float().reshape([n, l, 1]);
        let p = targets * m.clone();
        let emit = (emissions * p.clone()).sum_dim(2).sum_dim(1).reshape([n]);
        let first = p.clone().narrow(1, 0, 1).reshape([n, t]);
        let start = (first * self.start.val().reshape([1, t]))
            .sum_dim(1)
            .reshape([n]);
        // The last valid position of each row: its distribution, where the next is padding.
        let next_valid = if l > 1 {
            Tensor::cat(
                vec![
                    m.clone().narrow(1, 1, l - 1),
                    Tensor::zeros([n, 1, 1], &m.device()),
                ],
                1,
            )
        } else {
            Tensor::zeros([n, 1, 1], &m.device())
        };
        let last = (p.clone() * (m - next_valid)).sum_dim(1).reshape([n, t]);
        let end = (last * self.end.val().reshape([1, t]))
            .sum_dim(1)
            .reshape([n]);
        let pairs = if l > 1 {
            // sum_k p_{k-1}^T A p_k over pairs of valid neighbours (padding has p = 0).
            let prev = p.clone().narrow(1, 0, l - 1).reshape([n * (l - 1), t]);
            let cur = p.narrow(1, 1, l - 1).reshape([n * (l - 1), t]);
            (prev.matmul(self.transitions.val()) * cur)
                .sum_dim(1)
                .reshape([n, l - 1])
                .sum_dim(1)
                .reshape([n])
        } else {
            Tensor::zeros([n], &emit.device())
        };
        emit + start + end + pairs
    }

    /// Mean over sentences of the (expected) negative log-likelihood of `targets`:
    /// `log Z - E[score]`.
    ///
    /// # Shapes
    ///
    /// As [`Crf::expected_score`]; returns `[1]`.
    pub fn nll(
        &self,
        emissions: Tensor<3>,
        targets: Tensor<3>,
        mask: Tensor<2, Bool>,
    ) -> Tensor<1> {
        let z = self.log_partition(emissions.clone(), mask.clone());
        (z - self.expected_score(emissions, targets, mask)).mean()
    }

    /// The scores on the host, for [`viterbi`]: `(transitions [T * T], start [T], end [T])`.
    ///
    /// # Panics
    ///
    /// If the backend cannot read them back.
    pub fn host_scores(&self) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let read = |d: TensorData| -> Vec<f32> {
            d.convert::<f32>()
                .try_to_vec()
                .unwrap_or_else(|e| panic!("CRF scores could not be read back: {e:?}"))
        };
        (
            read(self.transitions.val().into_data()),
            read(self.start.val().into_data()),
            read(self.end.val().into_data()),
        )
    }
}

/// `log(sum(exp(x)))` along `dim`, stable (the maximum taken out first).
fn log_sum_exp<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    let max = x.clone().max_dim(dim).detach();
    (x - max.clone()).exp().sum_dim(dim).log() + max
}

/// The best tag sequence of one sentence: `emissions` `[len * T]` row by row, `transitions`
/// `[T * T]` (from row to column; `f32::NEG_INFINITY` forbids), `start` / `end` `[T]`. Exact
/// dynamic programming; the first best path on ties. Empty for an empty sentence; when every
/// path is forbidden, the unconstrained emissions' argmax per token.
pub fn viterbi(
    emissions: &[f32],
    num_tags: usize,
    transitions: &[f32],
    start: &[f32],
    end: &[f32],
) -> Vec<usize> {
    let t = num_tags;
    let len = emissions.len() / t.max(1);
    if len == 0 || t == 0 {
        return Vec::new();
    }
    let mut score: Vec<f32> = (0..t).map(|j| start[j] + emissions[j]).collect();
    let mut back = vec![0usize; len * t];
    for k in 1..len {
        let mut next = vec![f32::NEG_INFINITY; t];
        for j in 0..t {
            let (mut best, mut arg) = (f32::NEG_INFINITY, 0);
            for i in 0..t {
                let s = score[i] + transitions[i * t + j];
                if s > best {
                    (best, arg) = (s, i);
                }
            }
            next[j] = best + emissions[k * t + j];
            back[k * t + j] = arg;
        }
        score = next;
    }
    let (mut best, mut tag) = (f32::NEG_INFINITY, usize::MAX);
    for j in 0..t {
        let s = score[j] + end[j];
        if s > best {
            (best, tag) = (s, j);
        }
    }
    if tag == usize::MAX {
        // No allowed path: fall back to each token's best tag.
        return (0..len)
            .map(|k| {
                (0..t)
                    .max_by(|&a, &b| emissions[k * t + a].total_cmp(&emissions[k * t + b]))
                    .unwrap_or(0)
            })
            .collect();
    }
    let mut path = vec![tag; len];
    for k in (1..len).rev() {
        tag = back[k * t + tag];
        path[k - 1] = tag;
    }
    path
}

/// BIO's allowed transitions for tag names (`O`, `B-X`, `I-X`): `(transitions [T * T],
/// start [T])` with 0 where allowed and `-inf` where not: `I-X` only after `B-X` or `I-X`,
/// never first. Add them to a CRF's scores, or use them alone (with log-probabilities as
/// emissions) to decode a tagger without a CRF.
pub fn bio_allowed(tags: &[String]) -> (Vec<f32>, Vec<f32>) {
    let t = tags.len();
    let inside = |s: &str| s.strip_prefix("I-").map(str::to_string);
    let entity = |s: &str| {
        s.strip_prefix("B-")
            .or_else(|| s.strip_prefix("I-"))
            .map(str::to_string)
    };
    let mut trans = vec![0.0f32; t * t];
    let mut start = vec![0.0f32; t];
    for (j, to) in tags.iter().enumerate() {
        if let Some(x) = inside(to) {
            start[j] = f32::NEG_INFINITY;
            for (i, from) in tags.iter().enumerate() {
                if entity(from).as_deref() != Some(x.as_str()) {
                    trans[i * t + j] = f32::NEG_INFINITY;
                }
            }
        }
    }
    (trans, start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Int;
    use rand::{RngExt, SeedableRng, rngs::StdRng};

    /// Every tag sequence of length `len` over `t` tags.
    fn all_paths(len: usize, t: usize) -> Vec<Vec<usize>> {
        (0..t.pow(len as u32))
            .map(|mut code| {
                (0..len)
                    .map(|_| {
                        let tag = code % t;
                        code /= t;
                        tag
                    })
                    .collect()
            })
            .collect()
    }

    fn score(e: &[f32], t: usize, a: &[f32], s: &[f32], z: &[f32], path: &[usize]) -> f64 {
        let mut total = (s[path[0]] + z[path[path.len() - 1]]) as f64;
        for (k, &y) in path.iter().enumerate() {
            total += e[k * t + y] as f64;
            if k > 0 {
                total += a[path[k - 1] * t + y] as f64;
            }
        }
        total
    }

    /// A random CRF over `t` tags and a batch of two sentences of lengths 4 and 2 (padded).
    fn setup(seed: u64, t: usize) -> (Device, Crf, Vec<f32>, Tensor<3>, Tensor<2, Bool>) {
        let device = Device::flex();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut draw =
            |k: usize| -> Vec<f32> { (0..k).map(|_| rng.random_range(-2.0..2.0)).collect() };
        let crf = Crf {
            transitions: Param::from_tensor(Tensor::from_data(
                TensorData::new(draw(t * t), [t, t]),
                &device,
            )),
            start: Param::from_tensor(Tensor::from_data(TensorData::new(draw(t), [t]), &device)),
            end: Param::from_tensor(Tensor::from_data(TensorData::new(draw(t), [t]), &device)),
        };
        let e = draw(2 * 4 * t);
        let emissions = Tensor::from_data(TensorData::new(e.clone(), [2, 4, t]), &device);
        let mask = Tensor::<2, Int>::from_data(
            TensorData::new(vec![1i64, 1, 1, 1, 1, 1, 0, 0], [2, 4]),
            &device,
        )
        .equal_elem(1);
        (device, crf, e, emissions, mask)
    }

    fn host(v: Tensor<1>) -> Vec<f32> {
        v.into_data().convert::<f32>().try_to_vec().expect("f32")
    }

    /// The forward algorithm equals the log-sum-exp over every tag sequence, padding aside.
    #[test]
    fn log_partition_is_the_brute_force_sum() {
        for seed in 0..5 {
            let t = 3;
            let (_, crf, e, emissions, mask) = setup(seed, t);
            let (a, s, z) = crf.host_scores();
            let got = host(crf.log_partition(emissions, mask));
            for (row, len) in [(0usize, 4usize), (1, 2)] {
                let er = &e[row * 4 * t..row * 4 * t + len * t];
                let scores: Vec<f64> = all_paths(len, t)
                    .iter()
                    .map(|p| score(er, t, &a, &s, &z, p))
                    .collect();
                let max = scores.iter().copied().fold(f64::MIN, f64::max);
                let lse = max + scores.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
                assert!(
                    (got[row] as f64 - lse).abs() < 1e-4,
                    "seed {seed} row {row}: {} vs {lse}",
                    got[row]
                );
            }
        }
    }

    /// One-hot targets give the path's score; soft targets its expectation over the product of
    /// the distributions (brute force over every path).
    #[test]
    fn expected_score_is_the_brute_force_expectation() {
        let t = 3;
        let (device, crf, e, emissions, mask) = setup(7, t);
        let (a, s, z) = crf.host_scores();
        let mut rng = StdRng::seed_from_u64(3);
        let mut dist = vec![0.0f32; 2 * 4 * t];
        for pos in 0..8 {
            let raw: Vec<f32> = (0..t).map(|_| rng.random_range(0.05..1.0)).collect();
            let sum: f32 = raw.iter().sum();
            for j in 0..t {
                dist[pos * t + j] = raw[j] / sum;
            }
        }
        let targets = Tensor::from_data(TensorData::new(dist.clone(), [2, 4, t]), &device);
        let got = host(crf.expected_score(emissions.clone(), targets, mask.clone()));
        for (row, len) in [(0usize, 4usize), (1, 2)] {
            let er = &e[row * 4 * t..row * 4 * t + len * t];
            let pr = &dist[row * 4 * t..];
            let want: f64 = all_paths(len, t)
                .iter()
                .map(|p| {
                    let prob: f64 = p
                        .iter()
                        .enumerate()
                        .map(|(k, &y)| pr[k * t + y] as f64)
                        .product();
                    prob * score(er, t, &a, &s, &z, p)
                })
                .sum();
            assert!(
                (got[row] as f64 - want).abs() < 1e-4,
                "row {row}: {} vs {want}",
                got[row]
            );
        }
        // One-hot: the score of that path; the NLL is then log Z minus it.
        let path = [2usize, 0, 1, 1, 1, 2, 0, 0];
        let onehot: Vec<f32> = path
            .iter()
            .flat_map(|&y| (0..t).map(move |j| f32::from(j == y)))
            .collect();
        let targets = Tensor::from_data(TensorData::new(onehot, [2, 4, t]), &device);
        let got = host(crf.expected_score(emissions.clone(), targets.clone(), mask.clone()));
        assert!((got[0] as f64 - score(&e[..4 * t], t, &a, &s, &z, &path[..4])).abs() < 1e-4);
        assert!((got[1] as f64 - score(&e[4 * t..6 * t], t, &a, &s, &z, &path[4..6])).abs() < 1e-4);
        let z_all = host(crf.log_partition(emissions.clone(), mask.clone()));
        let nll = host(crf.nll(emissions, targets, mask))[0];
        let want = ((z_all[0] - got[0]) + (z_all[1] - got[1])) / 2.0;
        assert!((nll - want).abs() < 1e-4 && nll > 0.0, "{nll} vs {want}");
    }

    /// Viterbi returns the brute-force best path, with and without forbidden transitions.
    #[test]
    fn viterbi_is_the_brute_force_argmax() {
        let t = 3;
        for seed in 0..20 {
            let (_, crf, e, _, _) = setup(seed, t);
            let (mut a, s, z) = crf.host_scores();
            if seed % 2 == 1 {
                a[2] = f32::NEG_INFINITY; // 0 -> 2 forbidden
                a[3 + 1] = f32::NEG_INFINITY; // 1 -> 1 forbidden
            }
            for len in 1..=4 {
                let er = &e[..len * t];
                let got = viterbi(er, t, &a, &s, &z);
                let best = all_paths(len, t)
                    .into_iter()
                    .max_by(|p, q| {
                        score(er, t, &a, &s, &z, p).total_cmp(&score(er, t, &a, &s, &z, q))
                    })
                    .expect("a path");
                assert_eq!(got, best, "seed {seed}, length {len}");
            }
        }
        assert!(viterbi(&[], 3, &[0.0; 9], &[0.0; 3], &[0.0; 3]).is_empty());
    }

    /// BIO constraints: no `I-X` first or after `O` / another type; decoding log-probabilities
    /// with them repairs an `O I-PER` into `O B-PER` or `O O`.
    #[test]
    fn bio_constrained_decoding_never_opens_with_inside() {
        let tags: Vec<String> = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (trans, start) = bio_allowed(&tags);
        let t = tags.len();
        let allowed = |i: usize, j: usize| trans[i * t + j] == 0.0;
        assert!(allowed(1, 2) && allowed(2, 2) && allowed(0, 1) && allowed(2, 0));
        assert!(!allowed(0, 2) && !allowed(3, 2) && !allowed(2, 4));
        assert!(start[2].is_infinite() && start[0] == 0.0);
        // Token 2 prefers I-PER after an O: unconstrained argmax gives O I-PER.
        let lp = |p: [f32; 5]| p.map(f32::ln);
        let e: Vec<f32> = [
            lp([0.9, 0.02, 0.02, 0.03, 0.03]),
            lp([0.3, 0.25, 0.35, 0.05, 0.05]),
        ]
        .concat();
        let path = viterbi(&e, t, &trans, &start, &[0.0; 5]);
        assert_eq!(
            path,
            vec![0, 0],
            "O then the best allowed tag (O beats B-PER)"
        );
    }
}
