//! Micro-benchmarks (divan) of the pieces a mixup step is built from, on `flex`:
//! drawing lambdas and partners, mixing hidden states and targets, the soft-target loss,
//! SSMix saliency and span search, SeqMix window matching and Kneser-Ney sentence scoring.
//!
//! `cargo bench -p mixup-benches --bench ops` (divan options after `--`, e.g.
//! `-- --sample-count 50 mix`). Inputs are TREC-sized: 64 rows, 24 tokens, width 128.
//! Tensor benches read one value back at the end of each iteration so that the lazy parts of
//! the backend cannot skip the work being timed.

use burn::tensor::{Bool, Device, Distribution, Int, Tensor, TensorData};
use mixup_core::{
    Layout, MixParams, MixupConfig, SpanMode, choose_span, labelled_windows, matching_windows,
    mix_rows, mix_targets, saliency_span_mix, soft_cross_entropy, token_saliency,
};
use mixup_data::KneserNeyLm;
use rand::{RngExt, SeedableRng, rngs::StdRng};

const ROWS: usize = 64;
const LEN: usize = 24;
const WIDTH: usize = 128;
const CLASSES: usize = 6;

fn main() {
    mixup_benches::setup();
    divan::main();
}

fn device() -> Device {
    Device::flex()
}

fn config() -> MixupConfig {
    MixupConfig {
        alpha: 1.0,
        num_classes: CLASSES,
        ..MixupConfig::default()
    }
}

fn params() -> MixParams {
    config().sample(ROWS, &mut StdRng::seed_from_u64(0))
}

fn hidden(device: &Device) -> Tensor<3> {
    Tensor::random([ROWS, LEN, WIDTH], Distribution::Normal(0.0, 1.0), device)
}

fn labels(device: &Device) -> Tensor<1, Int> {
    let ids: Vec<i64> = (0..ROWS as i64).map(|i| i % CLASSES as i64).collect();
    Tensor::from_data(TensorData::new(ids, [ROWS]), device)
}

/// Lambda (Beta on the host) and a shuffled pairing for one batch.
#[divan::bench]
fn sample_params(bencher: divan::Bencher) {
    let config = config();
    let mut rng = StdRng::seed_from_u64(1);
    bencher.bench_local(|| config.sample(ROWS, &mut rng));
}

/// `lambda * h + (1 - lambda) * h[partners]` on a `[64, 24, 128]` hidden state.
#[divan::bench]
fn mix_hidden(bencher: divan::Bencher) {
    let device = device();
    let (h, p) = (hidden(&device), params());
    bencher.bench_local(|| {
        mix_rows(h.clone(), &p)
            .slice([0..1, 0..1, 0..1])
            .into_scalar::<f32>()
    });
}

/// One-hot targets of 64 labels mixed with their partners'.
#[divan::bench]
fn mix_soft_targets(bencher: divan::Bencher) {
    let device = device();
    let (y, p) = (labels(&device), params());
    bencher.bench_local(|| {
        mix_targets(y.clone(), &p, CLASSES, 0.0)
            .slice([0..1, 0..1])
            .into_scalar::<f32>()
    });
}

/// Soft-target cross-entropy of `[64, 6]` logits.
#[divan::bench]
fn soft_ce(bencher: divan::Bencher) {
    let device = device();
    let logits = Tensor::<2>::random([ROWS, CLASSES], Distribution::Normal(0.0, 1.0), &device);
    let targets = mix_targets(labels(&device), &params(), CLASSES, 0.0);
    bencher.bench_local(|| {
        soft_cross_entropy(logits.clone(), targets.clone(), None).into_scalar::<f32>()
    });
}

/// Per-token saliency (normalised gradient norm) of a `[64, 24, 128]` gradient, read back to
/// the host (the training step no longer reads it back; compare `ssmix_spans_device`).
#[divan::bench]
fn ssmix_saliency(bencher: divan::Bencher) {
    let device = device();
    let grad = hidden(&device);
    let mask: Tensor<2, Bool> = Tensor::<2>::ones([ROWS, LEN], &device).equal_elem(1.0);
    bencher.bench_local(|| {
        token_saliency(grad.clone(), mask.clone())
            .into_data()
            .try_to_vec::<f32>()
    });
}

/// SSMix span search for the 64 pairs of a batch: window means of both saliencies, least
/// salient window of A, most salient of B ([CLS]/[SEP] layout, 10% spans).
#[divan::bench(args = [SpanMode::Saliency, SpanMode::RandomSpan, SpanMode::RandomTokens])]
fn ssmix_spans(bencher: divan::Bencher, mode: SpanMode) {
    let mut rng = StdRng::seed_from_u64(2);
    let sal: Vec<Vec<f32>> = (0..ROWS)
        .map(|_| (0..LEN).map(|_| rng.random::<f32>()).collect())
        .collect();
    let layout = Layout::BERT;
    bencher.bench_local(|| {
        (0..ROWS)
            .map(|r| {
                let o = (r + 1) % ROWS;
                choose_span(mode, &sal[r], LEN, &sal[o], LEN, layout, 0.1, &mut rng)
                    .positions
                    .len()
            })
            .sum::<usize>()
    });
}

/// The same saliency span search and copy for the whole batch on the device
/// (`saliency_span_mix`), ending with one value read back.
#[divan::bench]
fn ssmix_spans_device(bencher: divan::Bencher) {
    let device = device();
    let mut rng = StdRng::seed_from_u64(5);
    let sal = Tensor::<2>::random([ROWS, LEN], Distribution::Default, &device);
    let ids: Vec<i64> = (0..(ROWS * LEN) as i64).map(|i| 2 + i % 1000).collect();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [ROWS, LEN]), &device);
    let lens: Vec<usize> = (0..ROWS).map(|_| rng.random_range(8..=LEN)).collect();
    let partners: Vec<usize> = (0..ROWS).map(|r| (r + 1) % ROWS).collect();
    bencher.bench_local(|| {
        let (mixed, _) = saliency_span_mix(
            ids.clone(),
            sal.clone(),
            &lens,
            &partners,
            Layout::BERT,
            0.1,
        );
        mixed.slice([0..1, 0..1]).into_scalar::<i64>()
    });
}

/// SeqMix: labelled windows of one 30-token sentence, and the matching window pairs of two.
#[divan::bench]
fn seqmix_windows(bencher: divan::Bencher) {
    // Tags: 0 = O, 1..=8 entity tags, about a third of the tokens inside entities.
    let mut rng = StdRng::seed_from_u64(3);
    let tags = |rng: &mut StdRng| -> Vec<usize> {
        (0..30)
            .map(|_| {
                if rng.random_bool(0.35) {
                    rng.random_range(1..=8)
                } else {
                    0
                }
            })
            .collect()
    };
    let (a, b) = (tags(&mut rng), tags(&mut rng));
    bencher.bench_local(|| {
        labelled_windows(&a, 0, 5, 2).len() + matching_windows(&a, &b, 0, 5, 2).len()
    });
}

/// Kneser-Ney (order 3) perplexity of one 20-token sentence, the SeqMix LM filter's unit of
/// work; the model is trained on 2,000 synthetic sentences over a 500-word vocabulary.
#[divan::bench]
fn kn_perplexity(bencher: divan::Bencher) {
    let mut rng = StdRng::seed_from_u64(4);
    let sentence = |rng: &mut StdRng| -> Vec<String> {
        (0..20)
            .map(|_| format!("w{}", rng.random_range(0..500)))
            .collect()
    };
    let corpus: Vec<Vec<String>> = (0..2000).map(|_| sentence(&mut rng)).collect();
    let lm = KneserNeyLm::train(&corpus, 3);
    let probe = sentence(&mut rng);
    bencher.bench_local(|| lm.perplexity(&probe));
}
