//! Sharing one sweep between processes: shards of the plan, and claims on run folders.
//!
//! **Shards.** `--shard K/N` keeps the runs whose place in the plan is `K` modulo `N`
//! ([`Shard::keeps`]): the shards of one `N` partition the plan, the same plan always gives the
//! same shards, and the recipes are spread over all shards. Without the flag the scheduler's
//! index is read ([`Shard::from_env`]): a Slurm job array's `SLURM_ARRAY_TASK_ID` (minus
//! `SLURM_ARRAY_TASK_MIN`) of `SLURM_ARRAY_TASK_COUNT`, or a Kubernetes Indexed Job's
//! `JOB_COMPLETION_INDEX` of the count given with `--shard-count`.
//!
//! **Claims.** Before a process trains a run it claims the run folder: it creates
//! `<run>/.claim` exclusively (`O_EXCL`), holding its owner (host, process id, a random
//! nonce) and a heartbeat time that a thread renews every `timeout / 5` while the run trains.
//! Another process that finds the claim skips the run, unless the heartbeat is older than
//! `timeout` (its owner was killed): then it takes the claim over, under a second exclusive
//! file (`.claim.takeover`) so that two processes never take over the same claim, and
//! continues the run from its newest checkpoint. A claimed run is checked for `final.json`
//! again before training, so a finished run is never trained twice.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

/// One share of a sweep: shard `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 0-based index, below `count`.
    pub index: usize,
    /// Number of shards, at least 1.
    pub count: usize,
}

impl Shard {
    /// Parses `K/N` (0 <= K < N).
    ///
    /// # Errors
    ///
    /// A message naming the value when it is not `K/N` with `K < N`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("--shard {s:?}: expected K/N with 0 <= K < N, e.g. 0/4");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        Self::new(index, count).ok_or_else(bad)
    }

    /// Shard `index` of `count`, when `index < count`.
    pub fn new(index: usize, count: usize) -> Option<Self> {
        (index < count).then_some(Self { index, count })
    }

    /// The scheduler's shard: a Slurm job array's task (`SLURM_ARRAY_TASK_ID` minus
    /// `SLURM_ARRAY_TASK_MIN`, of `SLURM_ARRAY_TASK_COUNT`), or a Kubernetes Indexed Job's
    /// `JOB_COMPLETION_INDEX` of `count` (`--shard-count`). `var` reads the environment.
    ///
    /// # Errors
    ///
    /// A variable that is set but not a number, an index past the count, or
    /// `JOB_COMPLETION_INDEX` without a count.
    pub fn from_env(
        var: impl Fn(&str) -> Option<String>,
        count: Option<usize>,
    ) -> Result<Option<(Self, &'static str)>, String> {
        let num = |key: &str| -> Result<Option<usize>, String> {
            match var(key) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{key}={v:?} is not a whole number")),
            }
        };
        if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
            let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let n = match (count, num("SLURM_ARRAY_TASK_COUNT")?) {
                (Some(n), _) | (None, Some(n)) => n,
                (None, None) => {
                    return Err(
                        "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not: give \
                         --shard-count"
                            .into(),
                    );
                }
            };
            let k = id.checked_sub(min).ok_or_else(|| {
                format!("SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}")
            })?;
            return Self::new(k, n)
                .map(|s| Some((s, "Slurm array task")))
                .ok_or_else(|| format!("Slurm array task {k} (from 0) is not below {n} tasks"));
        }
        if let Some(k) = num("JOB_COMPLETION_INDEX")? {
            let n = count.ok_or(
                "JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job): give --shard-count \
                 with the job's completions",
            )?;
            return Self::new(k, n)
                .map(|s| Some((s, "Kubernetes job index")))
                .ok_or_else(|| format!("JOB_COMPLETION_INDEX {k} is not below --shard-count {n}"));
        }
        Ok(None)
    }

    /// Whether the run at `position` of the plan is this shard's.
    pub fn keeps(&self, position: usize) -> bool {
        position % self.count == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// What a claim file holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimFile {
    /// `host:pid:nonce` of the process that trains the run.
    pub owner: String,
    /// Unix seconds of the last heartbeat.
    pub heartbeat: f64,
}

/// The name of the claim file in a run folder.
pub const CLAIM: &str = ".claim";
const TAKEOVER: &str = ".claim.takeover";

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// This process's owner name: host, process id and a random nonce.
pub fn owner_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".into());
    let nonce: u32 = rand::random();
    format!("{host}:{}:{nonce:08x}", std::process::id())
}

/// How trying to claim a run ended.
#[derive(Debug)]
pub enum Claimed {
    /// This process holds the claim until the guard is dropped; `took_over` names the owner
    /// whose stale claim was taken over.
    Mine(ClaimGuard, Option<String>),
    /// Another live process holds it.
    Busy(String),
}

/// A held claim: renews its heartbeat while alive, removes the claim file when dropped.
#[derive(Debug)]
pub struct ClaimGuard {
    path: PathBuf,
    owner: String,
    stop: Arc<AtomicBool>,
    beat: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.beat.take() {
            let _ = h.join();
        }
        // Only our own claim is removed (one taken over from us is someone else's now).
        if read_claim(&self.path).is_some_and(|c| c.owner == self.owner) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn read_claim(path: &Path) -> Option<ClaimFile> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn create_exclusive(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn claim_bytes(owner: &str) -> Vec<u8> {
    serde_json::to_vec(&ClaimFile {
        owner: owner.to_string(),
        heartbeat: now(),
    })
    .unwrap_or_default()
}

/// Claims the run folder `dir` (created if missing) for `owner`, taking over a claim whose
/// heartbeat is older than `timeout`.
///
/// # Errors
///
/// A folder or claim file that cannot be written.
pub fn claim(dir: &Path, owner: &str, timeout: Duration) -> std::io::Result<Claimed> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(CLAIM);
    let mut took_over = None;
    for _ in 0..3 {
        match create_exclusive(&path, &claim_bytes(owner)) {
            Ok(()) => return Ok(Claimed::Mine(start(path, owner, timeout), took_over)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let age = |c: &Option<ClaimFile>| c.as_ref().map_or(f64::INFINITY, |c| now() - c.heartbeat);
        let held = read_claim(&path);
        // A claim file being written (unparsable) gets one heartbeat's grace.
        let fresh = match &held {
            Some(_) => age(&held) < timeout.as_secs_f64(),
            None => modified_age(&path).is_some_and(|a| a < timeout.as_secs_f64()),
        };
        if fresh {
            return Ok(Claimed::Busy(
                held.map_or_else(|| "(a claim being written)".into(), |c| c.owner),
            ));
        }
        // Stale: take it over, one taker at a time. A takeover lock left by a killed taker is
        // itself stale after `timeout`.
        let lock = dir.join(TAKEOVER);
        if modified_age(&lock).is_some_and(|a| a >= timeout.as_secs_f64()) {
            let _ = std::fs::remove_file(&lock);
        }
        match create_exclusive(&lock, owner.as_bytes()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Ok(Claimed::Busy("(being taken over)".into()));
            }
            Err(e) => return Err(e),
        }
        // Under the lock: still the same stale claim?
        let again = read_claim(&path);
        if again == held {
            took_over = held.map(|c| c.owner).or(Some("(unreadable claim)".into()));
            let _ = std::fs::remove_file(&path);
        }
        let made = create_exclusive(&path, &claim_bytes(owner));
        let _ = std::fs::remove_file(&lock);
        match made {
            Ok(()) => return Ok(Claimed::Mine(start(path, owner, timeout), took_over)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(Claimed::Busy(
        read_claim(&path).map_or_else(|| "(unknown)".into(), |c| c.owner),
    ))
}

fn modified_age(path: &Path) -> Option<f64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(
        SystemTime::now()
            .duration_since(modified)
            .map_or(0.0, |d| d.as_secs_f64()),
    )
}

/// Starts the heartbeat of a claim just made.
fn start(path: PathBuf, owner: &str, timeout: Duration) -> ClaimGuard {
    let stop = Arc::new(AtomicBool::new(false));
    let every = (timeout / 5).max(Duration::from_millis(50));
    let (p, o, s) = (path.clone(), owner.to_string(), stop.clone());
    let beat = std::thread::spawn(move || {
        let tick = Duration::from_millis(25).min(every);
        let mut waited = Duration::ZERO;
        while !s.load(Ordering::SeqCst) {
            std::thread::sleep(tick);
            waited += tick;
            if waited < every {
                continue;
            }
            waited = Duration::ZERO;
            // Renew only our own claim; a claim taken over is left to its new owner.
            if read_claim(&p).is_some_and(|c| c.owner == o) {
                let _ = crate::run::write_atomic(&p, &claim_bytes(&o));
            }
        }
    });
    ClaimGuard {
        path,
        owner: owner.to_string(),
        stop,
        beat: Some(beat),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_partition_the_plan() {
        assert_eq!(Shard::parse("1/4"), Ok(Shard { index: 1, count: 4 }));
        for bad in ["4/4", "1", "a/2", "1/0", "-1/3", ""] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        for n in 1..7 {
            for plan in [0usize, 1, 5, 13] {
                let mut owners = vec![0; plan];
                for k in 0..n {
                    let s = Shard::new(k, n).expect("shard");
                    for (p, o) in owners.iter_mut().enumerate() {
                        *o += usize::from(s.keeps(p));
                    }
                }
                assert!(
                    owners.iter().all(|&o| o == 1),
                    "n {n}, plan {plan}: {owners:?}"
                );
            }
        }
    }

    #[test]
    fn scheduler_indices_from_slurm_and_kubernetes() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        let (s, from) = Shard::from_env(slurm, None).expect("ok").expect("a shard");
        assert_eq!(
            (s, from),
            (Shard { index: 2, count: 4 }, "Slurm array task")
        );
        let k8s = env(&[("JOB_COMPLETION_INDEX", "2")]);
        assert_eq!(
            Shard::from_env(k8s, Some(3)).expect("ok").map(|x| x.0),
            Some(Shard { index: 2, count: 3 })
        );
        assert!(Shard::from_env(env(&[("JOB_COMPLETION_INDEX", "2")]), None).is_err());
        assert!(Shard::from_env(env(&[("JOB_COMPLETION_INDEX", "3")]), Some(3)).is_err());
        assert!(Shard::from_env(env(&[("SLURM_ARRAY_TASK_ID", "x")]), None).is_err());
        assert_eq!(Shard::from_env(env(&[]), None), Ok(None));
    }

    #[test]
    fn a_live_claim_blocks_and_a_stale_one_is_taken_over() {
        let dir = std::env::temp_dir().join(format!("mixup-claim-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let timeout = Duration::from_millis(400);
        let Ok(Claimed::Mine(guard, None)) = claim(&dir, "a", timeout) else {
            panic!("the first claim is ours")
        };
        // The heartbeat keeps it fresh past the timeout.
        std::thread::sleep(Duration::from_millis(900));
        assert!(matches!(claim(&dir, "b", timeout), Ok(Claimed::Busy(o)) if o == "a"));
        drop(guard);
        assert!(!dir.join(CLAIM).exists(), "released");
        // A claim whose owner stopped beating (a killed process) is taken over.
        std::fs::write(
            dir.join(CLAIM),
            serde_json::to_vec(&ClaimFile {
                owner: "dead".into(),
                heartbeat: now() - 10.0,
            })
            .expect("json"),
        )
        .expect("write");
        match claim(&dir, "b", timeout) {
            Ok(Claimed::Mine(_, Some(old))) => assert_eq!(old, "dead"),
            other => panic!("expected a takeover, got {other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
