//! Paired comparisons of a sweep: every method against the `none` recipe of the same dataset
//! and model, seed by seed.
//!
//! A method and its baseline trained with the same seed share the initialisation, the data
//! order and the dropout stream up to the first mixed step, so the per-seed difference of their
//! test accuracies removes most of the seed-to-seed spread that makes overlapping error bars
//! uninformative. For the seeds both finished, [`compare`] reports the mean difference and a
//! 95% interval from the paired t distribution with `n - 1` degrees of freedom: mean ± t ×
//! sd / sqrt(n). With one paired seed there is a difference but no interval; nor when every
//! difference is the same (test accuracies are counts over a test set, so two or three seeds
//! can tie exactly): the t interval would have width 0 and call any such method better.

use serde::{Deserialize, Serialize};

use crate::{
    plot::{FAMILY, PlotError},
    sweep::{ResultRow, RunResult, mean, sample_std},
};

/// One method compared with its baseline over the seeds both finished.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    /// The dataset.
    pub dataset: String,
    /// The model kind.
    pub model: String,
    /// The method.
    pub method: String,
    /// The recipe.
    pub recipe: String,
    /// Its `none` recipe.
    pub baseline: String,
    /// The seeds both finished, ascending.
    pub seeds: Vec<u64>,
    /// Mean of (method − baseline) test accuracy over those seeds.
    pub diff_mean: f64,
    /// Sample standard deviation of the differences (0 for one seed).
    pub diff_std: f64,
    /// The 95% paired-t interval of the mean difference; `None` below two seeds or when the
    /// differences do not vary.
    pub ci95: Option<(f64, f64)>,
}

impl Paired {
    /// `better` / `worse` when the interval excludes 0, else `no clear difference` (or
    /// `one seed: no interval`, `equal differences: no interval`).
    pub fn verdict(&self) -> &'static str {
        verdict(self.seeds.len(), self.ci95)
    }
}

/// The verdict on `n` paired differences with interval `ci95`: `better` / `worse` when the
/// interval excludes 0, else `no clear difference` (or `one seed: no interval`, `equal
/// differences: no interval`).
pub fn verdict(n: usize, ci95: Option<(f64, f64)>) -> &'static str {
    match ci95 {
        None if n >= 2 => "equal differences: no interval",
        None => "one seed: no interval",
        Some((lo, _)) if lo > 0.0 => "better",
        Some((_, hi)) if hi < 0.0 => "worse",
        Some(_) => "no clear difference",
    }
}

/// Mean, sample standard deviation and 95% paired-t interval (mean ± t × sd / sqrt(n), n - 1
/// degrees of freedom) of per-seed differences; no interval below two differences or when
/// they are equal up to float rounding (scores are ratios of counts and can tie exactly).
pub fn paired_t(diffs: &[f64]) -> (f64, f64, Option<(f64, f64)>) {
    let (m, sd, n) = (mean(diffs), sample_std(diffs), diffs.len());
    let ci95 = (n >= 2 && sd > 1e-9).then(|| {
        let half = t975(n - 1) * sd / (n as f64).sqrt();
        (m - half, m + half)
    });
    (m, sd, ci95)
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom: the table value for
/// `df <= 30`, then `1.96 + 2.5 / df` (within 0.002 of the exact quantile from 31 on).
pub fn t975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        _ => 1.96 + 2.5 / df as f64,
    }
}

/// Every row with a baseline other than itself, compared with it over the seeds both have,
/// in the rows' order. Rows without a shared seed are left out.
pub fn compare(rows: &[ResultRow], runs: &[RunResult]) -> Vec<Paired> {
    let acc = |recipe: &str, seed: u64| {
        runs.iter()
            .find(|r| r.metrics.recipe == recipe && r.metrics.seed == seed)
            .map(|r| r.metrics.test_accuracy)
    };
    rows.iter()
        .filter_map(|row| {
            let baseline = row.baseline.as_ref().filter(|b| **b != row.recipe)?;
            let (seeds, diffs): (Vec<u64>, Vec<f64>) = row
                .seeds
                .iter()
                .filter_map(|&s| Some((s, acc(&row.recipe, s)? - acc(baseline, s)?)))
                .unzip();
            if seeds.is_empty() {
                return None;
            }
            let (m, sd, ci95) = paired_t(&diffs);
            Some(Paired {
                dataset: row.dataset.clone(),
                model: row.model.clone(),
                method: row.method.clone(),
                recipe: row.recipe.clone(),
                baseline: baseline.clone(),
                seeds,
                diff_mean: m,
                diff_std: sd,
                ci95,
            })
        })
        .collect()
}

/// The markdown section of `results.md` for `paired` (empty when there is nothing to compare).
pub fn markdown(paired: &[Paired]) -> String {
    if paired.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "\n## Paired by seed, against none\n\n\
         Each method minus the `none` recipe of the same dataset and model, test accuracy, over \
         the seeds both finished (the same seed: the same initialisation and data order). \
         Interval: 95%, paired t with n - 1 degrees of freedom (mean ± t × sd / sqrt(n)); \
         `better` / `worse` when it excludes 0.\n\n\
         | dataset | model | method | recipe | vs | seeds | mean difference | 95% interval | verdict |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for p in paired {
        let interval = p.ci95.map_or("–".to_string(), |(lo, hi)| {
            format!("[{lo:+.4}, {hi:+.4}]")
        });
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:+.4} | {} | {} |\n",
            p.dataset,
            p.model,
            p.method,
            p.recipe,
            p.baseline,
            p.seeds.len(),
            p.diff_mean,
            interval,
            p.verdict()
        ));
    }
    s
}

/// `paired.png`: one line per comparison, its mean difference as a dot and its 95% interval
/// as a bar, against a line at 0 (no comparison: a chart that says so).
///
/// # Errors
///
/// [`PlotError`] naming the file.
pub fn plot(path: &std::path::Path, paired: &[Paired]) -> Result<(), PlotError> {
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let tmp = crate::plot::start_png(path)?;
    let draw_error = |e: &dyn std::fmt::Display| PlotError::Draw {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let n = paired.len().max(1);
    let size = (900u32, (n as u32 * 34 + 130).min(4000));
    let ends = paired.iter().flat_map(|p| {
        let (lo, hi) = p.ci95.unwrap_or((p.diff_mean, p.diff_mean));
        [lo, hi, p.diff_mean]
    });
    let reach = ends
        .filter(|v| v.is_finite())
        .fold(0.01f64, |m, v| m.max(v.abs()))
        * 1.15;
    let root = BitMapBackend::new(&tmp, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_error(&e))?;
    let body = root
        .titled(
            "Paired by seed: method − none, test accuracy (mean, 95% paired-t interval)",
            (FAMILY, 18).into_font(),
        )
        .map_err(|e| draw_error(&e))?;
    let (labels, plot_area) = body.split_horizontally(330);
    let mut chart = ChartBuilder::on(&plot_area)
        .margin(12)
        .x_label_area_size(40)
        .build_cartesian_2d(-reach..reach, 0.0..n as f64)
        .map_err(|e| draw_error(&e))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_label_formatter(&|x| format!("{x:+.3}"))
        .x_desc("difference in test accuracy")
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 15))
        .light_line_style(RGBColor(238, 238, 238))
        .draw()
        .map_err(|e| draw_error(&e))?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(0.0, 0.0), (0.0, n as f64)],
            RGBColor(120, 120, 120).stroke_width(1),
        )))
        .map_err(|e| draw_error(&e))?;
    let style = TextStyle::from((FAMILY, 14).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    for (i, p) in paired.iter().enumerate() {
        let y = n as f64 - i as f64 - 0.5;
        let color = match p.verdict() {
            "better" => RGBColor(34, 139, 34),
            "worse" => RGBColor(200, 40, 40),
            _ => RGBColor(60, 60, 60),
        };
        if let Some((lo, hi)) = p.ci95 {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(lo, y), (hi, y)],
                    color.stroke_width(3),
                )))
                .map_err(|e| draw_error(&e))?;
        }
        chart
            .draw_series(std::iter::once(Circle::new(
                (p.diff_mean, y),
                5,
                color.filled(),
            )))
            .map_err(|e| draw_error(&e))?;
        let (_, py) = chart.backend_coord(&(0.0, y));
        labels
            .draw(&Text::new(
                format!(
                    "{} / {}: {} (n={})",
                    p.dataset,
                    p.model,
                    p.method,
                    p.seeds.len()
                ),
                (322, py - 30),
                style.clone(),
            ))
            .map_err(|e| draw_error(&e))?;
    }
    if paired.is_empty() {
        chart
            .draw_series(std::iter::once(Text::new(
                "no method has a none baseline with a shared seed",
                (-reach * 0.9, 0.5),
                (FAMILY, 16).into_font(),
            )))
            .map_err(|e| draw_error(&e))?;
    }
    root.present().map_err(|e| draw_error(&e))?;
    drop(root);
    crate::plot::commit_png(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::aggregate;
    use mixup_train::train::FinalMetrics;

    fn run(recipe: &str, method: &str, seed: u64, acc: f64) -> RunResult {
        RunResult {
            dataset: "trec".into(),
            model: "textcnn".into(),
            method: method.into(),
            metrics: FinalMetrics {
                recipe: recipe.into(),
                method: method.into(),
                seed,
                device: "flex".into(),
                epochs: 1,
                test_accuracy: acc,
                test_loss: 0.0,
                dev_accuracy: None,
                selected_epoch: 1,
                train_samples_per_s: 100.0,
                median_epoch_seconds: 1.0,
                total_seconds: 1.0,
                train_size: 10,
                test_size: 10,
                vocab_size: 10,
                num_classes: 2,
            },
        }
    }

    #[test]
    fn paired_differences_and_their_t_interval() {
        // none: a wide spread over 5 seeds; word: 0.015 to 0.025 better on each seed. Seed 5
        // has no baseline and is left out of the pairing.
        let base = [0.80, 0.70, 0.90, 0.75, 0.85];
        let gain = [0.02, 0.025, 0.015, 0.02, 0.02];
        let mut runs: Vec<RunResult> = Vec::new();
        for (s, (b, g)) in base.iter().zip(gain).enumerate() {
            runs.push(run("a-none", "none", s as u64, *b));
            runs.push(run("a-word", "word", s as u64, b + g));
        }
        runs.push(run("a-word", "word", 5, 0.10));
        let rows = aggregate(&runs);
        let p = compare(&rows, &runs);
        assert_eq!(p.len(), 1, "the baseline is not compared with itself");
        let p = &p[0];
        assert_eq!(p.seeds, vec![0, 1, 2, 3, 4]);
        assert!((p.diff_mean - 0.02).abs() < 1e-9, "{}", p.diff_mean);
        // The differences' sample sd, and the half-width t(4) * sd / sqrt(5).
        let sd = (gain.iter().map(|g| (g - 0.02f64).powi(2)).sum::<f64>() / 4.0).sqrt();
        assert!((p.diff_std - sd).abs() < 1e-9);
        let half = 2.776 * sd / 5f64.sqrt();
        let (lo, hi) = p.ci95.expect("an interval");
        assert!((lo - (0.02 - half)).abs() < 1e-9 && (hi - (0.02 + half)).abs() < 1e-9);
        assert_eq!(p.verdict(), "better");
        // Unpaired, the error bars overlap: the paired test is what tells.
        let (none, word) = (&rows[0], &rows[1]);
        assert!(word.test_accuracy_mean - word.test_accuracy_std < none.test_accuracy_mean);
        let md = markdown(std::slice::from_ref(p));
        assert!(
            md.contains("| trec | textcnn | word | a-word | a-none | 5 | +0.0200 |"),
            "{md}"
        );
        assert!(md.contains("better"), "{md}");
    }

    #[test]
    fn one_seed_has_no_interval_and_quantiles_fall_to_normal() {
        let runs = vec![run("b-none", "none", 0, 0.5), run("b-sen", "sen", 0, 0.4)];
        let p = compare(&aggregate(&runs), &runs);
        assert_eq!(p[0].ci95, None);
        assert_eq!(p[0].verdict(), "one seed: no interval");
        // Two seeds with the same difference: no zero-width interval, no verdict.
        let tied = vec![
            run("c-none", "none", 0, 0.5),
            run("c-sen", "sen", 0, 0.6),
            run("c-none", "none", 1, 0.7),
            run("c-sen", "sen", 1, 0.8),
        ];
        let q = compare(&aggregate(&tied), &tied);
        assert_eq!((q[0].seeds.len(), q[0].ci95), (2, None));
        assert_eq!(q[0].verdict(), "equal differences: no interval");
        assert!((t975(4) - 2.776).abs() < 1e-9);
        assert!((t975(120) - 1.98).abs() < 0.002);
        assert!(t975(0).is_infinite());
        assert_eq!(markdown(&[]), "");
        let dir = std::env::temp_dir().join(format!("mixup-paired-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        for (name, list) in [("some.png", p.clone()), ("none.png", Vec::new())] {
            plot(&dir.join(name), &list).expect("plot");
            let png = std::fs::read(dir.join(name)).expect("png");
            assert_eq!(&png[..4], b"\x89PNG");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
