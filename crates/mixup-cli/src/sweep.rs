//! Sweeps: every recipe of a set trained with every seed of a range, resumably, and the
//! finished runs gathered into one table and one chart.
//!
//! ```text
//! <out>/<recipe name>/seed<s>/   one run folder per recipe and seed (see [`crate::run`])
//! <out>/results.md               dataset x model x method: test accuracy mean ± std over
//!                                seeds, train samples/s, overhead vs `none`, wall time
//! <out>/results.csv              one row per finished run
//! <out>/results.json             the rows of results.md ([`ResultRow`])
//! <out>/results.png              the accuracies as a grouped bar chart
//! ```
//!
//! A run is *finished* when its `final.json` parses and names the planned recipe, method, seed
//! and number of epochs, and the resolved `recipe.toml` beside it equals the planned recipe
//! (the description aside). Finished runs are never trained again, so an interrupted sweep
//! resumes where it stopped; any other run is trained from scratch into its folder.
//!
//! Several processes may share one sweep folder (a cluster's job array): each trains only its
//! shard of the plan when given one, and claims a run folder before training it, so that no
//! run is trained twice at once and a run whose process was killed is taken over
//! ([`crate::claim`]).
//!
//! Nothing here prints: progress goes through the `say` and `on_event` callbacks.

use std::{
    collections::BTreeMap,
    ops::Range,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use burn::tensor::Device;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::{Deserialize, Serialize};

use mixup_train::train::{Event, FinalMetrics};

use crate::{
    claim::{Claimed, Shard, claim},
    plot::{FAMILY, PlotError},
    recipe::Recipe,
    run::{RecipeRun, train_recipe, write_atomic},
};

/// Methods in the order tables and charts list them; any other method follows,
/// alphabetically.
pub const METHOD_ORDER: [&str; 7] = [
    "none",
    "input",
    "word",
    "sen",
    "manifold",
    "tmix",
    "mixup-transformer",
];

/// Where `method` sorts: its place in [`METHOD_ORDER`], else after all of them by name.
fn method_key(method: &str) -> (usize, &str) {
    let rank = METHOD_ORDER
        .iter()
        .position(|m| *m == method)
        .unwrap_or(METHOD_ORDER.len());
    (rank, method)
}

/// The recipe files named by `pattern`: a glob pattern (`models/*.toml`) or a plain file
/// path, sorted. Folders that match are left out.
///
/// # Errors
///
/// A malformed pattern, a folder that cannot be read while matching, or nothing matching;
/// each names the pattern.
pub fn expand_recipes(pattern: &str) -> anyhow::Result<Vec<PathBuf>> {
    // A file that exists is taken as it is, even when its name holds glob characters.
    if Path::new(pattern).is_file() {
        return Ok(vec![PathBuf::from(pattern)]);
    }
    let paths = glob::glob(pattern)
        .with_context(|| format!("--recipes {pattern:?}: not a valid glob pattern"))?;
    let mut found = Vec::new();
    for entry in paths {
        let path = entry.with_context(|| format!("--recipes {pattern:?}: while matching"))?;
        if path.is_file() {
            found.push(path);
        }
    }
    if found.is_empty() {
        anyhow::bail!("--recipes {pattern:?}: no recipe file matches");
    }
    found.sort();
    Ok(found)
}

/// The recipe files named by several patterns (see [`expand_recipes`]), sorted, each file
/// once even when several patterns name it.
///
/// # Errors
///
/// No pattern at all, or the first pattern that [`expand_recipes`] refuses.
pub fn expand_patterns(patterns: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    if patterns.is_empty() {
        anyhow::bail!("no recipes given: pass --recipes PATTERN (e.g. 'models/*.toml')");
    }
    let mut by_file: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
    for pattern in patterns {
        for path in expand_recipes(pattern)? {
            let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            by_file.entry(key).or_insert(path);
        }
    }
    let mut paths: Vec<PathBuf> = by_file.into_values().collect();
    paths.sort();
    Ok(paths)
}

/// One run of a sweep: a recipe with its seed (and epochs) set, and its run folder.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedRun {
    /// The recipe file.
    pub recipe_path: PathBuf,
    /// The recipe, seed and overrides applied, validated.
    pub recipe: Recipe,
    /// The seed of this run.
    pub seed: u64,
    /// Its run folder, `<out>/<recipe name>/seed<seed>`.
    pub dir: PathBuf,
}

/// A recipe name must be one plain path component: it names a folder under `--out`.
fn check_name(name: &str, path: &Path) -> anyhow::Result<()> {
    let plain = !name.trim().is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control);
    if !plain {
        anyhow::bail!(
            "{}: name = {name:?}: a sweep names run folders after recipes, so the name must be \
             a plain folder name (no slashes, not empty, not . or ..)",
            path.display()
        );
    }
    Ok(())
}

/// Every recipe with every seed of `seeds`, recipe by recipe, into `out`; `epochs` overrides
/// the recipes' number of epochs.
///
/// # Errors
///
/// An empty seed range, a recipe that cannot be read or is invalid after the overrides, a
/// name unfit for a folder, or two files with the same recipe name (both named).
pub fn plan(
    recipe_paths: &[PathBuf],
    seeds: Range<u64>,
    epochs: Option<usize>,
    out: &Path,
) -> anyhow::Result<Vec<PlannedRun>> {
    if seeds.is_empty() {
        anyhow::bail!("no seeds to run: --seeds must be at least 1");
    }
    let mut names: BTreeMap<String, &Path> = BTreeMap::new();
    let mut runs = Vec::new();
    for path in recipe_paths {
        let mut recipe = Recipe::load(path)?;
        check_name(&recipe.name, path)?;
        if let Some(first) = names.insert(recipe.name.clone(), path) {
            anyhow::bail!(
                "{} and {} are both named {:?}; run folders are named after recipes, so the \
                 recipes of one sweep need different names",
                first.display(),
                path.display(),
                recipe.name
            );
        }
        if let Some(e) = epochs {
            recipe.train.epochs = e;
            recipe.validate(Path::new(&format!(
                "{} (with --epochs {e})",
                path.display()
            )))?;
        }
        for seed in seeds.clone() {
            let mut r = recipe.clone();
            r.train.seed = seed;
            runs.push(PlannedRun {
                recipe_path: path.clone(),
                dir: out.join(&r.name).join(format!("seed{seed}")),
                recipe: r,
                seed,
            });
        }
    }
    Ok(runs)
}

/// Where a planned run stands.
#[derive(Clone, Debug, PartialEq)]
pub enum RunStatus {
    /// Finished: its final report.
    Finished(Box<FinalMetrics>),
    /// Nothing finished there yet.
    Missing,
    /// A folder that does not hold this finished run; why.
    Stale(String),
}

/// Two recipes that train the same thing (descriptions and measured results aside).
fn same_training(a: &Recipe, b: &Recipe) -> bool {
    let strip = |r: &Recipe| {
        let mut r = Recipe {
            description: String::new(),
            results: None,
            ..r.clone()
        };
        // How often checkpoints are written does not change what is trained.
        r.train.checkpoint_every = 0;
        r
    };
    strip(a) == strip(b)
}

/// Whether `run`'s folder holds the start of this very run (its `recipe.toml` written, no
/// `final.json` yet), so that its checkpoints may be continued.
fn interrupted(run: &PlannedRun) -> bool {
    !run.dir.join("final.json").exists()
        && Recipe::load(&run.dir.join("recipe.toml"))
            .is_ok_and(|saved| same_training(&saved, &run.recipe))
}

/// Whether `run` is finished in its folder (see the module docs).
pub fn run_status(run: &PlannedRun) -> RunStatus {
    let final_path = run.dir.join("final.json");
    let bytes = match std::fs::read(&final_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return RunStatus::Missing,
        Err(e) => return RunStatus::Stale(format!("cannot read {}: {e}", final_path.display())),
    };
    let m: FinalMetrics = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => return RunStatus::Stale(format!("{}: malformed ({e})", final_path.display())),
    };
    let r = &run.recipe;
    if m.recipe != r.name
        || m.method != r.method.kind.name()
        || m.seed != run.seed
        || m.epochs != r.train.epochs
    {
        return RunStatus::Stale(format!(
            "{} is of recipe {} method {} seed {} with {} epochs",
            final_path.display(),
            m.recipe,
            m.method,
            m.seed,
            m.epochs
        ));
    }
    let saved_path = run.dir.join("recipe.toml");
    match Recipe::load(&saved_path) {
        Ok(saved) if same_training(&saved, r) => RunStatus::Finished(Box::new(m)),
        Ok(_) => RunStatus::Stale(format!(
            "{} differs from {}",
            saved_path.display(),
            run.recipe_path.display()
        )),
        Err(e) => RunStatus::Stale(e.to_string()),
    }
}

/// What [`run_sweep`] needs besides the plan.
pub struct SweepSetup<'a> {
    /// The (non-autodiff) device to train on.
    pub device: Device,
    /// The device's name, for the reports.
    pub device_name: String,
    /// `--data-dir`, if given.
    pub data_dir: Option<&'a Path>,
    /// Report progress every this many steps.
    pub log_every: usize,
    /// Train only this shard of the plan (all of it when `None`).
    pub shard: Option<Shard>,
    /// This process's name in claim files ([`crate::claim::owner_name`]).
    pub owner: String,
    /// A claim whose heartbeat is older than this is taken over.
    pub claim_timeout: Duration,
}

/// What [`run_sweep`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SweepOutcome {
    /// Runs trained now.
    pub trained: usize,
    /// Runs skipped because they were finished.
    pub skipped: usize,
    /// Runs skipped because another live process had claimed them.
    pub busy: usize,
    /// Runs of other shards (not looked at).
    pub other_shards: usize,
    /// Runs that failed: `(which, the error)`.
    pub failed: Vec<(String, String)>,
}

/// Trains every unfinished run of `plan`, in order, and skips the finished ones. A run that
/// fails is reported and the sweep goes on with the next.
///
/// `say` gets one line as each run starts (`[3/10] textcnn-trec seed 2: training` or
/// `...: skipped (finished)`), the notes of training (indented) and one line as it ends;
/// `on_event` gets the training progress.
pub fn run_sweep(
    plan: &[PlannedRun],
    setup: &SweepSetup<'_>,
    say: &mut dyn FnMut(&str),
    on_event: &mut dyn FnMut(&Event),
) -> SweepOutcome {
    let mut outcome = SweepOutcome::default();
    let total = plan.len();
    for (i, run) in plan.iter().enumerate() {
        if setup.shard.is_some_and(|s| !s.keeps(i)) {
            outcome.other_shards += 1;
            continue;
        }
        let label = format!("[{}/{total}] {} seed {}", i + 1, run.recipe.name, run.seed);
        if let RunStatus::Finished(_) = run_status(run) {
            say(&format!("{label}: skipped (finished)"));
            outcome.skipped += 1;
            continue;
        }
        let _claim = match claim(&run.dir, &setup.owner, setup.claim_timeout) {
            Ok(Claimed::Mine(guard, took_over)) => {
                if let Some(old) = took_over {
                    say(&format!(
                        "{label}: taking over from {old} (no heartbeat for {:.0} s)",
                        setup.claim_timeout.as_secs_f64()
                    ));
                }
                guard
            }
            Ok(Claimed::Busy(owner)) => {
                say(&format!("{label}: skipped (claimed by {owner})"));
                outcome.busy += 1;
                continue;
            }
            Err(e) => {
                let msg = format!("cannot claim {}: {e}", run.dir.display());
                say(&format!("{label}: failed: {msg}"));
                outcome.failed.push((label, msg));
                continue;
            }
        };
        // Looked at again under the claim: another process may have finished it meanwhile.
        let resume = interrupted(run);
        match run_status(run) {
            RunStatus::Finished(_) => {
                say(&format!("{label}: skipped (finished)"));
                outcome.skipped += 1;
                continue;
            }
            RunStatus::Missing => say(&format!("{label}: training")),
            RunStatus::Stale(why) => say(&format!("{label}: training (again: {why})")),
        }
        // A run interrupted after writing its new recipe.toml must not look finished through
        // an old final.json.
        let old = run.dir.join("final.json");
        if let Err(e) = std::fs::remove_file(&old)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            let msg = format!("cannot remove the old {}: {e}", old.display());
            say(&format!("{label}: failed: {msg}"));
            outcome.failed.push((label, msg));
            continue;
        }
        let result = train_recipe(
            &RecipeRun {
                recipe: &run.recipe,
                recipe_path: &run.recipe_path,
                device: setup.device.clone(),
                device_name: setup.device_name.clone(),
                replicas: Vec::new(),
                data_dir: setup.data_dir,
                out: &run.dir,
                log_every: setup.log_every,
                resume,
            },
            &mut |line: &str| say(&format!("  {line}")),
            on_event,
        );
        match result {
            Ok(m) => {
                say(&format!(
                    "{label}: done: test accuracy {:.4}, {:.0} train samples/s, {:.1} s",
                    m.test_accuracy, m.train_samples_per_s, m.total_seconds
                ));
                outcome.trained += 1;
            }
            Err(e) => {
                let msg = format!("{e:#}");
                say(&format!("{label}: failed: {msg}"));
                outcome.failed.push((label, msg));
            }
        }
    }
    outcome
}

/// One finished run, with what its recipe says it is.
#[derive(Clone, Debug, PartialEq)]
pub struct RunResult {
    /// `data.dataset` of the recipe.
    pub dataset: String,
    /// `model.kind` of the recipe.
    pub model: String,
    /// `method.kind` of the recipe.
    pub method: String,
    /// The run's final report.
    pub metrics: FinalMetrics,
}

/// The finished runs of `plan`, in plan order.
pub fn collect_finished(plan: &[PlannedRun]) -> Vec<RunResult> {
    plan.iter()
        .filter_map(|run| match run_status(run) {
            RunStatus::Finished(m) => Some(RunResult {
                dataset: run.recipe.data.dataset.clone(),
                model: run.recipe.model.kind_name().to_string(),
                method: run.recipe.method.kind.to_string(),
                metrics: *m,
            }),
            _ => None,
        })
        .collect()
}

/// One recipe's runs, aggregated over seeds: a row of `results.md`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    /// The dataset.
    pub dataset: String,
    /// The model kind.
    pub model: String,
    /// The mixing method.
    pub method: String,
    /// The recipe name.
    pub recipe: String,
    /// The seeds of the finished runs, ascending.
    pub seeds: Vec<u64>,
    /// Mean test accuracy over seeds.
    pub test_accuracy_mean: f64,
    /// Sample standard deviation (n - 1) of the test accuracy; 0 for one seed.
    pub test_accuracy_std: f64,
    /// Mean training samples per second.
    pub train_samples_per_s: f64,
    /// The `none` recipe of the same dataset and model this row is compared with (the first
    /// by name when there are several).
    pub baseline: Option<String>,
    /// How much slower per training sample than the baseline, in percent:
    /// `(sps_baseline / sps - 1) * 100`.
    pub overhead_vs_none_pct: Option<f64>,
    /// Mean wall-clock seconds of a whole run.
    pub wall_seconds_per_run: f64,
}

/// The mean of `xs` (0 when empty).
pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// The sample standard deviation of `xs` (n - 1 in the denominator); 0 for fewer than two.
pub fn sample_std(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let m = mean(xs);
    let ss: f64 = xs.iter().map(|x| (x - m) * (x - m)).sum();
    (ss / (xs.len() - 1) as f64).sqrt()
}

/// Groups finished runs by recipe and aggregates each over its seeds; rows sorted by
/// dataset, model, method ([`METHOD_ORDER`]) and recipe.
pub fn aggregate(runs: &[RunResult]) -> Vec<ResultRow> {
    let mut by_recipe: BTreeMap<&str, Vec<&RunResult>> = BTreeMap::new();
    for r in runs {
        by_recipe.entry(&r.metrics.recipe).or_default().push(r);
    }
    let mut rows: Vec<ResultRow> = by_recipe
        .into_iter()
        .filter_map(|(recipe, group)| {
            let first = group.first()?;
            let of = |f: fn(&FinalMetrics) -> f64| -> Vec<f64> {
                group.iter().map(|r| f(&r.metrics)).collect()
            };
            let acc = of(|m| m.test_accuracy);
            let mut seeds: Vec<u64> = group.iter().map(|r| r.metrics.seed).collect();
            seeds.sort_unstable();
            Some(ResultRow {
                dataset: first.dataset.clone(),
                model: first.model.clone(),
                method: first.method.clone(),
                recipe: recipe.to_string(),
                seeds,
                test_accuracy_mean: mean(&acc),
                test_accuracy_std: sample_std(&acc),
                train_samples_per_s: mean(&of(|m| m.train_samples_per_s)),
                baseline: None,
                overhead_vs_none_pct: None,
                wall_seconds_per_run: mean(&of(|m| m.total_seconds)),
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        (&a.dataset, &a.model, method_key(&a.method), &a.recipe).cmp(&(
            &b.dataset,
            &b.model,
            method_key(&b.method),
            &b.recipe,
        ))
    });
    let baselines: Vec<Option<(String, f64)>> = rows
        .iter()
        .map(|row| {
            rows.iter()
                .find(|b| b.method == "none" && b.dataset == row.dataset && b.model == row.model)
                .map(|b| (b.recipe.clone(), b.train_samples_per_s))
        })
        .collect();
    for (row, baseline) in rows.iter_mut().zip(baselines) {
        if let Some((name, sps_none)) = baseline {
            let overhead = (sps_none / row.train_samples_per_s - 1.0) * 100.0;
            row.overhead_vs_none_pct = overhead.is_finite().then_some(overhead);
            row.baseline = Some(name);
        }
    }
    rows
}

/// Seeds written compactly: `0-4`, `0-2, 5`, `7`.
fn seed_list(seeds: &[u64]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < seeds.len() {
        let start = seeds[i];
        let mut end = start;
        while i + 1 < seeds.len() && seeds[i + 1] == end + 1 {
            i += 1;
            end = seeds[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(", ")
}

/// A markdown table cell: pipes escaped, line breaks flattened.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The markdown table of `rows` (header included).
pub fn markdown_table(rows: &[ResultRow]) -> String {
    let mut s = String::from(
        "| dataset | model | method | recipe | test accuracy (mean ± std) | seeds | \
         train samples/s | overhead vs none | wall s / run |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let overhead = match (&r.baseline, r.overhead_vs_none_pct) {
            (Some(b), _) if *b == r.recipe => "baseline".to_string(),
            (_, Some(pct)) => format!("{pct:+.1}%"),
            _ => "–".to_string(),
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:.4} ± {:.4} | {} ({}) | {:.0} | {} | {:.1} |\n",
            cell(&r.dataset),
            cell(&r.model),
            cell(&r.method),
            cell(&r.recipe),
            r.test_accuracy_mean,
            r.test_accuracy_std,
            r.seeds.len(),
            seed_list(&r.seeds),
            r.train_samples_per_s,
            overhead,
            r.wall_seconds_per_run
        ));
    }
    s
}

/// The whole `results.md`: title, the command that produced it, the devices, how many of the
/// `planned` runs are finished, what the columns mean, and the table.
pub fn results_markdown(
    rows: &[ResultRow],
    runs: &[RunResult],
    command: &str,
    planned: usize,
) -> String {
    let mut devices: Vec<&str> = runs.iter().map(|r| r.metrics.device.as_str()).collect();
    devices.sort_unstable();
    devices.dedup();
    let devices = if devices.is_empty() {
        "none yet".to_string()
    } else {
        devices.join(", ")
    };
    let mut s = format!(
        "# Sweep results\n\n\
         Produced by:\n\n```sh\n{command}\n```\n\n\
         Device: {devices}. Finished runs: {} of {planned} planned.\n\n\
         Test accuracy is that of each run's last epoch, mean ± sample standard deviation over \
         seeds (seeds column: how many, and which). Train samples/s and wall seconds per run \
         are means over seeds. Overhead vs none: how much slower per training sample than the \
         `none` recipe of the same dataset and model, (samples/s of none / samples/s - 1) x \
         100.\n\n",
        runs.len()
    );
    if rows.is_empty() {
        s.push_str("No run has finished yet.\n");
    } else {
        s.push_str(&markdown_table(rows));
        s.push_str(&crate::paired::markdown(&crate::paired::compare(
            rows, runs,
        )));
    }
    s
}

/// A CSV field, quoted when it must be.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `results.csv`: one row per finished run.
pub fn runs_csv(runs: &[RunResult]) -> String {
    let mut s = String::from(
        "recipe,dataset,model,method,seed,test_accuracy,train_samples_per_s,total_seconds\n",
    );
    for r in runs {
        let m = &r.metrics;
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            csv_field(&m.recipe),
            csv_field(&r.dataset),
            csv_field(&r.model),
            csv_field(&r.method),
            m.seed,
            m.test_accuracy,
            m.train_samples_per_s,
            m.total_seconds
        ));
    }
    s
}

/// What [`write_results`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct WrittenResults {
    /// The path of `results.md`.
    pub markdown: PathBuf,
    /// The table of `results.md` (empty when no run has finished).
    pub table: String,
    /// The aggregated rows.
    pub rows: Vec<ResultRow>,
    /// Finished runs.
    pub finished: usize,
    /// Planned runs.
    pub planned: usize,
}

/// Gathers the finished runs of `plan` and writes `results.md`, `results.csv`,
/// `results.json` and `results.png` into `out`; `command` is the command line shown in
/// `results.md`.
///
/// # Errors
///
/// A file that cannot be written, named.
pub fn write_results(
    out: &Path,
    plan: &[PlannedRun],
    command: &str,
) -> anyhow::Result<WrittenResults> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let runs = collect_finished(plan);
    let rows = aggregate(&runs);
    let markdown = out.join("results.md");
    write_atomic(
        &markdown,
        results_markdown(&rows, &runs, command, plan.len()).as_bytes(),
    )?;
    write_atomic(&out.join("results.csv"), runs_csv(&runs).as_bytes())?;
    write_atomic(
        &out.join("results.json"),
        &serde_json::to_vec_pretty(&rows)?,
    )?;
    let paired = crate::paired::compare(&rows, &runs);
    write_atomic(
        &out.join("paired.json"),
        &serde_json::to_vec_pretty(&paired)?,
    )?;
    plot_results(&out.join("results.png"), &rows).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::paired::plot(&out.join("paired.png"), &paired).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(WrittenResults {
        markdown,
        table: if rows.is_empty() {
            String::new()
        } else {
            markdown_table(&rows)
        },
        rows,
        finished: runs.len(),
        planned: plan.len(),
    })
}

/// The lower end of the accuracy axis: 0.05 below the lowest whisker, rounded down to a
/// multiple of 0.05, within [0, 0.95].
fn accuracy_floor(rows: &[ResultRow]) -> f64 {
    let lowest = rows
        .iter()
        .map(|r| r.test_accuracy_mean - r.test_accuracy_std)
        .filter(|v| v.is_finite())
        .fold(f64::INFINITY, f64::min);
    if !lowest.is_finite() {
        return 0.0;
    }
    ((lowest - 0.05) * 20.0 + 1e-9).floor().clamp(0.0, 19.0) / 20.0
}

/// The colour of a method: fixed for the methods of [`METHOD_ORDER`], so charts of different
/// sweeps agree.
fn method_color(method: &str, others: &[&str]) -> RGBColor {
    let index = METHOD_ORDER
        .iter()
        .position(|m| *m == method)
        .or_else(|| {
            others
                .iter()
                .position(|m| *m == method)
                .map(|i| METHOD_ORDER.len() + i)
        })
        .unwrap_or(0);
    let c = Palette99::pick(index).to_rgba();
    RGBColor(c.0, c.1, c.2)
}

/// The bars of [`plot_results`]: groups (dataset, model) in row order, each row's (group,
/// slot within it), the methods in table order, and those outside [`METHOD_ORDER`].
struct BarGroups<'a> {
    groups: Vec<(&'a str, &'a str)>,
    slots: Vec<(usize, usize)>,
    methods: Vec<&'a str>,
    others: Vec<&'a str>,
}

fn bar_groups(rows: &[ResultRow]) -> BarGroups<'_> {
    let mut groups: Vec<(&str, &str)> = Vec::new();
    let mut slots: Vec<(usize, usize)> = Vec::with_capacity(rows.len());
    for r in rows {
        let key = (r.dataset.as_str(), r.model.as_str());
        let g = match groups.iter().position(|k| *k == key) {
            Some(g) => g,
            None => {
                groups.push(key);
                groups.len() - 1
            }
        };
        let slot = slots.iter().filter(|(sg, _)| *sg == g).count();
        slots.push((g, slot));
    }
    let mut methods: Vec<&str> = rows.iter().map(|r| r.method.as_str()).collect();
    methods.sort_by_key(|m| method_key(m));
    methods.dedup();
    let others: Vec<&str> = methods
        .iter()
        .copied()
        .filter(|m| !METHOD_ORDER.contains(m))
        .collect();
    BarGroups {
        groups,
        slots,
        methods,
        others,
    }
}

/// The legend of [`plot_results`]: one swatch and name per method, top to bottom in table
/// order.
fn draw_legend(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    methods: &[&str],
    others: &[&str],
) -> Result<(), DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>> {
    let font = (FAMILY, 16).into_font();
    area.draw(&Text::new("method", (12, 20), font.clone()))?;
    for (i, m) in methods.iter().enumerate() {
        let y = 50 + 26 * i as i32;
        let color = method_color(m, others);
        area.draw(&Rectangle::new([(12, y), (30, y + 16)], color.filled()))?;
        area.draw(&Text::new(m.to_string(), (38, y), font.clone()))?;
    }
    Ok(())
}

/// Draws `rows` as a grouped bar chart into the PNG file `path`: one group per dataset and
/// model, one bar per recipe coloured by method, bar height = mean test accuracy, a whisker
/// of ± one standard deviation, the methods named in a legend on the right. Zero rows give
/// an empty chart. The parent folder of `path` must exist.
///
/// # Errors
///
/// [`PlotError::NotPng`] when `path` does not end in `.png`, [`PlotError::Draw`] when the
/// picture cannot be drawn or written, [`PlotError::Font`] if the embedded font is unusable.
pub fn plot_results(path: &Path, rows: &[ResultRow]) -> Result<(), PlotError> {
    let tmp = crate::plot::start_png(path)?;
    let draw_error = |e: &dyn std::fmt::Display| PlotError::Draw {
        path: path.to_path_buf(),
        message: e.to_string(),
    };

    let BarGroups {
        groups,
        slots,
        methods,
        others,
    } = bar_groups(rows);
    let per_group = |g: usize| slots.iter().filter(|(sg, _)| *sg == g).count().max(1);
    let widest = (0..groups.len()).map(per_group).max().unwrap_or(1);
    let legend_width = 190u32;
    let plot_width = (groups.len().max(1) * widest * 60 + 200).clamp(560, 3800) as u32;
    let size = (plot_width + legend_width, 520u32);
    let lo = accuracy_floor(rows);
    let hi = 1.0;
    let n_groups = groups.len().max(1);

    let root = BitMapBackend::new(&tmp, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_error(&e))?;
    let body = root
        .titled(
            "Test accuracy (mean ± std over seeds)",
            (FAMILY, 24).into_font(),
        )
        .map_err(|e| draw_error(&e))?;
    let (plot_area, legend_area) = body.split_horizontally(plot_width);
    let mut chart = ChartBuilder::on(&plot_area)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..n_groups as f64, lo..hi)
        .map_err(|e| draw_error(&e))?;
    // The x axis has no numbers: each group is named under its middle (below).
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_label_formatter(&|y| format!("{y:.2}"))
        .y_desc("test accuracy")
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .light_line_style(RGBColor(238, 238, 238))
        .draw()
        .map_err(|e| draw_error(&e))?;

    // Bar i spans [x0, x1] inside its group's 80% middle.
    let span = |i: usize| -> (f64, f64) {
        let (g, slot) = slots[i];
        let width = 0.8 / per_group(g) as f64;
        let x0 = g as f64 + 0.1 + slot as f64 * width;
        (x0 + 0.1 * width, x0 + 0.9 * width)
    };
    let clamp = |y: f64| if y.is_finite() { y.clamp(lo, hi) } else { lo };
    for (i, row) in rows.iter().enumerate() {
        let (x0, x1) = span(i);
        let color = method_color(&row.method, &others);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x0, lo), (x1, clamp(row.test_accuracy_mean))],
                color.filled(),
            )))
            .map_err(|e| draw_error(&e))?;
        let xm = (x0 + x1) / 2.0;
        let cap = (x1 - x0) / 4.0;
        let (y0, y1) = (
            clamp(row.test_accuracy_mean - row.test_accuracy_std),
            clamp(row.test_accuracy_mean + row.test_accuracy_std),
        );
        let whisker = BLACK.stroke_width(2);
        chart
            .draw_series([
                PathElement::new(vec![(xm, y0), (xm, y1)], whisker),
                PathElement::new(vec![(xm - cap, y0), (xm + cap, y0)], whisker),
                PathElement::new(vec![(xm - cap, y1), (xm + cap, y1)], whisker),
            ])
            .map_err(|e| draw_error(&e))?;
    }

    let label_style =
        TextStyle::from((FAMILY, 16).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (g, (dataset, model)) in groups.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(g as f64 + 0.5, lo));
        root.draw(&Text::new(
            format!("{dataset} / {model}"),
            (x, y + 10),
            label_style.clone(),
        ))
        .map_err(|e| draw_error(&e))?;
    }

    draw_legend(&legend_area, &methods, &others).map_err(|e| draw_error(&e))?;
    root.present().map_err(|e| draw_error(&e))?;
    drop(root);
    crate::plot::commit_png(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::tmp_dir;

    fn metrics(recipe: &str, method: &str, seed: u64, acc: f64, sps: f64) -> FinalMetrics {
        FinalMetrics {
            recipe: recipe.into(),
            method: method.into(),
            seed,
            device: "flex".into(),
            epochs: 10,
            test_accuracy: acc,
            test_loss: 0.4,
            dev_accuracy: None,
            selected_epoch: 10,
            train_samples_per_s: sps,
            median_epoch_seconds: 2.0,
            total_seconds: 20.0 + seed as f64,
            train_size: 5000,
            test_size: 500,
            vocab_size: 8000,
            num_classes: 6,
        }
    }

    fn result(
        dataset: &str,
        model: &str,
        method: &str,
        recipe: &str,
        m: FinalMetrics,
    ) -> RunResult {
        RunResult {
            dataset: dataset.into(),
            model: model.into(),
            method: method.into(),
            metrics: FinalMetrics {
                recipe: recipe.into(),
                method: method.into(),
                ..m
            },
        }
    }

    fn sample_runs() -> Vec<RunResult> {
        let r = |model: &str, method: &str, recipe: &str, seed, acc, sps| {
            result(
                "trec",
                model,
                method,
                recipe,
                metrics(recipe, method, seed, acc, sps),
            )
        };
        vec![
            r("textcnn", "word", "textcnn-trec-word", 0, 0.85, 1000.0),
            r("textcnn", "none", "textcnn-trec", 0, 0.86, 2000.0),
            r("textcnn", "word", "textcnn-trec-word", 1, 0.87, 1000.0),
            r("textcnn", "none", "textcnn-trec", 1, 0.88, 2200.0),
            r("bilstm", "sen", "bilstm-trec-sen", 3, 0.9, 500.0),
            result(
                "agnews",
                "textcnn",
                "manifold",
                "textcnn-agnews-manifold",
                metrics("x", "manifold", 0, 0.91, 1500.0),
            ),
        ]
    }

    #[test]
    fn mean_and_sample_std() {
        assert_eq!(mean(&[]), 0.0);
        assert!((mean(&[0.86, 0.88]) - 0.87).abs() < 1e-12);
        assert_eq!(sample_std(&[0.9]), 0.0);
        assert!((sample_std(&[0.86, 0.88]) - 0.02 / 2f64.sqrt()).abs() < 1e-12);
        // 2, 4, 4, 4, 5, 5, 7, 9: population std 2, sample std sqrt(32/7).
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert!((sample_std(&xs) - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn methods_sort_in_paper_order_then_by_name() {
        let mut ms = vec![
            "zeta",
            "manifold",
            "mixup-transformer",
            "alpha",
            "none",
            "tmix",
            "sen",
            "word",
            "input",
        ];
        ms.sort_by_key(|m| method_key(m));
        assert_eq!(
            ms,
            [
                "none",
                "input",
                "word",
                "sen",
                "manifold",
                "tmix",
                "mixup-transformer",
                "alpha",
                "zeta"
            ]
        );
    }

    #[test]
    fn aggregate_groups_by_recipe_sorts_and_computes_overhead() {
        let rows = aggregate(&sample_runs());
        let names: Vec<&str> = rows.iter().map(|r| r.recipe.as_str()).collect();
        assert_eq!(
            names,
            [
                "textcnn-agnews-manifold",
                "bilstm-trec-sen",
                "textcnn-trec",
                "textcnn-trec-word"
            ]
        );
        let none = &rows[2];
        assert_eq!(none.seeds, [0, 1]);
        assert!((none.test_accuracy_mean - 0.87).abs() < 1e-12);
        assert!((none.test_accuracy_std - 0.014_142_135_6).abs() < 1e-9);
        assert!((none.train_samples_per_s - 2100.0).abs() < 1e-9);
        assert!((none.wall_seconds_per_run - 20.5).abs() < 1e-12);
        assert_eq!(none.baseline.as_deref(), Some("textcnn-trec"));
        assert_eq!(none.overhead_vs_none_pct, Some(0.0));
        let word = &rows[3];
        assert_eq!(word.baseline.as_deref(), Some("textcnn-trec"));
        let overhead = word.overhead_vs_none_pct.expect("a none baseline");
        assert!((overhead - 110.0).abs() < 1e-9, "{overhead}");
        // No `none` recipe for these: no overhead.
        assert_eq!(rows[0].overhead_vs_none_pct, None);
        assert_eq!(rows[1].baseline, None);
        assert_eq!(rows[1].seeds, [3]);
        assert_eq!(rows[1].test_accuracy_std, 0.0);
        assert!(aggregate(&[]).is_empty());
    }

    #[test]
    fn markdown_table_rows() {
        let runs = sample_runs();
        let rows = aggregate(&runs);
        let md = results_markdown(&rows, &runs, "mixup sweep --recipes 'models/*.toml'", 8);
        assert!(md.starts_with("# Sweep results\n"), "{md}");
        assert!(
            md.contains("```sh\nmixup sweep --recipes 'models/*.toml'\n```"),
            "{md}"
        );
        assert!(
            md.contains("Device: flex. Finished runs: 6 of 8 planned."),
            "{md}"
        );
        let (table, paired) = md
            .split_once("\n## Paired by seed")
            .expect("a paired section");
        assert!(paired.contains("| trec | textcnn |"), "{paired}");
        let lines: Vec<&str> = table.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(lines.len(), 6, "{md}");
        assert_eq!(
            lines[0],
            "| dataset | model | method | recipe | test accuracy (mean ± std) | seeds | \
             train samples/s | overhead vs none | wall s / run |"
        );
        assert_eq!(
            lines[2],
            "| agnews | textcnn | manifold | textcnn-agnews-manifold | 0.9100 ± 0.0000 | 1 (0) \
             | 1500 | – | 20.0 |"
        );
        assert_eq!(
            lines[4],
            "| trec | textcnn | none | textcnn-trec | 0.8700 ± 0.0141 | 2 (0-1) | 2100 | \
             baseline | 20.5 |"
        );
        assert_eq!(
            lines[5],
            "| trec | textcnn | word | textcnn-trec-word | 0.8600 ± 0.0141 | 2 (0-1) | 1000 | \
             +110.0% | 20.5 |"
        );
        let empty = results_markdown(&[], &[], "mixup sweep", 4);
        assert!(
            empty.contains("No run has finished yet.") && !empty.contains("| dataset"),
            "{empty}"
        );
        assert!(empty.contains("Finished runs: 0 of 4 planned."), "{empty}");
    }

    #[test]
    fn seed_lists_and_escaping() {
        assert_eq!(seed_list(&[0, 1, 2, 3, 4]), "0-4");
        assert_eq!(seed_list(&[0, 1, 2, 5]), "0-2, 5");
        assert_eq!(seed_list(&[7]), "7");
        assert_eq!(seed_list(&[]), "");
        assert_eq!(cell("a|b"), "a\\|b");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        let csv = runs_csv(&sample_runs());
        assert_eq!(csv.lines().count(), 7);
        assert!(
            csv.contains("\ntextcnn-trec,trec,textcnn,none,1,0.88,2200,21\n"),
            "{csv}"
        );
    }

    fn write_recipe(dir: &Path, file: &str, name: &str, method: &str) -> PathBuf {
        let p = dir.join(file);
        std::fs::write(
            &p,
            format!(
                "name = \"{name}\"\n[data]\ndataset = \"toy\"\n[model]\nkind = \"textcnn\"\n\
                 [method]\nkind = \"{method}\"\n[train]\nepochs = 3\n"
            ),
        )
        .expect("write recipe");
        p
    }

    #[test]
    fn expand_recipes_globs_sorts_and_names_a_pattern_that_matches_nothing() {
        let tmp = tmp_dir("sweep-expand");
        let d = &tmp.0;
        let b = write_recipe(d, "b.toml", "b", "none");
        let a = write_recipe(d, "a.toml", "a", "none");
        std::fs::write(d.join("notes.txt"), "x").expect("write");
        std::fs::create_dir_all(d.join("dir.toml")).expect("a folder named like a recipe");
        let pattern = format!("{}/*.toml", d.display());
        assert_eq!(
            expand_recipes(&pattern).expect("matches"),
            [a.clone(), b.clone()]
        );
        let plain = b.display().to_string();
        assert_eq!(
            expand_recipes(&plain).expect("a plain path"),
            std::slice::from_ref(&b)
        );

        let none = format!("{}/*.yaml", d.display());
        let err = expand_recipes(&none).expect_err("nothing matches");
        assert!(
            format!("{err:#}").contains(&none) && format!("{err:#}").contains("no recipe"),
            "{err:#}"
        );
        let missing = format!("{}/nope.toml", d.display());
        let err = expand_recipes(&missing).expect_err("no such file");
        assert!(format!("{err:#}").contains("nope.toml"), "{err:#}");
        let err = expand_recipes("models/[.toml").expect_err("bad pattern");
        assert!(format!("{err:#}").contains("models/[.toml"), "{err:#}");

        // Several patterns: the union, each file once.
        let all = expand_patterns(&[plain, pattern, a.display().to_string()]).expect("union");
        assert_eq!(all, [a, b]);
        assert!(expand_patterns(&[]).is_err());
    }

    #[test]
    fn plan_lays_out_runs_and_refuses_duplicate_names() {
        let tmp = tmp_dir("sweep-plan");
        let d = &tmp.0;
        let a = write_recipe(d, "a.toml", "alpha", "none");
        let b = write_recipe(d, "b.toml", "beta", "word");
        let out = d.join("out");
        let runs = plan(&[a.clone(), b.clone()], 3..5, Some(2), &out).expect("plan");
        let got: Vec<(&str, u64, usize, PathBuf)> = runs
            .iter()
            .map(|r| {
                assert_eq!(r.recipe.train.seed, r.seed);
                (
                    r.recipe.name.as_str(),
                    r.seed,
                    r.recipe.train.epochs,
                    r.dir.clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("alpha", 3, 2, out.join("alpha/seed3")),
                ("alpha", 4, 2, out.join("alpha/seed4")),
                ("beta", 3, 2, out.join("beta/seed3")),
                ("beta", 4, 2, out.join("beta/seed4")),
            ]
        );
        assert_eq!(runs[0].recipe_path, a);
        let kept = plan(std::slice::from_ref(&a), 0..1, None, &out).expect("plan");
        assert_eq!(kept[0].recipe.train.epochs, 3);

        let err = plan(std::slice::from_ref(&a), 0..0, None, &out).expect_err("no seeds");
        assert!(err.to_string().contains("--seeds"), "{err}");
        let err = plan(std::slice::from_ref(&a), 0..1, Some(0), &out).expect_err("0 epochs");
        assert!(
            format!("{err:#}").contains("a.toml") && format!("{err:#}").contains("train.epochs"),
            "{err:#}"
        );
        let twin = write_recipe(d, "twin.toml", "alpha", "sen");
        let err = plan(&[a, b, twin], 0..1, None, &out).expect_err("same name twice");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("a.toml") && msg.contains("twin.toml") && msg.contains("\"alpha\""),
            "{msg}"
        );
        let bad = write_recipe(d, "bad.toml", "../up", "none");
        let err = plan(&[bad], 0..1, None, &out).expect_err("a name with a slash");
        assert!(format!("{err:#}").contains("bad.toml"), "{err:#}");
    }

    #[test]
    fn run_status_finished_missing_and_stale() {
        let tmp = tmp_dir("sweep-status");
        let d = &tmp.0;
        let a = write_recipe(d, "a.toml", "alpha", "word");
        let runs = plan(std::slice::from_ref(&a), 0..2, None, &d.join("out")).expect("plan");
        let run = &runs[1];
        assert_eq!(run_status(run), RunStatus::Missing);

        std::fs::create_dir_all(&run.dir).expect("dir");
        let write = |m: &FinalMetrics, recipe: &Recipe| {
            std::fs::write(
                run.dir.join("final.json"),
                serde_json::to_vec(m).expect("json"),
            )
            .expect("final.json");
            std::fs::write(run.dir.join("recipe.toml"), recipe.to_toml().expect("toml"))
                .expect("recipe.toml");
        };
        let mut m = metrics("alpha", "word", 1, 0.8, 100.0);
        m.epochs = 3;
        write(&m, &run.recipe);
        assert_eq!(run_status(run), RunStatus::Finished(Box::new(m.clone())));
        assert_eq!(collect_finished(&runs).len(), 1);
        assert_eq!(collect_finished(&runs)[0].method, "word");

        // The report of another seed, or a recipe changed since: not this run.
        let other = FinalMetrics {
            seed: 0,
            ..m.clone()
        };
        write(&other, &run.recipe);
        assert!(matches!(run_status(run), RunStatus::Stale(why) if why.contains("seed 0")));
        let mut changed = run.recipe.clone();
        changed.train.lr = 0.5;
        write(&m, &changed);
        assert!(matches!(run_status(run), RunStatus::Stale(why) if why.contains("recipe.toml")));
        // A description is not training.
        let mut described = run.recipe.clone();
        described.description = "new words".into();
        write(&m, &described);
        assert!(matches!(run_status(run), RunStatus::Finished(_)));
        std::fs::write(run.dir.join("final.json"), "{ half").expect("write");
        assert!(matches!(run_status(run), RunStatus::Stale(why) if why.contains("malformed")));
    }

    fn assert_png(path: &Path) {
        let bytes = std::fs::read(path).expect("chart written");
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
        assert!(bytes.len() > 1024, "only {} bytes", bytes.len());
    }

    #[test]
    fn charts_of_many_one_and_no_rows() {
        let tmp = tmp_dir("sweep-chart");
        let rows = aggregate(&sample_runs());
        let many = tmp.0.join("many.png");
        plot_results(&many, &rows).expect("chart");
        assert_png(&many);
        let one = tmp.0.join("one.png");
        plot_results(&one, &rows[1..2]).expect("one bar");
        assert_png(&one);
        let none = tmp.0.join("none.png");
        plot_results(&none, &[]).expect("no bars");
        assert_png(&none);
        let mut odd = rows[0].clone();
        odd.method = "cutmix".into();
        odd.test_accuracy_mean = 1.0;
        odd.test_accuracy_std = f64::NAN;
        let weird = tmp.0.join("weird.png");
        plot_results(&weird, &[odd]).expect("odd values");
        assert_png(&weird);
        let err = plot_results(&tmp.0.join("chart.svg"), &rows).expect_err("svg");
        assert!(err.to_string().contains("chart.svg"), "{err}");
    }

    #[test]
    fn accuracy_axis_floor() {
        let rows = aggregate(&sample_runs());
        // Lowest whisker: 0.86 - 0.0141 = 0.8459; minus 0.05 = 0.7959, down to 0.75.
        assert!((accuracy_floor(&rows) - 0.75).abs() < 1e-12);
        assert_eq!(accuracy_floor(&[]), 0.0);
        let mut perfect = rows[0].clone();
        perfect.test_accuracy_mean = 1.0;
        perfect.test_accuracy_std = 0.0;
        assert!((accuracy_floor(&[perfect.clone()]) - 0.95).abs() < 1e-12);
        perfect.test_accuracy_mean = 0.02;
        perfect.test_accuracy_std = 0.1;
        assert_eq!(accuracy_floor(&[perfect]), 0.0);
    }
}
