//! [`MixParams`]: what one batch is mixed with, drawn once on the host.

use rand::{Rng, RngExt, seq::SliceRandom};
use rand_distr::{Beta, Distribution};

use crate::config::{LambdaMode, MixupConfig, Pairing};

/// The parameters one batch is mixed with: row `i` becomes
/// `lambdas[i] * x[i] + (1 - lambdas[i]) * partner[i]`.
///
/// Drawn once by [`MixupConfig::sample`] and then applied to the inputs (or hidden states),
/// the masks and the targets, so that all three see the same mix.
#[derive(Clone, Debug, PartialEq)]
pub struct MixParams {
    /// The weight each row keeps of itself, in `[0, 1]`.
    pub lambdas: Vec<f32>,
    /// The row each row is mixed with (an index into the same batch, or the row of a separate
    /// partner batch for methods such as TMix that mix two batches).
    pub partners: Vec<usize>,
}

impl MixParams {
    /// Parameters that leave a batch of `n` rows unchanged (lambda 1, each row its own partner).
    pub fn identity(n: usize) -> Self {
        Self {
            lambdas: vec![1.0; n],
            partners: (0..n).collect(),
        }
    }

    /// Parameters with one lambda for every row and the given partners.
    pub fn with_lambda(lambda: f32, partners: Vec<usize>) -> Self {
        Self {
            lambdas: vec![lambda; partners.len()],
            partners,
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.lambdas.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.lambdas.is_empty()
    }

    /// True when applying these parameters cannot change anything: every lambda is 1.
    pub fn is_identity(&self) -> bool {
        self.lambdas.iter().all(|&l| l == 1.0)
    }

    /// The partners, except that rows with lambda 1 (not mixed) are their own partner.
    pub fn effective_partners(&self) -> Vec<usize> {
        self.partners
            .iter()
            .zip(&self.lambdas)
            .enumerate()
            .map(|(i, (&j, &l))| if l == 1.0 { i } else { j })
            .collect()
    }

    /// The mean lambda (the share of the rows' own labels); 1 for an empty batch.
    pub fn mean_lambda(&self) -> f32 {
        if self.lambdas.is_empty() {
            return 1.0;
        }
        self.lambdas.iter().sum::<f32>() / self.lambdas.len() as f32
    }
}

impl MixupConfig {
    /// The partners of a method that draws no lambda (SSMix, whose label ratio comes from its
    /// span): the pairing's partners, with each batch (mode `Batch`) or row (`Elem`, `Pair`)
    /// left with itself with probability `1 - prob`. `alpha` plays no part, so `alpha = 0`
    /// does not turn such a method off.
    pub fn sample_partners<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Vec<usize> {
        if n == 0 {
            return Vec::new();
        }
        let mut partners = partners(self.pairing, n, rng);
        if self.prob < 1.0 {
            match self.mode {
                LambdaMode::Batch => {
                    if !rng.random_bool(self.prob.max(0.0)) {
                        return (0..n).collect();
                    }
                }
                LambdaMode::Elem | LambdaMode::Pair => {
                    for (i, p) in partners.iter_mut().enumerate() {
                        if !rng.random_bool(self.prob.max(0.0)) {
                            *p = i;
                        }
                    }
                }
            }
        }
        partners
    }
}

/// Partners of each row of an `n`-row batch under `pairing`.
fn partners<R: Rng + ?Sized>(pairing: Pairing, n: usize, rng: &mut R) -> Vec<usize> {
    match pairing {
        Pairing::Permutation => {
            let mut p: Vec<usize> = (0..n).collect();
            p.shuffle(rng);
            p
        }
        Pairing::SplitHalves => {
            let half = n / 2;
            (0..n)
                .map(|i| {
                    if i < half {
                        i + half
                    } else if i < 2 * half {
                        i - half
                    } else {
                        i
                    }
                })
                .collect()
        }
        Pairing::Flip => (0..n).map(|i| n - 1 - i).collect(),
    }
}

impl MixupConfig {
    /// Draws the parameters of one batch of `n` rows from `rng`.
    ///
    /// Lambda is drawn from `Beta(alpha, alpha)` (once per batch, pair or row according to
    /// [`MixupConfig::mode`]); rows (or the whole batch) are left unmixed with probability
    /// `1 - prob`; `lambda_ge_half` folds lambda onto `[0.5, 1]`. With `alpha = 0` or
    /// `prob = 0` the result is the identity and nothing is drawn from `rng` for lambdas.
    ///
    /// # Panics
    ///
    /// If the config is invalid; call [`MixupConfig::validate`] first.
    ///
    /// ```
    /// use mixup_core::{LambdaMode, MixupConfig, Pairing};
    /// use rand::SeedableRng;
    /// let config = MixupConfig {
    ///     alpha: 0.4, mode: LambdaMode::Elem, pairing: Pairing::Flip, lambda_ge_half: true,
    ///     num_classes: 6, ..MixupConfig::default()
    /// };
    /// let params = config.sample(5, &mut rand::rngs::StdRng::seed_from_u64(0));
    /// assert_eq!(params.partners, vec![4, 3, 2, 1, 0]);
    /// assert!(params.lambdas.iter().all(|&l| (0.5..=1.0).contains(&l)));
    /// ```
    pub fn sample<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> MixParams {
        if let Err(e) = self.validate() {
            panic!("MixupConfig::sample on an invalid config: {e}");
        }
        if !self.enabled() || n == 0 {
            return MixParams::identity(n);
        }
        let partners = partners(self.pairing, n, rng);
        // Validated above: alpha > 0 and finite, so Beta::new cannot fail.
        let beta = match Beta::new(self.alpha, self.alpha) {
            Ok(b) => b,
            Err(e) => panic!("Beta({0}, {0}): {e}", self.alpha),
        };
        let draw = |rng: &mut R| -> f32 {
            if self.prob < 1.0 && !rng.random_bool(self.prob) {
                return 1.0;
            }
            let l: f64 = beta.sample(rng);
            let l = if self.lambda_ge_half {
                l.max(1.0 - l)
            } else {
                l
            };
            (l as f32).clamp(0.0, 1.0)
        };
        let lambdas = match self.mode {
            LambdaMode::Batch => vec![draw(rng); n],
            LambdaMode::Elem => (0..n).map(|_| draw(rng)).collect(),
            LambdaMode::Pair => {
                let mut lambdas: Vec<Option<f32>> = vec![None; n];
                for i in 0..n {
                    if lambdas[i].is_none() {
                        let l = draw(rng);
                        lambdas[i] = Some(l);
                        let j = partners[i];
                        if partners[j] == i && lambdas[j].is_none() {
                            lambdas[j] = Some(l);
                        }
                    }
                }
                lambdas.into_iter().map(|l| l.unwrap_or(1.0)).collect()
            }
        };
        MixParams { lambdas, partners }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{SeedableRng, rngs::StdRng};

    fn mode() -> impl Strategy<Value = LambdaMode> {
        prop_oneof![
            Just(LambdaMode::Batch),
            Just(LambdaMode::Pair),
            Just(LambdaMode::Elem)
        ]
    }
    fn pairing() -> impl Strategy<Value = Pairing> {
        prop_oneof![
            Just(Pairing::Permutation),
            Just(Pairing::SplitHalves),
            Just(Pairing::Flip)
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn lambdas_in_unit_interval_and_partners_valid(
            alpha in 0.01f64..8.0, prob in 0.0f64..=1.0, n in 1usize..17, seed: u64,
            ge_half: bool, mode in mode(), pairing in pairing(),
        ) {
            let cfg = MixupConfig { alpha, prob, mode, pairing, lambda_ge_half: ge_half,
                ..Default::default() };
            let p = cfg.sample(n, &mut StdRng::seed_from_u64(seed));
            prop_assert_eq!(p.len(), n);
            prop_assert_eq!(p.partners.len(), n);
            for (&l, &j) in p.lambdas.iter().zip(&p.partners) {
                prop_assert!((0.0..=1.0).contains(&l), "lambda {}", l);
                if ge_half { prop_assert!(l >= 0.5, "lambda {} < 0.5 with lambda_ge_half", l); }
                prop_assert!(j < n);
            }
            // Partners form a permutation for every pairing.
            let mut seen = p.partners.clone();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..n).collect::<Vec<_>>());
            if mode == LambdaMode::Batch {
                prop_assert!(p.lambdas.iter().all(|&l| l == p.lambdas[0]));
            }
            if mode == LambdaMode::Pair {
                for i in 0..n {
                    let j = p.partners[i];
                    if p.partners[j] == i { prop_assert_eq!(p.lambdas[i], p.lambdas[j]); }
                }
            }
        }

        #[test]
        fn same_seed_same_params(alpha in 0.01f64..4.0, n in 1usize..33, seed: u64,
                                 mode in mode(), pairing in pairing()) {
            let cfg = MixupConfig { alpha, mode, pairing, ..Default::default() };
            let a = cfg.sample(n, &mut StdRng::seed_from_u64(seed));
            let b = cfg.sample(n, &mut StdRng::seed_from_u64(seed));
            prop_assert_eq!(a, b);
        }

        #[test]
        fn zero_alpha_or_prob_is_identity(n in 0usize..20, seed: u64, zero_alpha: bool) {
            let cfg = if zero_alpha {
                MixupConfig { alpha: 0.0, ..Default::default() }
            } else {
                MixupConfig { prob: 0.0, ..Default::default() }
            };
            let p = cfg.sample(n, &mut StdRng::seed_from_u64(seed));
            prop_assert!(p.is_identity());
            prop_assert_eq!(p, MixParams::identity(n));
        }
    }

    #[test]
    fn pairings_by_hand() {
        let mut rng = StdRng::seed_from_u64(0);
        assert_eq!(partners(Pairing::Flip, 5, &mut rng), vec![4, 3, 2, 1, 0]);
        assert_eq!(
            partners(Pairing::SplitHalves, 5, &mut rng),
            vec![2, 3, 0, 1, 4]
        );
        assert_eq!(
            partners(Pairing::SplitHalves, 4, &mut rng),
            vec![2, 3, 0, 1]
        );
        assert_eq!(partners(Pairing::Permutation, 1, &mut rng), vec![0]);
    }

    #[test]
    fn different_seeds_differ() {
        let cfg = MixupConfig {
            mode: LambdaMode::Elem,
            ..Default::default()
        };
        let a = cfg.sample(16, &mut StdRng::seed_from_u64(1));
        let b = cfg.sample(16, &mut StdRng::seed_from_u64(2));
        assert_ne!(a, b);
    }

    #[test]
    fn prob_half_mixes_some_rows_only() {
        let cfg = MixupConfig {
            prob: 0.5,
            mode: LambdaMode::Elem,
            ..Default::default()
        };
        let p = cfg.sample(1000, &mut StdRng::seed_from_u64(3));
        let unmixed = p.lambdas.iter().filter(|&&l| l == 1.0).count();
        assert!(
            (350..650).contains(&unmixed),
            "{unmixed} of 1000 rows unmixed"
        );
    }

    #[test]
    fn span_partners_ignore_alpha_and_honour_prob() {
        let cfg = MixupConfig {
            alpha: 0.0,
            pairing: Pairing::SplitHalves,
            ..Default::default()
        };
        let mut rng = StdRng::seed_from_u64(0);
        // `sample` with alpha 0 pairs every row with itself; the span partners do not.
        assert_eq!(
            cfg.sample(4, &mut rng).effective_partners(),
            vec![0, 1, 2, 3]
        );
        assert_eq!(cfg.sample_partners(4, &mut rng), vec![2, 3, 0, 1]);
        let never = MixupConfig {
            prob: 0.0,
            ..cfg.clone()
        };
        assert_eq!(never.sample_partners(4, &mut rng), vec![0, 1, 2, 3]);
        let half = MixupConfig {
            prob: 0.5,
            mode: LambdaMode::Elem,
            ..cfg
        };
        let mixed: usize = (0..2000)
            .map(|_| {
                let p = half.sample_partners(4, &mut rng);
                p.iter().enumerate().filter(|(i, j)| i != *j).count()
            })
            .sum();
        let share = mixed as f64 / 8000.0;
        assert!((share - 0.5).abs() < 0.03, "mixed share {share}");
    }

    /// alpha shapes lambda: the sample mean and variance of batch lambdas are Beta(alpha,
    /// alpha)'s, 1/2 and 1 / (4 (2 alpha + 1)).
    #[test]
    fn lambdas_have_the_moments_of_beta_alpha_alpha() {
        let mut rng = StdRng::seed_from_u64(7);
        for alpha in [0.2, 1.0, 4.0, 16.0] {
            let cfg = MixupConfig {
                alpha,
                ..Default::default()
            };
            let n = 40_000;
            let draws: Vec<f64> = (0..n)
                .map(|_| cfg.sample(1, &mut rng).lambdas[0] as f64)
                .collect();
            let mean = draws.iter().sum::<f64>() / n as f64;
            let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            let want = 1.0 / (4.0 * (2.0 * alpha + 1.0));
            assert!((mean - 0.5).abs() < 0.01, "alpha {alpha}: mean {mean}");
            assert!(
                (var / want - 1.0).abs() < 0.05,
                "alpha {alpha}: variance {var}, Beta's {want}"
            );
        }
    }
}
