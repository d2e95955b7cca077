//! `mixup ner-al`: active sequence labelling with SeqMix augmentation (Zhang, Yu and Zhang
//! 2020), on a `ner` recipe.
//!
//! For each augmentation (none, or a SeqMix variant) and seed: a random seed set of labelled
//! training sentences, then rounds. Each round trains a fresh tagger for the recipe's epochs on
//! the labelled sentences plus the SeqMix sentences generated so far, records dev and test
//! entity F1, and then queries the next sentences from a random candidate sample of the
//! unlabelled pool by the query policy. The newly labelled sentences are augmented: SeqMix pairs
//! them with labelled sentences (lambda ~ Beta(alpha, alpha)), projects the mixed embeddings
//! onto the just-trained tagger's embedding table, and keeps a generated sentence when its
//! perplexity under a Kneser-Ney n-gram model of the labelled sentences is below
//! `seqmix.max_perplexity` (no filter when unset). As in the paper, an augmenting arm's first
//! point is the seed set plus its own SeqMix sentences (made with a tagger trained on the seed
//! set alone); with `augment_seed_set = false` round 0 is the seed set alone in every arm.
//!
//! Differences from the released code, on purpose: soft labels train through a soft
//! cross-entropy whose gradient reaches the model (the code detaches them), the
//! label-constrained variant runs, tags stay aligned with tokens (no `[CLS]` shift), the filter
//! is an n-gram model of the labelled data instead of OpenAI GPT, each round trains from
//! scratch, and queries are chosen from a candidate sample (default 2000 sentences) rather than
//! the whole pool.

use anyhow::Context;
use burn::{module::Module, tensor::Device};
use mixup_core::{Projection, SeqMixVariant, TaggedIds, labelled_windows, seqmix_pair};
use mixup_data::KneserNeyLm;
use rand::{RngExt, SeedableRng, rngs::StdRng, seq::SliceRandom};
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};

use mixup_models::SequenceTagger;
use mixup_train::{
    ner::{EncodedSentence, NerItem, NerVocab, TaggerTrainer, evaluate_ner, predict_proba},
    train::derive_seed,
};

use crate::{
    ner::{NerData, build_tagger},
    recipe::{Recipe, SeqMixSection},
};

/// How the next sentences to label are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryPolicy {
    /// Uniformly at random.
    Random,
    /// Least confidence: the largest sum over tokens of `1 - max p`.
    LeastConfidence,
    /// Normalised token entropy: the largest mean token entropy.
    Entropy,
}

impl QueryPolicy {
    /// Parses `random`, `lc` or `nte`.
    ///
    /// # Errors
    ///
    /// An unknown name, with the known ones.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "random" => Ok(Self::Random),
            "lc" => Ok(Self::LeastConfidence),
            "nte" => Ok(Self::Entropy),
            _ => Err(format!("unknown query policy {s:?} (random, lc, nte)")),
        }
    }

    fn score(self, probs: &[Vec<f32>]) -> f64 {
        match self {
            Self::Random => 0.0,
            Self::LeastConfidence => probs
                .iter()
                .map(|p| 1.0 - p.iter().copied().fold(0.0f32, f32::max) as f64)
                .sum(),
            Self::Entropy => {
                let h: f64 = probs
                    .iter()
                    .map(|p| {
                        -p.iter()
                            .filter(|&&x| x > 0.0)
                            .map(|&x| x as f64 * (x as f64).ln())
                            .sum::<f64>()
                    })
                    .sum();
                h / probs.len().max(1) as f64
            }
        }
    }
}

/// The shape of an active-learning experiment.
#[derive(Clone, Debug)]
pub struct AlSpec {
    /// Labelled sentences to start from.
    pub seed_size: usize,
    /// Query rounds after the seed round.
    pub rounds: usize,
    /// Sentences labelled per round.
    pub query: usize,
    /// Unlabelled sentences scored per round (a random sample of the pool).
    pub candidates: usize,
    /// The pool's size: this many training sentences beside the seed set, drawn per seed
    /// (`None`: all the others).
    pub pool: Option<usize>,
    /// The query policy.
    pub policy: QueryPolicy,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Augmentations compared: `None` is no augmentation.
    pub augments: Vec<Option<SeqMixVariant>>,
    /// The SeqMix paper's first point: an augmenting arm trains on the seed set, augments it
    /// with that tagger, and reports a tagger retrained on the seed set plus its SeqMix
    /// sentences (the paper's 200 + 40). `false`: round 0 is the seed set alone in every arm
    /// and the seed set is augmented together with round 1's queries.
    pub augment_seed_set: bool,
}

/// One round of one arm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlRow {
    /// `none` or the SeqMix variant.
    pub augment: String,
    /// Seed.
    pub seed: u64,
    /// Round (0 = seed set).
    pub round: usize,
    /// Labelled sentences trained on.
    pub labelled: usize,
    /// SeqMix sentences trained on.
    pub augmented: usize,
    /// SeqMix sentences generated so far (before the filter).
    pub generated: usize,
    /// Dev entity F1, when there is a dev split.
    pub dev_f1: Option<f64>,
    /// Test entity F1.
    pub test_f1: f64,
    /// Seconds this round took.
    pub seconds: f64,
}

/// Runs every arm (augmentation x seed) and returns one row per round.
///
/// # Errors
///
/// Bad data, a model that is not a tagger, divergence, or a spec that asks for more sentences
/// than the training set holds.
pub fn run_active_learning(
    recipe: &Recipe,
    data: &NerData,
    spec: &AlSpec,
    device: &Device,
    bert: Option<&crate::run::PreparedBert>,
    state_dir: Option<&std::path::Path>,
    say: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<AlRow>> {
    let needed = spec.seed_size + spec.rounds * spec.query;
    if recipe.train.select != mixup_train::Selection::Last {
        anyhow::bail!(
            "train.select = \"best-dev\": ner-al scores each round's last epoch (the paper's \
             protocol has no dev selection); use select = \"last\""
        );
    }
    if recipe.data.singleton_unk.is_some() {
        anyhow::bail!(
            "data.singleton_unk: ner-al trains each round on a few hundred sentences and does \
             not replace singletons; leave it out"
        );
    }
    if let Some(p) = spec.pool
        && p < spec.rounds * spec.query
    {
        anyhow::bail!(
            "--pool {p}: the rounds query {} x {} = {} sentences from it",
            spec.rounds,
            spec.query,
            spec.rounds * spec.query
        );
    }
    if needed > data.train.len() || spec.seed_size == 0 {
        anyhow::bail!(
            "--seed-size {} + --rounds {} x --query {} = {needed} sentences; the training set \
             has {} (and the seed set must not be empty)",
            spec.seed_size,
            spec.rounds,
            spec.query,
            data.train.len()
        );
    }
    let is_bert = matches!(recipe.model, crate::recipe::ModelSection::Bert(_));
    if is_bert && bert.is_none() {
        anyhow::bail!("model.kind = \"bert\": ner-al needs the prepared checkpoint");
    }
    let sm = recipe.seqmix.clone().unwrap_or_default();
    // The vocabulary of the whole training text: words only (tags of unlabelled sentences
    // are never read before they are queried).
    let mut vocab = NerVocab::build(
        &data.train,
        &crate::ner::word_config(recipe),
        recipe.data.max_len,
        bert.filter(|_| is_bert).map(|b| b.tokenizer.clone()),
    )?;
    vocab.char_features = recipe.tagger_options().char_filters > 0;
    let (train, dev, test) = data.encode(&vocab)?;
    let beta = Beta::new(sm.alpha, sm.alpha).map_err(|e| anyhow::anyhow!("seqmix.alpha: {e}"))?;
    let study = Study {
        recipe,
        config: recipe.train_config(usize::MAX),
        vocab: &vocab,
        train: &train,
        dev: dev.as_deref(),
        test: &test,
        spec,
        sm: &sm,
        beta,
        device,
        bert_dir: bert.filter(|_| is_bert).map(|b| b.dir.as_path()),
        state_dir,
        // What a saved arm must have been run with to be continued.
        // What trains (the description and measured results aside, which people edit).
        fingerprint: format!(
            "{}\n{:?}",
            Recipe {
                description: String::new(),
                results: None,
                ..recipe.clone()
            }
            .to_toml()
            .unwrap_or_default(),
            (
                spec.seed_size,
                spec.rounds,
                spec.query,
                spec.candidates,
                spec.policy
            ),
        ) + &spec.pool.map_or(String::new(), |p| format!("\npool {p}")),
    };
    let mut rows = Vec::new();
    for &seed in &spec.seeds {
        for augment in &spec.augments {
            rows.extend(study.run_arm(seed, *augment, say)?);
        }
    }
    Ok(rows)
}

/// SeqMix sentences from labelled training sentences over a tagger's embedding table: what
/// `mixup ner-al` augments each round with and `mixup train` each epoch with
/// (`seqmix.train_rate`).
pub struct SeqMixer<'a> {
    /// The `[seqmix]` settings.
    pub sm: &'a SeqMixSection,
    /// The encoded training sentences (indices below refer to them).
    pub train: &'a [EncodedSentence],
    /// The vocabulary and tags.
    pub vocab: &'a NerVocab,
    /// Lambda's distribution, Beta(alpha, alpha).
    pub beta: Beta<f64>,
}

impl SeqMixer<'_> {
    /// Sentence `i` as SeqMix sees it: one id per word with its tag. For a word-level tagger
    /// that is the sentence; for a WordPiece one, each word is its first sub-token (words cut
    /// off by `max_len` are left out), so that every generated word is one sub-token and the
    /// word/label alignment holds by construction.
    pub fn word_view(&self, i: usize) -> TaggedIds {
        let s = &self.train[i];
        if self.vocab.wordpiece.is_none() {
            return TaggedIds {
                ids: s.ids.clone(),
                tags: s.tags.clone(),
            };
        }
        let words: Vec<(u32, usize)> = s
            .first
            .iter()
            .zip(&s.tags)
            .map_while(|(f, &t)| f.and_then(|p| s.ids.get(p)).map(|&id| (id, t)))
            .collect();
        TaggedIds {
            ids: words.iter().map(|w| w.0).collect(),
            tags: words.iter().map(|w| w.1).collect(),
        }
    }

    /// The words of a SeqMix sentence's ids (for the perplexity filter).
    fn words_of(&self, ids: &[u32]) -> Vec<String> {
        match &self.vocab.wordpiece {
            None => vocab_words(ids, &self.vocab.tokenizer),
            Some(wp) => ids
                .iter()
                .map(|&id| wp.token(id).unwrap_or_else(|| "[UNK]".into()))
                .collect(),
        }
    }

    /// A generated sentence as a training item: for a WordPiece tagger, `[CLS]` and `[SEP]`
    /// around its (one sub-token per word) ids, unlabelled.
    fn item(&self, ids: Vec<u32>, labels: Vec<Vec<(usize, f32)>>) -> NerItem {
        match &self.vocab.wordpiece {
            None => NerItem {
                bytes: self.vocab.bytes_of_ids(&ids),
                ids,
                labels,
            },
            Some(wp) => {
                let mut all = vec![wp.cls_id()];
                all.extend(ids);
                all.push(wp.sep_id());
                let mut l = vec![Vec::new()];
                l.extend(labels);
                l.push(Vec::new());
                NerItem {
                    ids: all,
                    labels: l,
                    bytes: Vec::new(),
                }
            }
        }
    }

    /// Whether a sentence (its [`Self::word_view`]) can take part in `variant`: enough
    /// labelled tokens (whole) or a labelled window (sub, label-constrained).
    fn eligible(&self, variant: SeqMixVariant, view: &TaggedIds) -> bool {
        let (tags, outside, sm) = (&view.tags, self.vocab.outside, self.sm);
        match variant {
            SeqMixVariant::Whole => {
                tags.iter().filter(|&&t| t != outside).count() >= sm.min_labelled
            }
            _ => !labelled_windows(tags, outside, sm.window, sm.min_labelled).is_empty(),
        }
    }

    /// The round's projection (see [`round_projection`]); for a WordPiece tagger, never a
    /// special token, an `[unused…]` row or a `##` continuation piece (so every generated
    /// word is a whole-word sub-token), and every other pretrained row allowed.
    fn projection(&self, vocab: usize, labelled: &[usize]) -> Projection {
        if let Some(wp) = &self.vocab.wordpiece {
            let blocked = (0..vocab as u32).filter(|&id| {
                wp.token(id)
                    .is_none_or(|t| t.starts_with("##") || (t.starts_with('[') && t.ends_with(']')))
            });
            return Projection::new(self.sm.projection, self.sm.top_k).block(blocked);
        }
        let seen = labelled
            .iter()
            .flat_map(|&i| self.train[i].ids.iter().copied());
        round_projection(self.sm, vocab, seen)
    }

    /// SeqMix sentences for the `newly` labelled ones (`seqmix.rate` of them), each paired
    /// with a labelled partner (of equal length for `whole`), kept when they pass the
    /// perplexity filter; returns them and how many were generated before the filter.
    pub fn augment(
        &self,
        variant: SeqMixVariant,
        eval: &SequenceTagger,
        labelled: &[usize],
        newly: &[usize],
        rng: &mut StdRng,
    ) -> (Vec<NerItem>, usize) {
        let (sm, vocab) = (self.sm, self.vocab);
        let table = eval.embedding_table();
        let projection = self.projection(table.dims()[0], labelled);
        // The filter scores generated sentences as vocabulary tokens (lowercased under
        // `data.lowercase`, `<unk>` for rare words), so it is trained on the labelled
        // sentences in the same form, not on their raw text.
        // Each sentence's word view, made once per call (the draws below read them often).
        let views: std::collections::HashMap<usize, TaggedIds> = labelled
            .iter()
            .chain(newly)
            .map(|&i| (i, self.word_view(i)))
            .collect();
        let lm = sm.max_perplexity.map(|_| {
            let sents: Vec<Vec<String>> = labelled
                .iter()
                .map(|i| self.words_of(&views[i].ids))
                .collect();
            KneserNeyLm::train(&sents, sm.lm_order)
        });
        let target = (newly.len() as f64 * sm.rate).round() as usize;
        let firsts: Vec<usize> = newly
            .iter()
            .copied()
            .filter(|i| self.eligible(variant, &views[i]))
            .collect();
        let seconds: Vec<usize> = labelled
            .iter()
            .copied()
            .filter(|i| self.eligible(variant, &views[i]))
            .collect();
        let mut made = Vec::new();
        let mut generated = 0;
        for _ in 0..target * 15 {
            if made.len() >= target || firsts.is_empty() {
                break;
            }
            let a = firsts[rng.random_range(0..firsts.len())];
            let partners: Vec<usize> = seconds
                .iter()
                .copied()
                .filter(|&b| {
                    b != a
                        && (variant != SeqMixVariant::Whole
                            || views[&b].ids.len() == views[&a].ids.len())
                })
                .collect();
            if partners.is_empty() {
                continue;
            }
            let b = partners[rng.random_range(0..partners.len())];
            let lambda = self.beta.sample(rng) as f32;
            let pair = seqmix_pair(
                &views[&a],
                &views[&b],
                variant,
                lambda,
                sm.window,
                sm.min_labelled,
                vocab.outside,
                &table,
                &projection,
            );
            for g in pair {
                generated += 1;
                let keep = match (&lm, sm.max_perplexity) {
                    (Some(lm), Some(limit)) => {
                        let words = self.words_of(&g.ids);
                        let words: Vec<&str> = words.iter().map(String::as_str).collect();
                        lm.perplexity(&words) < limit
                    }
                    _ => true,
                };
                if keep {
                    made.push(self.item(g.ids, g.labels));
                }
            }
        }
        (made, generated)
    }
}

/// A round's projection: `seqmix.projection` and `top_k`, never `<pad>` or `<unk>`, and with
/// `seqmix.exclude_untrained` only the ids `seen` in the labelled sentences (the embedding
/// rows the tagger has trained) of a `vocab`-row table.
fn round_projection(
    sm: &SeqMixSection,
    vocab: usize,
    seen: impl IntoIterator<Item = u32>,
) -> Projection {
    let p =
        Projection::new(sm.projection, sm.top_k).block([mixup_data::PAD_ID, mixup_data::UNK_ID]);
    if sm.exclude_untrained {
        p.allow_only(vocab, seen)
    } else {
        p
    }
}

/// What every arm of one study shares.
struct Study<'a> {
    recipe: &'a Recipe,
    config: mixup_train::TrainConfig,
    vocab: &'a NerVocab,
    train: &'a [EncodedSentence],
    dev: Option<&'a [EncodedSentence]>,
    test: &'a [EncodedSentence],
    spec: &'a AlSpec,
    sm: &'a crate::recipe::SeqMixSection,
    beta: Beta<f64>,
    device: &'a Device,
    /// A BERT-family tagger's checkpoint folder (each round starts from it).
    bert_dir: Option<&'a std::path::Path>,
    /// Where each arm's state is saved after every round (`None`: not saved).
    state_dir: Option<&'a std::path::Path>,
    /// The recipe and spec an arm's saved state belongs to.
    fingerprint: String,
}

/// An arm's state after a finished round: enough to continue with the next one exactly as an
/// uninterrupted run would (every round trains a fresh tagger from seeds derived from the
/// arm's seed and the round).
#[derive(Serialize, Deserialize)]
struct ArmState {
    fingerprint: String,
    labelled: Vec<usize>,
    pool: Vec<usize>,
    #[serde(flatten)]
    grown: Grown,
    rows: Vec<AlRow>,
}

/// An augmenting arm's SeqMix side: the sentences labelled since its last augmentation, the
/// SeqMix sentences made so far, and how many were generated before the filter.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Grown {
    newly: Vec<usize>,
    augmented: Vec<NerItem>,
    generated: usize,
}

impl Study<'_> {
    fn state_path(&self, name: &str, seed: u64) -> Option<std::path::PathBuf> {
        self.state_dir
            .map(|d| d.join("state").join(format!("{name}-seed{seed}.json")))
    }

    /// What a saved arm named `name` must have been run with to be continued: the study's
    /// fingerprint, and for an augmenting arm whether its seed set was augmented.
    fn arm_fingerprint(&self, name: &str) -> String {
        match name != "none" && self.spec.augment_seed_set {
            true => format!("{}\nseed set augmented", self.fingerprint),
            false => self.fingerprint.clone(),
        }
    }

    /// The saved state of an arm, when there is one for this recipe and spec.
    fn load_state(&self, name: &str, seed: u64, say: &mut dyn FnMut(&str)) -> Option<ArmState> {
        let path = self.state_path(name, seed)?;
        let bytes = std::fs::read(&path).ok()?;
        match serde_json::from_slice::<ArmState>(&bytes) {
            Ok(s) if s.fingerprint == self.arm_fingerprint(name) => Some(s),
            Ok(_) => {
                say(&format!(
                    "{}: saved for another recipe or spec; starting {name} seed {seed} afresh",
                    path.display()
                ));
                None
            }
            Err(e) => {
                say(&format!(
                    "{}: unreadable ({e}); starting {name} seed {seed} afresh",
                    path.display()
                ));
                None
            }
        }
    }

    fn save_state(&self, name: &str, seed: u64, state: &ArmState) -> anyhow::Result<()> {
        let Some(path) = self.state_path(name, seed) else {
            return Ok(());
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        crate::run::write_atomic(&path, &serde_json::to_vec(state)?)?;
        Ok(())
    }

    /// One arm: the seed set, then `spec.rounds` rounds of query (and augmentation), each
    /// round a tagger trained afresh and scored.
    fn run_arm(
        &self,
        seed: u64,
        augment: Option<SeqMixVariant>,
        say: &mut dyn FnMut(&str),
    ) -> anyhow::Result<Vec<AlRow>> {
        let spec = self.spec;
        let name = augment.map_or("none", SeqMixVariant::name).to_string();
        let mut rng = StdRng::seed_from_u64(derive_seed(seed, 21, 0, 0));
        let mut order: Vec<usize> = (0..self.train.len()).collect();
        order.shuffle(&mut rng);
        let mut labelled: Vec<usize> = order[..spec.seed_size].to_vec();
        let pool_end = spec
            .pool
            .map_or(order.len(), |p| (spec.seed_size + p).min(order.len()));
        let mut pool: Vec<usize> = order[spec.seed_size..pool_end].to_vec();
        let mut grown = Grown {
            newly: labelled.clone(),
            ..Grown::default()
        };
        let mut rows = Vec::with_capacity(spec.rounds + 1);
        if let Some(saved) = self.load_state(&name, seed, say) {
            say(&format!(
                "{name} seed {seed}: resuming after round {} (saved state)",
                saved.rows.len().saturating_sub(1)
            ));
            (labelled, pool, grown, rows) = (saved.labelled, saved.pool, saved.grown, saved.rows);
        }
        for round in rows.len()..=spec.rounds {
            let t0 = std::time::Instant::now();
            let items = |augmented: &[NerItem]| -> Vec<NerItem> {
                labelled
                    .iter()
                    .map(|&i| NerItem::hard(&self.train[i]))
                    .chain(augmented.iter().cloned())
                    .collect()
            };
            let model_seed = derive_seed(seed, 22, round as u64, 0);
            let (mut eval, mut dev_f1, mut test_f1) =
                self.train_and_score(&items(&grown.augmented), model_seed)?;
            if let Some(variant) = augment
                && round == 0
                && spec.augment_seed_set
            {
                // The paper's first point: the seed set's SeqMix sentences from the tagger
                // trained on it, then a tagger trained on both (same initial weights).
                let draws = derive_seed(seed, AUGMENT, u64::MAX, 0);
                self.augment_newly(variant, &eval, &labelled, draws, &mut grown);
                (eval, dev_f1, test_f1) =
                    self.train_and_score(&items(&grown.augmented), model_seed)?;
            }
            let mut row = AlRow {
                augment: name.clone(),
                seed,
                round,
                labelled: labelled.len(),
                augmented: grown.augmented.len(),
                generated: grown.generated,
                dev_f1,
                test_f1,
                seconds: 0.0,
            };
            if round < spec.rounds {
                // Queries and augmentation draw from streams of their own, keyed by seed and
                // round: every arm of a seed scores the same candidates (those still
                // unlabelled), whatever the other arms drew.
                let picked = self.query(&eval, &mut pool, seed, round)?;
                labelled.extend(&picked);
                grown.newly.extend(&picked);
                // Augment the sentences labelled since the last augmentation.
                if let Some(variant) = augment {
                    let draws = derive_seed(seed, AUGMENT, round as u64, 0);
                    self.augment_newly(variant, &eval, &labelled, draws, &mut grown);
                }
            }
            row.seconds = t0.elapsed().as_secs_f64();
            say(&format!(
                "{name} seed {seed} round {round}: {} labelled + {} SeqMix, test F1 {:.4}{} ({:.0} s)",
                row.labelled,
                row.augmented,
                row.test_f1,
                row.dev_f1
                    .map(|f| format!(", dev F1 {f:.4}"))
                    .unwrap_or_default(),
                row.seconds
            ));
            rows.push(row);
            self.save_state(
                &name,
                seed,
                &ArmState {
                    fingerprint: self.arm_fingerprint(&name),
                    labelled: labelled.clone(),
                    pool: pool.clone(),
                    grown: grown.clone(),
                    rows: rows.clone(),
                },
            )?;
        }
        Ok(rows)
    }

    /// Trains a fresh tagger (seeded with `model_seed`) on `items` and scores it: the model
    /// in evaluation mode, dev F1 (when there is a dev split) and test F1.
    fn train_and_score(
        &self,
        items: &[NerItem],
        model_seed: u64,
    ) -> anyhow::Result<(SequenceTagger, Option<f64>, f64)> {
        let (recipe, vocab, device) = (self.recipe, self.vocab, self.device);
        let ad = device.clone().autodiff();
        let num_tags = vocab.tags.len();
        let mut model = mixup_train::seeded_try_init(&ad, model_seed, || {
            build_tagger(recipe, vocab.vocab_size(), num_tags, self.bert_dir, &ad)
        })?;
        let epochs = recipe.train.epochs;
        let mut trainer = TaggerTrainer::new(
            &self.config,
            &model,
            items.len(),
            epochs,
            num_tags,
            model_seed,
        );
        for epoch in 1..=epochs {
            model = trainer.epoch(model, items, &self.config, epoch, &ad)?.0;
        }
        let eval = model.valid();
        let (max_len, eb) = (recipe.data.max_len, recipe.train.eval_batch_size);
        let dev_f1 = self
            .dev
            .map(|d| evaluate_ner(&eval, d, vocab, max_len, eb, device))
            .transpose()?
            .map(|s| s.micro.f1);
        let test_f1 = evaluate_ner(&eval, self.test, vocab, max_len, eb, device)?
            .micro
            .f1;
        Ok((eval, dev_f1, test_f1))
    }

    /// Picks `spec.query` sentences (removed from `pool`) among round `round`'s candidates
    /// ([`candidates`]), by the query policy under `eval`.
    fn query(
        &self,
        eval: &SequenceTagger,
        pool: &mut Vec<usize>,
        seed: u64,
        round: usize,
    ) -> anyhow::Result<Vec<usize>> {
        let spec = self.spec;
        let candidates = candidates(pool, self.train.len(), spec.candidates, seed, round);
        let k = candidates.len();
        let picked: Vec<usize> = if spec.policy == QueryPolicy::Random {
            candidates[..spec.query.min(k)].to_vec()
        } else {
            let ids: Vec<&EncodedSentence> = candidates.iter().map(|&i| &self.train[i]).collect();
            let probs = predict_proba(
                eval,
                &ids,
                self.recipe.data.max_len,
                self.recipe.train.eval_batch_size,
                self.vocab.tags.len(),
                self.vocab.outside,
                self.device,
            )?;
            // Scored at each word's prediction (its first sub-token for WordPiece taggers).
            let mut scored: Vec<(f64, usize)> = probs
                .iter()
                .zip(&candidates)
                .map(|(p, &i)| {
                    let words: Vec<Vec<f32>> = self.train[i]
                        .first
                        .iter()
                        .filter_map(|f| f.and_then(|k| p.get(k)).cloned())
                        .collect();
                    (spec.policy.score(&words), i)
                })
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            scored.iter().take(spec.query).map(|s| s.1).collect()
        };
        pool.retain(|i| !picked.contains(i));
        Ok(picked)
    }

    /// SeqMix sentences for `grown.newly` (then cleared), paired within `labelled`, over
    /// `eval`'s embeddings, drawn from the stream seeded by `draws`, added to `grown`.
    fn augment_newly(
        &self,
        variant: SeqMixVariant,
        eval: &SequenceTagger,
        labelled: &[usize],
        draws: u64,
        grown: &mut Grown,
    ) {
        let mut draws = StdRng::seed_from_u64(draws);
        let (made, tried) = self
            .mixer()
            .augment(variant, eval, labelled, &grown.newly, &mut draws);
        grown.newly.clear();
        grown.augmented.extend(made);
        grown.generated += tried;
    }

    /// The SeqMix generator of this study.
    fn mixer(&self) -> SeqMixer<'_> {
        SeqMixer {
            sm: self.sm,
            train: self.train,
            vocab: self.vocab,
            beta: self.beta,
        }
    }
}

/// The random stream of a round's candidate order.
const CANDIDATES: u64 = 23;
/// The random stream of a round's SeqMix draws.
const AUGMENT: u64 = 24;

/// Round `round`'s candidates: the first `k` sentences, in an order of all `n` training
/// sentences drawn from `(seed, round)` alone, that are still in `pool`. Arms of one seed
/// whose pools agree get the same candidates.
fn candidates(pool: &[usize], n: usize, k: usize, seed: u64, round: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(derive_seed(
        seed,
        CANDIDATES,
        round as u64,
        0,
    )));
    let mut open = vec![false; n];
    for &i in pool {
        open[i] = true;
    }
    order.into_iter().filter(|&i| open[i]).take(k).collect()
}

/// A sentence's ids as the vocabulary's tokens (`<unk>` for ids it does not have).
fn vocab_words(ids: &[u32], tokenizer: &mixup_data::WordTokenizer) -> Vec<String> {
    ids.iter()
        .map(|&id| tokenizer.token(id).unwrap_or("<unk>").to_string())
        .collect()
}

/// Mean and sample standard deviation (see [`crate::sweep::mean`]).
fn mean_std(v: &[f64]) -> (f64, f64) {
    (crate::sweep::mean(v), crate::sweep::sample_std(v))
}

/// The rows as CSV, one line per arm and round.
pub fn rows_csv(rows: &[AlRow]) -> String {
    let mut s =
        String::from("augment,seed,round,labelled,augmented,generated,dev_f1,test_f1,seconds\n");
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{:.4},{:.1}\n",
            r.augment,
            r.seed,
            r.round,
            r.labelled,
            r.augmented,
            r.generated,
            r.dev_f1.map(|f| format!("{f:.4}")).unwrap_or_default(),
            r.test_f1,
            r.seconds
        ));
    }
    s
}

/// Reads the rows of an `al.csv` ([`rows_csv`]'s format) back; `path` names the file in errors,
/// which give its line.
///
/// # Errors
///
/// A header other than [`rows_csv`]'s, or a line with a wrong field count or an unreadable
/// number.
pub fn parse_rows_csv(text: &str, path: &std::path::Path) -> anyhow::Result<Vec<AlRow>> {
    let header = rows_csv(&[]);
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h)) if h == header.trim_end() => {}
        _ => anyhow::bail!(
            "{}, line 1: not an al.csv of `mixup ner-al` (expected the header `{}`)",
            path.display(),
            header.trim_end()
        ),
    }
    let mut rows = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}, line {}", path.display(), i + 1);
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 9 {
            anyhow::bail!("{}: {} fields, expected 9", at(), f.len());
        }
        fn num<T: std::str::FromStr>(
            v: &str,
            key: &str,
            at: &dyn Fn() -> String,
        ) -> anyhow::Result<T> {
            v.parse()
                .map_err(|_| anyhow::anyhow!("{}: {key} = {v:?} is not a number", at()))
        }
        rows.push(AlRow {
            augment: f[0].to_string(),
            seed: num(f[1], "seed", &at)?,
            round: num(f[2], "round", &at)?,
            labelled: num(f[3], "labelled", &at)?,
            augmented: num(f[4], "augmented", &at)?,
            generated: num(f[5], "generated", &at)?,
            dev_f1: match f[6] {
                "" => None,
                v => Some(num(v, "dev_f1", &at)?),
            },
            test_f1: num(f[7], "test_f1", &at)?,
            seconds: num(f[8], "seconds", &at)?,
        });
    }
    Ok(rows)
}

/// The rows of earlier pieces of a study (`al.csv` files, `--merge`) joined to this run's.
///
/// What an `al.csv` shows of its protocol is checked: each (augmentation, seed) of a piece has
/// rounds `0..=spec.rounds`, once each, round `r` trained on `seed_size + r * query` labelled
/// sentences, and with `augment_seed_set` off no augmenting arm made SeqMix sentences at round 0
/// (with it on, a round 0 without any is possible, so that direction cannot be told). The
/// recipe, query policy, candidates and pool are not in an `al.csv`: matching them is the
/// caller's part. An (augmentation, seed) may come from one piece only (the same file given
/// twice is two pieces); this run's arms replace a piece's rows of the same arm and seed.
/// Rows are ordered by the spec's augmentations, then seed and round.
///
/// # Errors
///
/// A piece of another protocol, or an arm and seed found in two pieces.
pub fn merge_pieces(
    pieces: &[(std::path::PathBuf, Vec<AlRow>)],
    spec: &AlSpec,
    ours: Vec<AlRow>,
) -> anyhow::Result<Vec<AlRow>> {
    let trained = |r: &AlRow| {
        ours.iter()
            .any(|o| o.augment == r.augment && o.seed == r.seed)
    };
    use std::collections::BTreeMap;
    let mut merged: Vec<AlRow> = Vec::new();
    // (augmentation, seed) -> the piece (its index in `pieces`) it came from.
    let mut from: BTreeMap<(String, u64), usize> = BTreeMap::new();
    for (i, (path, rows)) in pieces.iter().enumerate() {
        let mut rounds: BTreeMap<(String, u64), Vec<usize>> = BTreeMap::new();
        for r in rows {
            let at = || {
                format!(
                    "{}: {} seed {} round {}",
                    path.display(),
                    r.augment,
                    r.seed,
                    r.round
                )
            };
            let expected = (r.round <= spec.rounds)
                .then(|| r.round.checked_mul(spec.query)?.checked_add(spec.seed_size))
                .flatten();
            if expected != Some(r.labelled) {
                anyhow::bail!(
                    "{} trained on {} labelled sentences; this study's protocol (--seed-size {}, \
                     --query {}, --rounds {}) has {}: a piece of another study",
                    at(),
                    r.labelled,
                    spec.seed_size,
                    spec.query,
                    spec.rounds,
                    expected.map_or_else(|| "no such round".to_string(), |e| e.to_string())
                );
            }
            if r.round == 0 && r.augment != "none" && !spec.augment_seed_set && r.generated > 0 {
                anyhow::bail!(
                    "{} made {} SeqMix sentences from the seed set: a piece run with \
                     --augment-seed-set true, and this study has false",
                    at(),
                    r.generated
                );
            }
            let key = (r.augment.clone(), r.seed);
            match from.get(&key) {
                Some(&j) if j != i => anyhow::bail!(
                    "{} seed {} is in both {} and {}; merge each arm and seed once",
                    r.augment,
                    r.seed,
                    pieces[j].0.display(),
                    path.display()
                ),
                _ => {
                    from.insert(key.clone(), i);
                }
            }
            rounds.entry(key).or_default().push(r.round);
            if !trained(r) {
                merged.push(r.clone());
            }
        }
        for ((arm, seed), mut got) in rounds {
            got.sort_unstable();
            if got != (0..=spec.rounds).collect::<Vec<_>>() {
                anyhow::bail!(
                    "{}: {arm} seed {seed} has rounds {got:?}; this study's has 0 to {} once \
                     each",
                    path.display(),
                    spec.rounds
                );
            }
        }
    }
    merged.extend(ours);
    // This piece's arms in its `--augment` order, then the others as the paper lists them.
    const PAPER: [&str; 4] = ["none", "sub", "whole", "label-constrained"];
    let order = |a: &str| {
        spec.augments
            .iter()
            .position(|v| v.map_or("none", SeqMixVariant::name) == a)
            .or_else(|| PAPER.iter().position(|p| *p == a).map(|i| 100 + i))
            .unwrap_or(usize::MAX)
    };
    merged.sort_by(|a, b| {
        (order(&a.augment), &a.augment, a.seed, a.round).cmp(&(
            order(&b.augment),
            &b.augment,
            b.seed,
            b.round,
        ))
    });
    Ok(merged)
}

/// Per augmentation and round: `(labelled, mean/std test F1, mean/std dev F1, seeds)`.
type Summary = Vec<(String, usize, usize, (f64, f64), Option<(f64, f64)>, usize)>;

fn summarise(rows: &[AlRow]) -> Summary {
    let mut arms: Vec<String> = Vec::new();
    for r in rows {
        if !arms.contains(&r.augment) {
            arms.push(r.augment.clone());
        }
    }
    let mut out = Vec::new();
    for arm in arms {
        let rounds = rows
            .iter()
            .filter(|r| r.augment == arm)
            .map(|r| r.round)
            .max()
            .unwrap_or(0);
        for round in 0..=rounds {
            let rs: Vec<&AlRow> = rows
                .iter()
                .filter(|r| r.augment == arm && r.round == round)
                .collect();
            if rs.is_empty() {
                continue;
            }
            let test: Vec<f64> = rs.iter().map(|r| r.test_f1).collect();
            let dev: Vec<f64> = rs.iter().filter_map(|r| r.dev_f1).collect();
            out.push((
                arm.clone(),
                round,
                rs[0].labelled,
                mean_std(&test),
                (!dev.is_empty()).then(|| mean_std(&dev)),
                rs.len(),
            ));
        }
    }
    out
}

/// A markdown table: one row per augmentation and round, F1 mean ± std over seeds; then each
/// SeqMix arm paired with `none` by seed ([`paired_markdown`]).
pub fn rows_markdown(rows: &[AlRow], header: &str) -> String {
    let mut s = format!(
        "{header}\n\n| augment | round | labelled | test F1 | dev F1 | seeds |\n|---|---|---|---|---|---|\n"
    );
    for (arm, round, labelled, (tm, ts), dev, n) in summarise(rows) {
        s.push_str(&format!(
            "| {arm} | {round} | {labelled} | {tm:.4} ± {ts:.4} | {} | {n} |\n",
            dev.map(|(m, sd)| format!("{m:.4} ± {sd:.4}"))
                .unwrap_or_else(|| "–".into())
        ));
    }
    s.push_str(&paired_markdown(rows));
    s
}

/// Each arm other than `none`, round by round, minus `none` of the same seed and round (test
/// F1), over the seeds both have: the mean difference, its 95% paired-t interval and a verdict
/// ([`crate::paired::paired_t`]). Arms of one seed start from the same seed set and draw the
/// same candidates, so the per-seed difference removes the seed set's luck. Empty when there
/// is no `none` arm or nothing to pair.
pub fn paired_markdown(rows: &[AlRow]) -> String {
    let none_f1 = |seed: u64, round: usize| {
        rows.iter()
            .find(|r| r.augment == "none" && r.seed == seed && r.round == round)
            .map(|r| r.test_f1)
    };
    let mut lines = String::new();
    for (arm, round, labelled, ..) in summarise(rows) {
        if arm == "none" {
            continue;
        }
        // Rows are one per arm, seed and round (merging refuses an arm and seed twice).
        let diffs: Vec<f64> = rows
            .iter()
            .filter(|r| r.augment == arm && r.round == round)
            .filter_map(|r| Some(r.test_f1 - none_f1(r.seed, round)?))
            .collect();
        if diffs.is_empty() {
            continue;
        }
        let (m, _, ci95) = crate::paired::paired_t(&diffs);
        let interval = ci95.map_or("–".to_string(), |(lo, hi)| {
            format!("[{lo:+.4}, {hi:+.4}]")
        });
        lines.push_str(&format!(
            "| {arm} | {round} | {labelled} | {} | {m:+.4} | {interval} | {} |\n",
            diffs.len(),
            crate::paired::verdict(diffs.len(), ci95)
        ));
    }
    if lines.is_empty() {
        return lines;
    }
    format!(
        "\n## Paired by seed, against none\n\n\
         Test F1 of each arm minus `none` of the same seed and round, over the seeds both have \
         (the same seed: the same seed set and candidate draws). Interval: 95%, paired t with \
         n - 1 degrees of freedom; `better` / `worse` when it excludes 0.\n\n\
         | augment | round | labelled | seeds | mean difference | 95% interval | verdict |\n\
         |---|---|---|---|---|---|---|\n{lines}"
    )
}

/// One series per augmentation: its mean dev (`dev`) or test F1 by labelled sentences, with
/// whiskers of ± one standard deviation over seeds (where there are two or more).
fn al_series(rows: &[AlRow], dev: bool) -> Vec<crate::plot::Series> {
    let summary = summarise(rows);
    let mut arms: Vec<String> = Vec::new();
    for s in &summary {
        if !arms.contains(&s.0) {
            arms.push(s.0.clone());
        }
    }
    arms.iter()
        .map(|arm| {
            let stats: Vec<(f64, f64, f64)> = summary
                .iter()
                .filter(|s| &s.0 == arm)
                .filter_map(|s| {
                    let (m, sd) = if dev { s.4? } else { s.3 };
                    Some((s.2 as f64, m, sd))
                })
                .collect();
            crate::plot::Series {
                name: format!("{arm} (mean ± std over seeds)"),
                points: stats.iter().map(|&(x, m, _)| (x, m)).collect(),
                whiskers: stats
                    .iter()
                    .filter(|s| s.2 > 0.0)
                    .map(|&(x, m, sd)| (x, m - sd, m + sd))
                    .collect(),
            }
        })
        .collect()
}

/// Dev (left) and test (right) F1 against labelled sentences, one curve per augmentation.
///
/// # Errors
///
/// The picture cannot be written.
pub fn plot_rows(rows: &[AlRow], path: &std::path::Path, title: &str) -> anyhow::Result<()> {
    use crate::plot::plot_two_panels;
    let curves = |dev: bool| al_series(rows, dev);
    let (dev, test) = (curves(true), curves(false));
    plot_two_panels(
        path,
        title,
        "labelled sentences",
        ("Dev entity F1", "F1", &dev),
        ("Test entity F1", "F1", &test),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_rank_uncertain_sentences_first() {
        let sure = vec![vec![0.98f32, 0.01, 0.01], vec![0.97, 0.02, 0.01]];
        let unsure = vec![vec![0.4f32, 0.3, 0.3], vec![0.5, 0.25, 0.25]];
        for p in [QueryPolicy::LeastConfidence, QueryPolicy::Entropy] {
            assert!(p.score(&unsure) > p.score(&sure), "{p:?}");
        }
        assert_eq!(QueryPolicy::parse("nte"), Ok(QueryPolicy::Entropy));
        assert!(QueryPolicy::parse("bald").is_err());
    }

    #[test]
    fn tables_average_over_seeds() {
        let row = |augment: &str, seed, round, f1| AlRow {
            augment: augment.into(),
            seed,
            round,
            labelled: 10 + 5 * round,
            augmented: 0,
            generated: 0,
            dev_f1: None,
            test_f1: f1,
            seconds: 1.0,
        };
        let rows = vec![
            row("none", 0, 0, 0.5),
            row("none", 1, 0, 0.7),
            row("sub", 0, 0, 0.6),
        ];
        let md = rows_markdown(&rows, "# t");
        assert!(
            md.contains("| none | 0 | 10 | 0.6000 ± 0.1414 | – | 2 |"),
            "{md}"
        );
        assert!(
            md.contains("| sub | 0 | 10 | 0.6000 ± 0.0000 | – | 1 |"),
            "{md}"
        );
        assert_eq!(rows_csv(&rows).lines().count(), 4);
        // Paired with none by seed: seed 0 only (sub has no seed 1), so no interval.
        assert!(
            md.contains("| sub | 0 | 10 | 1 | +0.1000 | – | one seed: no interval |"),
            "{md}"
        );
        let mut more = rows.clone();
        more.push(row("sub", 1, 0, 0.9));
        more.push(row("none", 2, 0, 0.6));
        more.push(row("sub", 2, 0, 0.75));
        // Differences +0.1, +0.2, +0.15: mean +0.15, sd 0.05, half-width 4.303 x 0.05 / sqrt(3).
        let md = rows_markdown(&more, "# t");
        assert!(
            md.contains("| sub | 0 | 10 | 3 | +0.1500 | [+0.0258, +0.2742] | better |"),
            "{md}"
        );
        // No `none` arm: no paired section.
        assert!(!rows_markdown(&rows[2..], "# t").contains("Paired"));
        // The chart's test curves: means, with ± std whiskers where two seeds exist.
        let series = al_series(&rows, false);
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].points, vec![(10.0, 0.6)]);
        let (x, lo, hi) = series[0].whiskers[0];
        assert!(
            x == 10.0 && (lo - (0.6 - 0.1414)).abs() < 1e-3 && (hi - (0.6 + 0.1414)).abs() < 1e-3
        );
        assert!(series[1].whiskers.is_empty(), "one seed: no whisker");
        assert!(
            al_series(&rows, true).iter().all(|s| s.points.is_empty()),
            "no dev F1"
        );
    }
}

#[cfg(test)]
mod piece_tests {
    use super::*;

    fn row(augment: &str, seed: u64, round: usize, f1: f64) -> AlRow {
        AlRow {
            augment: augment.into(),
            seed,
            round,
            labelled: 200 + 100 * round,
            augmented: 3 * round,
            generated: 5 * round,
            dev_f1: (seed == 0).then_some(f1 + 0.01),
            test_f1: f1,
            seconds: 12.5,
        }
    }

    fn spec() -> AlSpec {
        AlSpec {
            seed_size: 200,
            rounds: 1,
            query: 100,
            candidates: 10,
            pool: None,
            policy: QueryPolicy::Entropy,
            seeds: vec![1],
            augments: vec![None, Some(SeqMixVariant::Sub)],
            augment_seed_set: true,
        }
    }

    /// States saved before `Grown` existed (its fields at the top level) still load, and a
    /// saved state keeps that layout.
    #[test]
    fn saved_states_keep_their_layout() {
        let old = r#"{"fingerprint":"f","labelled":[1,2],"pool":[3],"newly":[2],"augmented":[],"generated":7,"rows":[]}"#;
        let s: ArmState = serde_json::from_str(old).expect("old layout");
        assert_eq!((s.grown.newly.clone(), s.grown.generated), (vec![2], 7));
        let back: serde_json::Value = serde_json::to_value(&s).expect("json");
        assert_eq!(back["generated"], 7);
        assert_eq!(back["newly"], serde_json::json!([2]));
    }

    #[test]
    fn csv_reads_back_and_errors_name_the_line() {
        let rows = vec![row("none", 0, 0, 0.5), row("sub", 1, 1, 0.625)];
        let p = std::path::Path::new("piece/al.csv");
        assert_eq!(parse_rows_csv(&rows_csv(&rows), p).expect("parse"), rows);
        let bad = rows_csv(&rows).replace("0.6250", "x");
        let e = parse_rows_csv(&bad, p).expect_err("bad number").to_string();
        assert!(
            e.contains("piece/al.csv, line 3") && e.contains("test_f1"),
            "{e}"
        );
        let e = parse_rows_csv("a,b\n", p).expect_err("header").to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn pieces_merge_by_arm_and_seed_and_refuse_other_protocols() {
        let piece = (
            std::path::PathBuf::from("s0/al.csv"),
            vec![
                row("sub", 0, 0, 0.4),
                row("sub", 0, 1, 0.45),
                row("none", 0, 0, 0.3),
                row("none", 0, 1, 0.5),
            ],
        );
        let ours = vec![row("none", 1, 0, 0.35), row("none", 1, 1, 0.55)];
        let merged =
            merge_pieces(std::slice::from_ref(&piece), &spec(), ours.clone()).expect("merge");
        let keys: Vec<(String, u64, usize)> = merged
            .iter()
            .map(|r| (r.augment.clone(), r.seed, r.round))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("none".into(), 0, 0),
                ("none".into(), 0, 1),
                ("none".into(), 1, 0),
                ("none".into(), 1, 1),
                ("sub".into(), 0, 0),
                ("sub".into(), 0, 1),
            ]
        );
        // Arms this run did not name follow in the paper's order, not the alphabet's.
        let arms = ["label-constrained", "whole", "sub"];
        let others = (
            std::path::PathBuf::from("s0/al.csv"),
            arms.iter().map(|a| row(a, 0, 0, 0.4)).collect(),
        );
        let none_only = AlSpec {
            augments: vec![None],
            rounds: 0,
            ..spec()
        };
        let merged =
            merge_pieces(&[others], &none_only, vec![row("none", 1, 0, 0.3)]).expect("merge");
        let order: Vec<&str> = merged.iter().map(|r| r.augment.as_str()).collect();
        assert_eq!(order, ["none", "sub", "whole", "label-constrained"]);
        // This run's arm replaces a piece's rows of the same arm and seed.
        let redo = vec![row("none", 0, 0, 0.9)];
        let merged = merge_pieces(std::slice::from_ref(&piece), &spec(), redo).expect("merge");
        assert_eq!(merged.iter().filter(|r| r.augment == "none").count(), 1);
        assert_eq!(merged[0].test_f1, 0.9);
        let refused = |pieces: &[(std::path::PathBuf, Vec<AlRow>)], spec: &AlSpec| {
            merge_pieces(pieces, spec, vec![])
                .expect_err("refused")
                .to_string()
        };
        // Another protocol: a 50-sentence query, a round past --rounds (even a huge one).
        let mut other = piece.clone();
        other.1[3].labelled = 250;
        let e = refused(&[other], &spec());
        assert!(
            e.contains("s0/al.csv") && e.contains("another study"),
            "{e}"
        );
        let mut far = piece.clone();
        far.1[3].round = usize::MAX;
        let e = refused(&[far], &spec());
        assert!(e.contains("no such round"), "{e}");
        // Rounds missing or repeated within a piece (a short study, two files appended).
        let mut short = piece.clone();
        short.1.remove(1);
        let e = refused(&[short], &spec());
        assert!(e.contains("sub seed 0 has rounds [0]"), "{e}");
        let mut doubled = piece.clone();
        doubled.1.push(row("none", 0, 1, 0.5));
        let e = refused(&[doubled], &spec());
        assert!(e.contains("[0, 1, 1]"), "{e}");
        // The same arm and seed in two pieces, the same file twice included.
        let twice = (std::path::PathBuf::from("s0-again/al.csv"), piece.1.clone());
        let e = refused(&[piece.clone(), twice], &spec());
        assert!(e.contains("in both s0/al.csv and s0-again/al.csv"), "{e}");
        let e = refused(&[piece.clone(), piece.clone()], &spec());
        assert!(e.contains("in both"), "{e}");
        // A piece whose augmenting arm made SeqMix sentences from the seed set, merged into a
        // study without that: refused; with it, accepted.
        let mut seeded = piece.clone();
        seeded.1[0].generated = 40;
        let without = AlSpec {
            augment_seed_set: false,
            ..spec()
        };
        let e = refused(std::slice::from_ref(&seeded), &without);
        assert!(e.contains("--augment-seed-set true"), "{e}");
        assert!(merge_pieces(&[seeded], &spec(), vec![]).is_ok());
    }
}

#[cfg(test)]
mod stream_tests {
    use super::*;

    #[test]
    fn candidates_depend_on_seed_round_and_pool_only() {
        let pool: Vec<usize> = (0..50).collect();
        let a = candidates(&pool, 50, 10, 3, 1);
        assert_eq!(
            a,
            candidates(&pool, 50, 10, 3, 1),
            "same seed and round, same candidates"
        );
        assert_ne!(
            a,
            candidates(&pool, 50, 10, 3, 2),
            "another round draws others"
        );
        assert_eq!(a.len(), 10);
        // A sentence labelled elsewhere drops out; the others keep their order.
        let shrunk: Vec<usize> = pool.iter().copied().filter(|&i| i != a[0]).collect();
        assert_eq!(candidates(&shrunk, 50, 9, 3, 1), a[1..].to_vec());
    }

    /// Only trained rows (ids of labelled sentences) may be produced, never the specials;
    /// `exclude_untrained = false` allows every other id.
    #[test]
    fn projection_blocks_untrained_rows_and_specials() {
        let sm = SeqMixSection::default();
        assert!(sm.exclude_untrained, "the default");
        let p = round_projection(&sm, 10, [1, 3, 4, 3]);
        let allowed: Vec<u32> = (0..10).filter(|&id| !p.is_blocked(id)).collect();
        assert_eq!(allowed, vec![3, 4], "seen ids but <unk> (1)");
        let all = SeqMixSection {
            exclude_untrained: false,
            ..SeqMixSection::default()
        };
        let p = round_projection(&all, 10, [3]);
        let allowed: Vec<u32> = (0..10).filter(|&id| !p.is_blocked(id)).collect();
        assert_eq!(allowed, (2..10).collect::<Vec<_>>());
    }

    #[test]
    fn the_filter_sees_vocabulary_tokens() {
        let tokenizer = mixup_data::WordTokenizerConfig {
            lowercase: true,
            min_freq: 1,
            ..Default::default()
        }
        .build(["Paris is big"]);
        let ids = tokenizer.encode("Paris is Oslo", 8);
        // Lowercased as the generated sentences are scored; a word it lacks is <unk>.
        assert_eq!(vocab_words(&ids, &tokenizer), ["paris", "is", "<unk>"]);
    }

    /// SeqMix on a WordPiece tagger keeps each word one sub-token: every generated sentence
    /// is `[CLS]`, one whole-word piece per word (never a `##` piece or a special token),
    /// `[SEP]`, with a label distribution at every word and none at `[CLS]`/`[SEP]`; its
    /// words come from the first sub-tokens of the sources' words.
    #[test]
    fn bert_seqmix_keeps_words_and_labels_aligned() {
        let dir = std::env::temp_dir().join(format!("mixup-bert-seqmix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let vocab_txt = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "john", "smith", "lives", "in", "paris",
            "ro", "##me", "mary", "jo", "##nes", "works", "at", "acme", ".", "oslo",
        ];
        std::fs::write(dir.join("vocab.txt"), vocab_txt.join("\n") + "\n").expect("vocab");
        std::fs::write(
            dir.join("config.json"),
            serde_json::json!({
                "vocab_size": vocab_txt.len(), "hidden_size": 8, "num_hidden_layers": 1,
                "num_attention_heads": 2, "intermediate_size": 16,
                "max_position_embeddings": 32, "type_vocab_size": 2,
                "layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.0,
                "attention_probs_dropout_prob": 0.0, "hidden_act": "gelu", "pad_token_id": 0
            })
            .to_string(),
        )
        .expect("config");
        let wp = mixup_data::WordPieceTokenizer::from_vocab_txt(dir.join("vocab.txt"), true)
            .expect("wordpiece");
        let s = |words: &[&str], tags: &[&str]| mixup_data::TaggedSentence {
            tokens: words.iter().map(|w| w.to_string()).collect(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            line: 1,
        };
        let train = vec![
            s(
                &["John", "Smith", "lives", "in", "Rome", "."],
                &["B-PER", "I-PER", "O", "O", "B-LOC", "O"],
            ),
            s(
                &["Mary", "Jones", "works", "at", "Acme", "in", "Oslo"],
                &["B-PER", "I-PER", "O", "O", "B-ORG", "O", "B-LOC"],
            ),
            s(
                &["Mary", "Smith", "lives", "in", "Paris", "."],
                &["B-PER", "I-PER", "O", "O", "B-LOC", "O"],
            ),
        ];
        let vocab = NerVocab::build(
            &train,
            &mixup_data::WordTokenizerConfig::default(),
            32,
            Some(wp.clone()),
        )
        .expect("vocab");
        let encoded: Vec<EncodedSentence> = train
            .iter()
            .map(|t| {
                vocab
                    .encode(t, std::path::Path::new("train.txt"))
                    .expect("encode")
            })
            .collect();
        let device = Device::flex();
        device.seed(2);
        let encoder = mixup_models::BertConfig::from_json_file(dir.join("config.json"))
            .expect("config")
            .init(&device)
            .without_pooler();
        let tagger =
            mixup_models::SequenceTagger::on_bert(encoder, vocab.tags.len(), 0.0, false, &device);
        let sm = SeqMixSection {
            variant: SeqMixVariant::Sub,
            window: 2,
            min_labelled: 1,
            rate: 3.0,
            ..SeqMixSection::default()
        };
        let mixer = SeqMixer {
            sm: &sm,
            train: &encoded,
            vocab: &vocab,
            beta: Beta::new(sm.alpha, sm.alpha).expect("beta"),
        };
        // Rome is two sub-tokens (ro ##me); its word is its first, "ro".
        let view = mixer.word_view(0);
        assert_eq!(view.ids.len(), 6);
        assert_eq!(wp.token(view.ids[4]).as_deref(), Some("ro"));
        let all: Vec<usize> = (0..3).collect();
        let mut rng = rand::SeedableRng::seed_from_u64(5);
        let (made, _) = mixer.augment(SeqMixVariant::Sub, &tagger, &all, &all, &mut rng);
        assert!(!made.is_empty(), "some sentences made");
        for item in &made {
            let n = item.ids.len();
            assert_eq!(item.ids[0], wp.cls_id());
            assert_eq!(item.ids[n - 1], wp.sep_id());
            assert_eq!(item.labels.len(), n);
            assert!(item.labels[0].is_empty() && item.labels[n - 1].is_empty());
            for (id, labels) in item.ids[1..n - 1].iter().zip(&item.labels[1..n - 1]) {
                let tok = wp.token(*id).expect("a vocabulary token");
                assert!(!tok.starts_with("##") && !tok.starts_with('['), "{tok}");
                let total: f32 = labels.iter().map(|l| l.1).sum();
                assert!(
                    (total - 1.0).abs() < 1e-5,
                    "each word has one label distribution"
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
