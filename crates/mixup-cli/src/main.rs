//! `mixup`: train zoo recipes (one, or a sweep over recipes and seeds), evaluate and predict
//! with finished runs, time training steps (`mixup bench`), fetch data.

/// Tensor backends allocate and free large buffers at every operation: mimalloc, with purging
/// turned off at the start of `main` (`mixup_alloc`; README, Performance).
#[global_allocator]
static ALLOCATOR: mixup_alloc::MiMalloc = mixup_alloc::ALLOCATOR;

use std::{
    io::{BufRead, IsTerminal, Write},
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context;
use clap::{Parser, Subcommand};
use mixup_cli::{
    claim::Shard,
    data::encode,
    device::{select_device, select_devices},
    fetch,
    recipe::{Recipe, Task},
    run::{RecipeRun, default_run_dir, load_run, train_recipe},
    sweep,
};
use mixup_core::MixMethod;
use mixup_data::{Format, read_examples};
use mixup_train::{
    checkpoint,
    train::{Event, evaluate, predict_proba},
};

/// Parses a method name for clap (the message lists the known ones).
fn parse_method(s: &str) -> Result<MixMethod, String> {
    s.parse::<MixMethod>().map_err(|e| e.to_string())
}

#[derive(Parser)]
#[command(
    name = "mixup",
    version,
    about = "Train text classifiers with mixup-family augmentation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a recipe and write a run folder (or continue a killed run with --resume).
    Train {
        /// The recipe (e.g. models/textcnn-trec.toml).
        #[arg(long, required_unless_present = "resume")]
        recipe: Option<PathBuf>,
        /// Continue the run in this folder from its newest complete checkpoint, with the
        /// recipe saved there.
        #[arg(long, conflicts_with_all = ["recipe", "method", "seed", "epochs", "batch_size", "out"])]
        resume: Option<PathBuf>,
        /// Override the recipe's method: none, input, word, sen, manifold, tmix,
        /// mixup-transformer or ssmix.
        #[arg(long, value_parser = parse_method)]
        method: Option<MixMethod>,
        /// Override the recipe's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Override the recipe's number of epochs.
        #[arg(long)]
        epochs: Option<usize>,
        /// Override the recipe's train.batch_size.
        #[arg(long)]
        batch_size: Option<usize>,
        /// Override train.checkpoint_every: optimiser steps between checkpoints (0: at the
        /// end of each epoch only).
        #[arg(long)]
        checkpoint_every: Option<usize>,
        /// Backend: flex, ndarray, wgpu, cuda, tch, tch-cuda (default: BURN_DEVICE, else the
        /// first compiled in); GPUs take an index (cuda:1). A comma-separated list
        /// (cuda:0,cuda:1) trains data-parallel: each batch is split across the devices.
        #[arg(long)]
        device: Option<String>,
        /// Folder holding the dataset folders (else $MIXUP_DATA_DIR, else the cache).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Run folder (default runs/<recipe>-<method>-seed<seed>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Train every recipe with every seed (skipping finished runs) and tabulate the results.
    Sweep {
        /// Recipe files or glob patterns (quote them, e.g. 'models/*.toml'); several allowed.
        #[arg(long, num_args = 1.., required = true)]
        recipes: Vec<String>,
        /// Seeds per recipe.
        #[arg(long, default_value_t = 5)]
        seeds: u64,
        /// The first seed (seeds run from S to S + N - 1).
        #[arg(long, default_value_t = 0)]
        seed_start: u64,
        /// The sweep folder: one run folder per recipe and seed, and results.{md,csv,json,png}.
        #[arg(long)]
        out: PathBuf,
        /// Override every recipe's number of epochs.
        #[arg(long)]
        epochs: Option<usize>,
        /// Backend (as for train).
        #[arg(long)]
        device: Option<String>,
        /// Folder holding the dataset folders (else $MIXUP_DATA_DIR, else the cache).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Train nothing: only gather the runs already finished into the results.
        #[arg(long)]
        report_only: bool,
        /// Train only shard K of N (0 <= K < N) of the runs; default: the scheduler's index
        /// (Slurm array, Kubernetes Indexed Job), else every run.
        #[arg(long)]
        shard: Option<String>,
        /// The number of shards when the index comes from JOB_COMPLETION_INDEX (Kubernetes)
        /// or a Slurm array without SLURM_ARRAY_TASK_COUNT.
        #[arg(long)]
        shard_count: Option<usize>,
        /// Seconds without a heartbeat after which another process's claim on a run is taken
        /// over (its process is taken to be dead).
        #[arg(long, default_value_t = 600.0)]
        claim_timeout: f64,
    },
    /// Accuracy of a finished run on a labelled file (.tsv, .csv, .jsonl); entity F1 of a
    /// tagging run on a CoNLL file.
    Eval {
        /// The run folder.
        #[arg(long)]
        run: PathBuf,
        /// The labelled file.
        #[arg(long)]
        data: PathBuf,
        /// Backend (as for train).
        #[arg(long)]
        device: Option<String>,
        /// Also draw the confusion matrix as a heatmap into this .png (classification runs).
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Predict the label of each line of FILE (or of standard input); a tagging run tags
    /// each line's whitespace-separated tokens (CoNLL columns out).
    Predict {
        /// The run folder.
        #[arg(long)]
        run: PathBuf,
        /// One text a line; standard input when absent.
        file: Option<PathBuf>,
        /// Backend (as for train).
        #[arg(long)]
        device: Option<String>,
    },
    /// Time training steps on synthetic batches: samples/s, ms per step, peak memory.
    Bench(BenchArgs),
    /// Active sequence labelling with SeqMix: rounds of query, augment, retrain (ner recipes).
    NerAl {
        /// A recipe with task = "ner" (its [seqmix] section sets the augmentation).
        #[arg(long)]
        recipe: PathBuf,
        /// Output folder: al.csv, al.md, al.png.
        #[arg(long)]
        out: PathBuf,
        /// Seeds (arms are repeated for seeds START..START+N).
        #[arg(long, default_value_t = 3)]
        seeds: u64,
        /// The first seed (a study run in pieces: `--seeds 1 --seed-start 1`, ...).
        #[arg(long, default_value_t = 0)]
        seed_start: u64,
        /// `al.csv` files of earlier pieces of the same study whose rows join this run's in the
        /// table and chart (repeatable); this run's arms replace a piece's rows of the same arm
        /// and seed. Checked before anything runs: rounds, labelled counts, the seed-set
        /// setting where the rows show it; the recipe, policy, candidates and pool are not in an
        /// al.csv and are yours to match.
        #[arg(long = "merge", value_name = "AL_CSV")]
        merge: Vec<PathBuf>,
        /// Labelled sentences to start from.
        #[arg(long, default_value_t = 200)]
        seed_size: usize,
        /// Query rounds.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Sentences labelled per round.
        #[arg(long, default_value_t = 100)]
        query: usize,
        /// Unlabelled sentences scored per round (a random sample of the pool).
        #[arg(long, default_value_t = 2000)]
        candidates: usize,
        /// The unlabelled pool: this many training sentences beside the seed set (a seeded
        /// sample per seed; default: every other training sentence), as the SeqMix paper's
        /// pool size.
        #[arg(long)]
        pool: Option<usize>,
        /// Query policy: random, lc (least confidence) or nte (normalised token entropy).
        #[arg(long, default_value = "nte")]
        policy: String,
        /// Augmentations compared, comma-separated: none, whole, sub, label-constrained
        /// (default: none and the recipe's seqmix.variant).
        #[arg(long)]
        augment: Option<String>,
        /// Augment the seed set before the first point, as the SeqMix paper (its 200 + 40):
        /// an augmenting arm's round 0 trains on the seed set, makes SeqMix sentences with that
        /// tagger and reports a tagger retrained on both; false: round 0 is the seed set alone
        /// in every arm, augmented with round 1's queries.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        augment_seed_set: bool,
        /// Backend (as for train).
        #[arg(long)]
        device: Option<String>,
        /// Folder holding the dataset folders (else $MIXUP_DATA_DIR, else the cache).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Datasets.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
}

/// The options of `mixup bench`.
#[derive(clap::Args)]
struct BenchArgs {
    /// Take model, method, optimiser and learning rate from this recipe (needed for bert).
    #[arg(long, conflicts_with = "model")]
    recipe: Option<PathBuf>,
    /// Model with its default settings: textcnn, bilstm or transformer.
    #[arg(long, default_value = "textcnn")]
    model: String,
    /// Method (default: the recipe's, else none).
    #[arg(long, value_parser = parse_method)]
    method: Option<MixMethod>,
    /// Rows per step.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Tokens per row (every row is this long; no padding).
    #[arg(long, default_value_t = 24)]
    seq: usize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Vocabulary size of word-level models.
    #[arg(long, default_value_t = 8680)]
    vocab: usize,
    /// Number of classes.
    #[arg(long, default_value_t = 6)]
    classes: usize,
    /// Seed of the weights, batches and mixing.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Backend (as for train); several, comma-separated (flex,flex), time a data-parallel
    /// step: each batch split into one shard per device, each replica on its own thread and
    /// rayon pool (its share of the cores).
    #[arg(long)]
    device: Option<String>,
    /// Folder holding pretrained checkpoints (else $MIXUP_DATA_DIR, else the cache).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print one JSON object instead of a line of text.
    #[arg(long)]
    json: bool,
}

impl BenchArgs {
    fn spec(&self) -> mixup_cli::bench::BenchSpec {
        mixup_cli::bench::BenchSpec {
            batch: self.batch,
            seq: self.seq,
            steps: self.steps,
            warmup: self.warmup,
            vocab: self.vocab,
            classes: self.classes,
            seed: self.seed,
        }
    }
}

#[derive(Subcommand)]
enum DataCommand {
    /// Download a public dataset, check its SHA-256 and convert it into the cache.
    Fetch {
        /// Dataset name (trec).
        name: String,
        /// Cache folder (default $MIXUP_CACHE_DIR, else ~/.cache/mixup-zoo).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Base address to download from (default: the pinned public address).
        #[arg(long)]
        url: Option<String>,
    },
}

fn main() -> ExitCode {
    mixup_alloc::keep_freed_pages();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train {
            recipe,
            resume,
            method,
            seed,
            epochs,
            batch_size,
            checkpoint_every,
            device,
            data_dir,
            out,
        } => cmd_train(
            &TrainArgs {
                recipe,
                resume,
                method,
                seed,
                epochs,
                batch_size,
                checkpoint_every,
                out,
            },
            device.as_deref(),
            data_dir.as_deref(),
        ),
        Command::Sweep {
            recipes,
            seeds,
            seed_start,
            out,
            epochs,
            device,
            data_dir,
            report_only,
            shard,
            shard_count,
            claim_timeout,
        } => cmd_sweep(&SweepArgs {
            recipes: &recipes,
            seeds,
            seed_start,
            out: &out,
            epochs,
            device: device.as_deref(),
            data_dir: data_dir.as_deref(),
            report_only,
            shard: shard.as_deref(),
            shard_count,
            claim_timeout,
        }),
        Command::Eval {
            run,
            data,
            device,
            plot,
        } => cmd_eval(&run, &data, device.as_deref(), plot.as_deref()),
        Command::Predict { run, file, device } => {
            cmd_predict(&run, file.as_deref(), device.as_deref())
        }
        Command::Bench(args) => cmd_bench(&args),
        Command::NerAl {
            recipe,
            out,
            seeds,
            seed_start,
            merge,
            seed_size,
            rounds,
            query,
            candidates,
            pool,
            policy,
            augment,
            augment_seed_set,
            device,
            data_dir,
        } => cmd_ner_al(
            &recipe,
            &out,
            (seeds, seed_start, &merge),
            (seed_size, rounds, query, candidates, pool),
            &policy,
            (augment.as_deref(), augment_seed_set),
            device.as_deref(),
            data_dir.as_deref(),
        ),
        Command::Data {
            command:
                DataCommand::Fetch {
                    name,
                    cache_dir,
                    url,
                },
        } => cmd_fetch(&name, cache_dir, url),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The folder of a ner recipe's dataset (never fetched: no CoNLL download is pinned).
fn ner_data_dir(recipe: &Recipe, data_dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    mixup_cli::data::resolve_dataset(
        &recipe.data.dataset,
        data_dir,
        &fetch::default_cache_dir(),
        |_, _| {},
    )
}

#[allow(clippy::too_many_arguments)]
fn cmd_ner_al(
    recipe_path: &Path,
    out: &Path,
    (seeds, seed_start, merge): (u64, u64, &[PathBuf]),
    (seed_size, rounds, query, candidates, pool): (usize, usize, usize, usize, Option<usize>),
    policy: &str,
    (augment, augment_seed_set): (Option<&str>, bool),
    device: Option<&str>,
    data_dir: Option<&Path>,
) -> anyhow::Result<()> {
    use mixup_cli::ner_al::{
        AlSpec, QueryPolicy, merge_pieces, parse_rows_csv, plot_rows, rows_csv, rows_markdown,
        run_active_learning,
    };
    let recipe = Recipe::load(recipe_path)?;
    if recipe.task != Task::Ner {
        anyhow::bail!(
            "{}: task = \"classify\"; ner-al needs a task = \"ner\" recipe",
            recipe_path.display()
        );
    }
    let policy = QueryPolicy::parse(policy).map_err(|e| anyhow::anyhow!("--policy: {e}"))?;
    let default_augment = format!(
        "none,{}",
        recipe.seqmix.clone().unwrap_or_default().variant.name()
    );
    let augments = augment
        .unwrap_or(&default_augment)
        .split(',')
        .map(|a| match a.trim() {
            "none" => Ok(None),
            v => mixup_core::SeqMixVariant::parse(v)
                .map(Some)
                .map_err(|e| anyhow::anyhow!("--augment: {e}")),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let seed_end = seed_start
        .checked_add(seeds)
        .ok_or_else(|| anyhow::anyhow!("--seed-start {seed_start} + --seeds {seeds} overflows"))?;
    // Earlier pieces are read (and checked) before any training.
    let pieces = merge
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("--merge: cannot read {}", p.display()))?;
            Ok((p.clone(), parse_rows_csv(&text, p)?))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let spec = AlSpec {
        seed_size,
        rounds,
        query,
        candidates,
        pool,
        policy,
        seeds: (seed_start..seed_end).collect(),
        augments,
        augment_seed_set,
    };
    // A piece of another protocol is refused before anything is loaded or trained.
    merge_pieces(&pieces, &spec, Vec::new())?;
    let (device, device_name) = select_device(device)?;
    let dir = ner_data_dir(&recipe, data_dir)?;
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the output folder {}", out.display()))?;
    let data = mixup_cli::ner::load_ner(&dir, &recipe)?;
    // Each arm's state is saved after every round under OUT/state/, so a killed study
    // continues where it stopped.
    let bert = match &recipe.model {
        mixup_cli::recipe::ModelSection::Bert(m) => Some(mixup_cli::run::prepare_bert(
            m,
            &recipe,
            data_dir,
            &mixup_cli::fetch::default_cache_dir(),
        )?),
        _ => None,
    };
    let rows = run_active_learning(
        &recipe,
        &data,
        &spec,
        &device,
        bert.as_ref(),
        Some(out),
        &mut |l: &str| println!("{l}"),
    )?;
    let rows = merge_pieces(&pieces, &spec, rows)?;
    let mut all_seeds: Vec<u64> = rows.iter().map(|r| r.seed).collect();
    all_seeds.sort_unstable();
    all_seeds.dedup();
    let merged_note = if pieces.is_empty() {
        String::new()
    } else {
        format!(
            " With the rows of earlier pieces ({}), run by their own commands.",
            pieces
                .iter()
                .map(|(p, _)| format!("`{}`", p.display()))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    // args_os: a path that is not UTF-8 must not fail the report after all the training.
    let header = format!(
        "# Active learning: {} on {}\n\n`{}` on {device_name}; policy {policy:?}, seed set \
         {seed_size}, {rounds} rounds of {query} (from {candidates} candidates{}), seeds {:?} \
         over all arms (each row's count in its seeds column).{merged_note} Entity F1 mean ± \
         sample std over seeds.",
        recipe.name,
        recipe.data.dataset,
        command_line(),
        pool.map_or(String::new(), |p| format!(" of a pool of {p}")),
        all_seeds
    );
    mixup_cli::run::write_atomic(&out.join("al.csv"), rows_csv(&rows).as_bytes())?;
    mixup_cli::run::write_atomic(&out.join("al.md"), rows_markdown(&rows, &header).as_bytes())?;
    plot_rows(
        &rows,
        &out.join("al.png"),
        &format!("{}: entity F1 by labelled sentences", recipe.name),
    )?;
    println!("{}", rows_markdown(&rows, &header));
    Ok(())
}

fn cmd_bench(args: &BenchArgs) -> anyhow::Result<()> {
    use mixup_cli::bench::{bench_recipe, default_recipe};
    let method = args.method;
    let mut recipe = match &args.recipe {
        Some(path) => Recipe::load(path)?,
        None => default_recipe(&args.model, method.unwrap_or_default().name())?,
    };
    if let (Some(m), Some(path)) = (method, &args.recipe) {
        recipe.method.kind = m;
        recipe.validate(path)?;
    }
    let (devices, names): (Vec<burn::tensor::Device>, Vec<String>) =
        select_devices(args.device.as_deref())?.into_iter().unzip();
    let r = bench_recipe(
        &recipe,
        &args.spec(),
        &devices,
        &names.join(","),
        args.data_dir.as_deref(),
    )?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{} {} on {}: batch {} x {} tokens, {:.0} samples/s, {:.2} ms/step (median of {}; \
             min {:.2}, max {:.2}), {} parameters, peak host memory {}",
            r.model,
            r.method,
            r.device,
            r.batch,
            r.seq,
            r.samples_per_s,
            r.ms_per_step_median,
            r.steps,
            r.ms_per_step_min,
            r.ms_per_step_max,
            r.parameters,
            r.peak_host_memory_mib
                .map_or_else(|| "n/a".to_string(), |m| format!("{m:.0} MiB"))
        );
    }
    Ok(())
}

/// The options of `mixup train` that choose what to train.
struct TrainArgs {
    recipe: Option<PathBuf>,
    resume: Option<PathBuf>,
    method: Option<MixMethod>,
    seed: Option<u64>,
    epochs: Option<usize>,
    batch_size: Option<usize>,
    checkpoint_every: Option<usize>,
    out: Option<PathBuf>,
}

fn cmd_train(
    args: &TrainArgs,
    device: Option<&str>,
    data_dir: Option<&Path>,
) -> anyhow::Result<()> {
    let (recipe, recipe_path, out) = train_target(args)?;
    let (device, device_name, replicas) = train_devices(device)?;
    if recipe.task == Task::Ner {
        if !replicas.is_empty() {
            anyhow::bail!("--device: ner runs train on one device; give one, not a list");
        }
        if args.resume.is_some() {
            anyhow::bail!("--resume: ner runs do not write checkpoints yet; train them again");
        }
        return train_ner(&recipe, &device, &device_name, data_dir, &out);
    }
    let tty = std::io::stdout().is_terminal();
    let mut on_event = |event: &Event| print_event(event, tty);
    let r = train_recipe(
        &RecipeRun {
            recipe: &recipe,
            recipe_path: &recipe_path,
            device,
            device_name,
            replicas,
            data_dir,
            out: &out,
            log_every: if tty { 5 } else { 25 },
            resume: args.resume.is_some(),
        },
        &mut |line: &str| println!("{line}"),
        &mut on_event,
    )?;
    println!(
        "done: test accuracy {:.4} (loss {:.4}), {:.0} train samples/s, {:.1} s in all; run folder {}",
        r.test_accuracy,
        r.test_loss,
        r.train_samples_per_s,
        r.total_seconds,
        out.display()
    );
    Ok(())
}

/// What `mixup train` trains: the recipe with the command line's overrides (or the one saved
/// in the run folder to resume), its file, and the run folder.
fn train_target(args: &TrainArgs) -> anyhow::Result<(Recipe, PathBuf, PathBuf)> {
    let (mut recipe, recipe_path, out) = match (&args.resume, &args.recipe) {
        (Some(dir), _) => {
            let path = dir.join("recipe.toml");
            if !path.is_file() {
                anyhow::bail!(
                    "--resume {}: no recipe.toml there; is it a run folder of `mixup train`?",
                    dir.display()
                );
            }
            if dir.join("final.json").is_file() {
                anyhow::bail!(
                    "--resume {}: this run is already finished (final.json is there)",
                    dir.display()
                );
            }
            if checkpoint::latest(dir, &mut |_| {}).is_none() {
                anyhow::bail!(
                    "--resume {}: no complete checkpoint in {}; start the run again with \
                     --recipe {}",
                    dir.display(),
                    dir.join(checkpoint::DIR).display(),
                    path.display()
                );
            }
            (Recipe::load(&path)?, path, dir.clone())
        }
        (None, Some(path)) => {
            let mut recipe = Recipe::load(path)?;
            if let Some(m) = args.method {
                recipe.method.kind = m;
            }
            if let Some(s) = args.seed {
                recipe.train.seed = s;
            }
            if let Some(e) = args.epochs {
                recipe.train.epochs = e;
            }
            if let Some(b) = args.batch_size {
                recipe.train.batch_size = b;
            }
            let out = args.out.clone().unwrap_or_else(|| default_run_dir(&recipe));
            (recipe, path.clone(), out)
        }
        (None, None) => anyhow::bail!("give --recipe FILE, or --resume RUN_DIR"),
    };
    if let Some(n) = args.checkpoint_every {
        recipe.train.checkpoint_every = n;
    }
    recipe.validate(Path::new("(recipe with command-line overrides)"))?;
    Ok((recipe, recipe_path, out))
}

/// The devices of `--device`: the first, the names of all (comma-separated), and the others
/// (data-parallel replicas).
fn train_devices(
    device: Option<&str>,
) -> anyhow::Result<(burn::tensor::Device, String, Vec<burn::tensor::Device>)> {
    let mut devices = select_devices(device)?;
    let (device, first) = devices.remove(0);
    let replicas: Vec<burn::tensor::Device> = devices.iter().map(|(d, _)| d.clone()).collect();
    let name = std::iter::once(first)
        .chain(devices.into_iter().map(|(_, n)| n))
        .collect::<Vec<_>>()
        .join(",");
    Ok((device, name, replicas))
}

/// `mixup train` of a `task = "ner"` recipe.
fn train_ner(
    recipe: &Recipe,
    device: &burn::tensor::Device,
    device_name: &str,
    data_dir: Option<&Path>,
    out: &Path,
) -> anyhow::Result<()> {
    let dir = ner_data_dir(recipe, data_dir)?;
    let r = mixup_cli::ner::train_ner_recipe(
        recipe,
        &dir,
        data_dir,
        device,
        device_name,
        out,
        &mut |line: &str| println!("{line}"),
    )?;
    println!(
        "done: test entity F1 {:.4} (P {:.4}, R {:.4}), {:.0} train sentences/s, {:.1} s in \
         all; run folder {}",
        r.test.micro.f1,
        r.test.micro.precision,
        r.test.micro.recall,
        r.train_sentences_per_s,
        r.total_seconds,
        out.display()
    );
    for (kind, s) in &r.test.per_type {
        println!(
            "  {kind}: P {:.4} R {:.4} F1 {:.4} ({} gold)",
            s.precision, s.recall, s.f1, s.gold
        );
    }
    Ok(())
}

fn print_event(event: &Event, tty: bool) {
    let mut stdout = std::io::stdout().lock();
    match event {
        Event::Step {
            epoch,
            step,
            steps,
            loss,
            acc,
            samples_per_s,
        } => {
            let line = format!(
                "epoch {epoch} step {step}/{steps} loss {loss:.4} acc(dominant) {acc:.4} \
                 {samples_per_s:.0} samples/s"
            );
            if tty {
                let _ = write!(stdout, "\r{line}\x1b[K");
                let _ = stdout.flush();
            } else {
                let _ = writeln!(stdout, "{line}");
            }
        }
        Event::Epoch(m) => {
            if tty {
                let _ = write!(stdout, "\r\x1b[K");
            }
            let dev = m
                .dev_acc
                .map(|a| format!(" dev acc {a:.4}"))
                .unwrap_or_default();
            let test = match (m.test_acc, m.test_loss) {
                (Some(a), Some(l)) => format!(" test acc {a:.4} loss {l:.4}"),
                _ => " (not evaluated: train.eval_every)".into(),
            };
            let _ = writeln!(
                stdout,
                "epoch {} done: train loss {:.4} acc(dominant) {:.4}{dev}{test} \
                 ({:.1} s, {:.0} samples/s{})",
                m.epoch,
                m.train_loss,
                m.train_acc_dominant,
                m.train_seconds,
                m.samples_per_s,
                if m.mixing { ", mixing" } else { "" }
            );
        }
        Event::Checkpoint { path, global_step } => {
            if !tty {
                let _ = writeln!(
                    stdout,
                    "checkpoint at step {global_step}: {}",
                    path.display()
                );
            }
        }
    }
}

/// The options of `mixup sweep`.
struct SweepArgs<'a> {
    recipes: &'a [String],
    seeds: u64,
    seed_start: u64,
    out: &'a Path,
    epochs: Option<usize>,
    device: Option<&'a str>,
    data_dir: Option<&'a Path>,
    report_only: bool,
    shard: Option<&'a str>,
    shard_count: Option<usize>,
    claim_timeout: f64,
}

fn cmd_sweep(args: &SweepArgs<'_>) -> anyhow::Result<()> {
    let paths = sweep::expand_patterns(args.recipes)?;
    let end = args.seed_start.checked_add(args.seeds).ok_or_else(|| {
        anyhow::anyhow!(
            "--seed-start {} --seeds {}: seeds past the largest u64",
            args.seed_start,
            args.seeds
        )
    })?;
    let plan = sweep::plan(&paths, args.seed_start..end, args.epochs, args.out)?;
    let mut failed = Vec::new();
    if !args.report_only {
        if !(args.claim_timeout.is_finite() && args.claim_timeout > 0.0) {
            anyhow::bail!(
                "--claim-timeout {}: must be a positive number of seconds",
                args.claim_timeout
            );
        }
        let shard = match args.shard {
            Some(s) => Some(Shard::parse(s).map_err(anyhow::Error::msg)?),
            None => match Shard::from_env(|k| std::env::var(k).ok(), args.shard_count)
                .map_err(anyhow::Error::msg)?
            {
                Some((s, from)) => {
                    println!("sweep: shard {s} (from the {from} index)");
                    Some(s)
                }
                None => None,
            },
        };
        let (device, device_name) = select_device(args.device)?;
        println!(
            "sweep: {} recipe(s) x {} seed(s) = {} runs on {device_name}, into {}{}",
            paths.len(),
            args.seeds,
            plan.len(),
            args.out.display(),
            shard.map_or(String::new(), |s| format!(", shard {s}"))
        );
        let owner = mixup_cli::claim::owner_name();
        let outcome = sweep::run_sweep(
            &plan,
            &sweep::SweepSetup {
                device,
                device_name,
                data_dir: args.data_dir,
                log_every: 25,
                shard,
                owner,
                claim_timeout: std::time::Duration::from_secs_f64(args.claim_timeout),
            },
            &mut |line: &str| println!("{line}"),
            // Epoch lines only: a sweep's log is read afterwards, not watched step by step.
            &mut |event: &Event| {
                if let Event::Epoch(_) = event {
                    print_event(event, false);
                }
            },
        );
        println!(
            "sweep: {} trained, {} skipped (finished), {} claimed by other processes, {} \
             failed{}",
            outcome.trained,
            outcome.skipped,
            outcome.busy,
            outcome.failed.len(),
            if shard.is_some() {
                format!(", {} of other shards", outcome.other_shards)
            } else {
                String::new()
            }
        );
        failed = outcome.failed;
    }
    let written = sweep::write_results(args.out, &plan, &command_line())?;
    println!(
        "results ({} of {} runs finished): {}",
        written.finished,
        written.planned,
        written.markdown.display()
    );
    if !written.table.is_empty() {
        println!();
        print!("{}", written.table);
    }
    if !failed.is_empty() {
        let list: Vec<String> = failed
            .iter()
            .map(|(run, e)| format!("{run}: {e}"))
            .collect();
        anyhow::bail!(
            "{} of {} runs failed:\n{}",
            failed.len(),
            plan.len(),
            list.join("\n")
        );
    }
    Ok(())
}

/// This process's command line as one could type it again: the program by its file name,
/// arguments quoted for a POSIX shell where they need it.
fn command_line() -> String {
    let mut args = std::env::args_os();
    let program = args
        .next()
        .and_then(|p| {
            Path::new(&p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "mixup".to_string());
    std::iter::once(program)
        .chain(args.map(|a| shell_quote(&a.to_string_lossy())))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `s` as one POSIX shell word.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The recipe of a run folder, to tell a tagging run from a classifier's.
fn run_recipe(run: &Path) -> anyhow::Result<Recipe> {
    if !run.is_dir() {
        anyhow::bail!("{}: no such run folder", run.display());
    }
    Ok(Recipe::load(&run.join("recipe.toml"))?)
}

fn cmd_eval(
    run: &Path,
    data: &Path,
    device: Option<&str>,
    plot: Option<&Path>,
) -> anyhow::Result<()> {
    let (device, _) = select_device(device)?;
    let recipe = run_recipe(run)?;
    if recipe.task == Task::Ner {
        if let Some(p) = plot {
            anyhow::bail!(
                "--plot {}: the confusion matrix is drawn for classification runs; this is a \
                 tagging run (its per-type scores are in the JSON)",
                p.display()
            );
        }
        let tagger = mixup_cli::ner::load_tagger_run(run, recipe, &device)?;
        let (sentences, scores) = tagger.evaluate(data, &device)?;
        let per_type: serde_json::Map<String, serde_json::Value> = scores
            .per_type
            .iter()
            .map(|(k, s)| {
                let v = serde_json::json!({
                    "precision": s.precision, "recall": s.recall, "f1": s.f1, "gold": s.gold,
                });
                (k.clone(), v)
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "run": tagger.dir.display().to_string(),
                "data": data.display().to_string(),
                "sentences": sentences,
                "entity_f1": scores.micro.f1,
                "precision": scores.micro.precision,
                "recall": scores.micro.recall,
                "per_type": per_type,
            })
        );
        return Ok(());
    }
    let run = load_run(run, &device)?;
    let format = Format::from_path(data).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: unknown format (use .tsv, .csv or .jsonl)",
            data.display()
        )
    })?;
    let examples = read_examples(data, &format)?;
    let max_len = run.recipe.data.max_len;
    let encoded = encode(&examples, data, &run.tokenizer, &run.labels, max_len)?;
    let (acc, loss) = evaluate(
        &run.model,
        &encoded,
        run.recipe.train.eval_batch_size,
        max_len,
        run.labels.len(),
        &device,
    );
    let probs = predict_proba(
        &run.model,
        &encoded,
        run.recipe.train.eval_batch_size,
        max_len,
        &device,
    )?;
    let predicted: Vec<usize> = probs.iter().map(|p| most_likely(p).0).collect();
    let truth: Vec<usize> = encoded.iter().map(|e| e.label).collect();
    let scores = mixup_train::metrics::class_scores(&truth, &predicted, run.labels.len());
    let names = run.labels.names();
    let per_class: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .zip(&scores.per_class)
        .map(|(name, c)| {
            (
                name.clone(),
                serde_json::json!({
                    "precision": c.precision, "recall": c.recall, "f1": c.f1,
                    "support": c.support,
                }),
            )
        })
        .collect();
    if let Some(p) = plot {
        let title = format!(
            "{}: confusion on {} (accuracy {acc:.4}, macro-F1 {:.4})",
            run.recipe.name,
            data.file_name().map_or_else(
                || data.display().to_string(),
                |n| n.to_string_lossy().into_owned()
            ),
            scores.macro_f1
        );
        mixup_cli::plot::plot_confusion(p, &title, names, &scores.confusion)?;
    }
    println!(
        "{}",
        serde_json::json!({
            "run": run.dir.display().to_string(),
            "data": data.display().to_string(),
            "examples": encoded.len(),
            "accuracy": acc,
            "loss": loss,
            "macro_f1": scores.macro_f1,
            "per_class": per_class,
            "confusion": {
                "labels": names,
                "rows": "true class",
                "columns": "predicted class",
                "matrix": scores.confusion,
            },
        })
    );
    Ok(())
}

fn cmd_predict(run: &Path, file: Option<&Path>, device: Option<&str>) -> anyhow::Result<()> {
    let (device, _) = select_device(device)?;
    let recipe = run_recipe(run)?;
    let lines = input_lines(file)?;
    if recipe.task == Task::Ner {
        let tagger = mixup_cli::ner::load_tagger_run(run, recipe, &device)?;
        let sentences: Vec<Vec<String>> = lines
            .iter()
            .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .filter(|t| !t.is_empty())
            .collect();
        let tags = tagger.tag(&sentences, &device)?;
        let mut stdout = std::io::stdout().lock();
        for (tokens, tags) in sentences.iter().zip(&tags) {
            for (token, tag) in tokens.iter().zip(tags) {
                writeln!(stdout, "{token}\t{tag}")?;
            }
            writeln!(stdout)?;
        }
        return Ok(());
    }
    let run = load_run(run, &device)?;
    // One text a line, or a pair `text_a<TAB>text_b`.
    let texts: Vec<(usize, &str)> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    let max_len = run.recipe.data.max_len;
    let source = file.unwrap_or(Path::new("(standard input)"));
    let encoded: Vec<mixup_data::EncodedExample> = texts
        .iter()
        .map(|&(line, t)| {
            let (a, b) = match t.split_once('\t') {
                Some((a, b)) => (a.trim(), Some(b.trim())),
                None => (t, None),
            };
            Ok(mixup_data::EncodedExample {
                ids: run.tokenizer.encode_text(a, b, max_len, source, line)?,
                label: 0,
            })
        })
        .collect::<Result<_, mixup_data::DataError>>()?;
    let probs = predict_proba(
        &run.model,
        &encoded,
        run.recipe.train.eval_batch_size,
        max_len,
        &device,
    )?;
    let mut stdout = std::io::stdout().lock();
    for ((_, text), p) in texts.iter().zip(probs) {
        let (best, prob) = most_likely(&p);
        let label = run.labels.name(best).unwrap_or("?");
        writeln!(stdout, "{label}\t{prob:.4}\t{text}")?;
    }
    Ok(())
}

/// The most likely class of a probability row and its probability (`(0, 0.0)` when empty).
fn most_likely(p: &[f32]) -> (usize, f32) {
    p.iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 0.0))
}

/// The lines of `file`, or of standard input.
fn input_lines(file: Option<&Path>) -> anyhow::Result<Vec<String>> {
    Ok(match file {
        Some(p) => {
            let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            let text = String::from_utf8(bytes)
                .map_err(|e| anyhow::anyhow!("{}: not valid UTF-8 ({e})", p.display()))?;
            text.lines().map(str::to_string).collect()
        }
        None => std::io::stdin()
            .lock()
            .lines()
            .collect::<Result<_, _>>()
            .context("reading standard input")?,
    })
}

fn cmd_fetch(name: &str, cache_dir: Option<PathBuf>, url: Option<String>) -> anyhow::Result<()> {
    if !fetch::KNOWN_DATASETS.contains(&name) {
        return Err(fetch::FetchError::UnknownDataset(name.to_string()).into());
    }
    let cache = cache_dir.unwrap_or_else(fetch::default_cache_dir);
    let url = url.unwrap_or_else(|| fetch::TREC_BASE_URL.to_string());
    println!("fetching {name} from {url} into {}", cache.display());
    let dir = fetch::fetch_dataset(name, &url, &cache)?;
    println!("{name} is ready in {} (checksums verified)", dir.display());
    Ok(())
}
