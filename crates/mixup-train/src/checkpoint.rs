//! Training checkpoints: everything a run needs to continue exactly where it stopped.
//!
//! A checkpoint is one file, `<run>/checkpoints/step-<global step>.ckpt`:
//!
//! ```text
//! "MIXUPCK1"                      8 bytes, format magic
//! n_state  (u64, little endian)   then n_state bytes: the TrainState as JSON
//! n_model  (u64)                  then the model's Burn record (burnpack bytes)
//! n_optim  (u64)                  then the optimiser's record (burnpack bytes)
//! SHA-256 of everything above     32 bytes
//! ```
//!
//! It is written to a temporary file beside it ([`crate::atomic::temp_path`]), flushed to disk (`fsync`), renamed into place, and the
//! folder is synced, so a reader sees either a whole checkpoint or none. The two newest are
//! kept. [`latest`] returns the newest one whose length and checksum verify, and warns about
//! every newer file it had to skip (truncated, corrupt, or from another format).
//!
//! The RNG needs no saved state: shuffles, partner orders and mixing draws are derived from
//! `(seed, epoch, step)`, and the device's RNG (dropout) is re-seeded from the same tuple
//! before every step (see [`mod@crate::train`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{TrainError, atomic::write_atomic, error::Result, train::EpochMetrics};

/// Checkpoints of three sections (state, model, optimiser).
const MAGIC: &[u8; 8] = b"MIXUPCK1";
/// Checkpoints with a fourth: the model of the best dev epoch so far (`train.select =
/// "best-dev"`).
const MAGIC_BEST: &[u8; 8] = b"MIXUPCK2";
/// Checkpoints kept in a run folder.
const KEEP: usize = 2;
/// The folder of a run's checkpoints.
pub const DIR: &str = "checkpoints";

/// Where the training loop stands, in a form that survives the process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Recipe name (a resume checks it).
    pub recipe: String,
    /// Seed (a resume checks it).
    pub seed: u64,
    /// The 1-based epoch to continue (one past the last when training is complete).
    pub epoch: usize,
    /// Batches of that epoch already trained.
    pub next_step: usize,
    /// Optimiser steps taken in the whole run (the learning-rate schedule's position).
    pub global_step: usize,
    /// Examples of the current epoch trained so far.
    pub seen: usize,
    /// The epoch's running loss sum, as the bits of the f32 the device held (exact on resume).
    pub loss_sum_bits: Option<u32>,
    /// The epoch's running count of dominant-label hits.
    pub hits_sum: Option<i64>,
    /// Seconds of training already spent in the current epoch.
    pub epoch_train_seconds: f64,
    /// Metrics of the finished epochs.
    pub epochs: Vec<EpochMetrics>,
    /// Wall-clock seconds of the run before this checkpoint.
    pub elapsed_seconds: f64,
    /// The epoch of the best dev accuracy so far, when the run selects on dev (its model is
    /// [`Checkpoint::best_model`]).
    #[serde(default)]
    pub best_epoch: Option<usize>,
}

/// A whole checkpoint in memory.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The loop's position and running sums.
    pub state: TrainState,
    /// The model's record (`Module::into_record().into_bytes()`).
    pub model: Vec<u8>,
    /// The optimiser's record (`ModuleOptimizer::into_bytes()`).
    pub optim: Vec<u8>,
    /// The record of the best dev epoch's model, when the run selects on dev.
    pub best_model: Option<Vec<u8>>,
}

fn encode(ck: &Checkpoint) -> Result<Vec<u8>> {
    let state = serde_json::to_vec(&ck.state)
        .map_err(|e| TrainError::Checkpoint(format!("serialising the loop state: {e}")))?;
    let best = ck.best_model.as_deref();
    let mut out = Vec::with_capacity(
        8 + 32 + state.len() + ck.model.len() + ck.optim.len() + best.map_or(0, <[u8]>::len) + 32,
    );
    out.extend_from_slice(if best.is_some() { MAGIC_BEST } else { MAGIC });
    for part in [&state[..], &ck.model[..], &ck.optim[..]]
        .into_iter()
        .chain(best)
    {
        out.extend_from_slice(&(part.len() as u64).to_le_bytes());
        out.extend_from_slice(part);
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    Ok(out)
}

/// Decodes and verifies a checkpoint file's bytes; the error says what is wrong.
fn decode(bytes: &[u8]) -> Result<Checkpoint, String> {
    if bytes.len() < MAGIC.len() + 32 {
        return Err(format!(
            "{} bytes: too short to be a checkpoint",
            bytes.len()
        ));
    }
    let sections: &[&str] = if &bytes[..8] == MAGIC {
        &["state", "model", "optimiser"]
    } else if &bytes[..8] == MAGIC_BEST {
        &["state", "model", "optimiser", "best model"]
    } else {
        return Err("not a mixup-zoo checkpoint (bad magic)".into());
    };
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != digest {
        return Err("checksum mismatch (truncated or corrupt)".into());
    }
    let mut rest = &body[8..];
    let mut parts = Vec::with_capacity(4);
    for &name in sections {
        if rest.len() < 8 {
            return Err(format!("the {name} section is missing"));
        }
        let (len, tail) = rest.split_at(8);
        let len = u64::from_le_bytes(len.try_into().map_err(|_| "bad length".to_string())?);
        let len = usize::try_from(len).map_err(|_| format!("the {name} section is too long"))?;
        if tail.len() < len {
            return Err(format!("the {name} section is cut short"));
        }
        let (part, tail) = tail.split_at(len);
        parts.push(part.to_vec());
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(format!(
            "{} unexpected bytes after the sections",
            rest.len()
        ));
    }
    let best_model = (sections.len() == 4).then(|| parts.pop().unwrap_or_default());
    let optim = parts.pop().unwrap_or_default();
    let model = parts.pop().unwrap_or_default();
    let state = serde_json::from_slice(&parts.pop().unwrap_or_default())
        .map_err(|e| format!("the state does not parse: {e}"))?;
    Ok(Checkpoint {
        state,
        model,
        optim,
        best_model,
    })
}

fn file_name(global_step: usize) -> String {
    format!("step-{global_step:09}.ckpt")
}

/// The step number in a checkpoint file name, for ordering.
fn step_of(path: &Path) -> Option<usize> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix("step-")?
        .strip_suffix(".ckpt")?
        .parse()
        .ok()
}

/// The checkpoint files of `run_dir`, newest first.
fn files(run_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(run_dir.join(DIR)) else {
        return Vec::new();
    };
    let mut v: Vec<(usize, PathBuf)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| step_of(&p).map(|s| (s, p)))
        .collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.0));
    v.into_iter().map(|(_, p)| p).collect()
}

/// Writes `ck` atomically into `run_dir/checkpoints/` and removes all but the two newest.
/// Returns the file written.
///
/// # Errors
///
/// A file that cannot be created, written, synced or renamed, named.
pub fn write(run_dir: &Path, ck: &Checkpoint) -> Result<PathBuf> {
    let dir = run_dir.join(DIR);
    std::fs::create_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
    let path = dir.join(file_name(ck.state.global_step));
    write_atomic(&path, &encode(ck)?)?;
    for old in files(run_dir).into_iter().skip(KEEP) {
        let _ = std::fs::remove_file(old);
    }
    Ok(path)
}

/// The newest checkpoint of `run_dir` that verifies, with its file; `warn` hears about each
/// newer file skipped and why. `None` when the run has no usable checkpoint.
pub fn latest(run_dir: &Path, warn: &mut dyn FnMut(&str)) -> Option<(PathBuf, Checkpoint)> {
    for path in files(run_dir) {
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| decode(&b))
        {
            Ok(ck) => return Some((path, ck)),
            Err(why) => warn(&format!(
                "warning: skipping checkpoint {}: {why}; trying the previous one",
                path.display()
            )),
        }
    }
    None
}

/// Removes a run's checkpoints (once its final model is written).
pub fn remove_all(run_dir: &Path) {
    let _ = std::fs::remove_dir_all(run_dir.join(DIR));
}

/// The file helpers, for the loop's tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// The checkpoint files of a run folder, newest first.
    pub(crate) fn files(run_dir: &Path) -> Vec<PathBuf> {
        super::files(run_dir)
    }

    /// A checkpoint file, decoded.
    pub(crate) fn read(path: &Path) -> Checkpoint {
        let bytes = std::fs::read(path).expect("checkpoint file");
        decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::tmp_dir;

    fn ck(step: usize) -> Checkpoint {
        Checkpoint {
            state: TrainState {
                recipe: "r".into(),
                seed: 3,
                epoch: 2,
                next_step: 5,
                global_step: step,
                seen: 320,
                loss_sum_bits: Some(1.5f32.to_bits()),
                hits_sum: Some(17),
                epoch_train_seconds: 1.25,
                epochs: Vec::new(),
                elapsed_seconds: 9.0,
                best_epoch: None,
            },
            model: vec![1, 2, 3, step as u8],
            optim: vec![9; 100],
            best_model: None,
        }
    }

    /// A checkpoint with the best dev epoch's model round-trips it; one without has none.
    #[test]
    fn the_best_model_section_round_trips() {
        let mut with = ck(7);
        with.state.best_epoch = Some(2);
        with.best_model = Some(vec![4, 5, 6]);
        let back = decode(&encode(&with).expect("encode")).expect("decode");
        assert_eq!(back.best_model.as_deref(), Some(&[4u8, 5, 6][..]));
        assert_eq!(back.state.best_epoch, Some(2));
        assert_eq!((back.model, back.optim), (with.model, with.optim));
        let plain = encode(&ck(7)).expect("encode");
        assert_eq!(&plain[..8], MAGIC, "old format when there is no best model");
        assert_eq!(decode(&plain).expect("decode").best_model, None);
    }

    #[test]
    fn round_trips_keeps_two_and_falls_back_past_damaged_files() {
        let t = tmp_dir("ckpt");
        for step in [10, 20, 30] {
            write(&t.0, &ck(step)).expect("write");
        }
        let names: Vec<_> = files(&t.0).iter().filter_map(|p| step_of(p)).collect();
        assert_eq!(names, vec![30, 20], "keeps the two newest");
        let mut warnings = Vec::new();
        let (path, got) = latest(&t.0, &mut |w| warnings.push(w.to_string())).expect("one");
        assert_eq!(step_of(&path), Some(30));
        assert_eq!(got.state, ck(30).state);
        assert_eq!((got.model, got.optim), (ck(30).model, ck(30).optim));
        assert!(warnings.is_empty());

        // Truncate the newest: the previous one is used, with a warning naming the file.
        let newest = files(&t.0)[0].clone();
        let bytes = std::fs::read(&newest).expect("read");
        std::fs::write(&newest, &bytes[..bytes.len() - 7]).expect("truncate");
        let (path, got) = latest(&t.0, &mut |w| warnings.push(w.to_string())).expect("older");
        assert_eq!((step_of(&path), got.state.global_step), (Some(20), 20));
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("step-000000030.ckpt"),
            "{}",
            warnings[0]
        );
        assert!(warnings[0].contains("checksum"), "{}", warnings[0]);

        // Flip one byte of the older one too: nothing usable is left.
        let older = files(&t.0)[1].clone();
        let mut bytes = std::fs::read(&older).expect("read");
        bytes[20] ^= 0xff;
        std::fs::write(&older, &bytes).expect("corrupt");
        warnings.clear();
        assert!(latest(&t.0, &mut |w| warnings.push(w.to_string())).is_none());
        assert_eq!(warnings.len(), 2);

        // A temporary file left by a killed writer is never read as a checkpoint.
        std::fs::write(t.0.join(DIR).join("step-000000040.ckpt.tmp"), b"half").expect("tmp");
        assert!(files(&t.0).iter().all(|p| step_of(p) != Some(40)));
        remove_all(&t.0);
        assert!(!t.0.join(DIR).exists());
    }

    #[test]
    fn decode_names_what_is_wrong() {
        assert!(decode(b"short").expect_err("short").contains("too short"));
        let mut bad = encode(&ck(1)).expect("encode");
        bad[0] = b'X';
        assert!(decode(&bad).expect_err("magic").contains("magic"));
    }
}
