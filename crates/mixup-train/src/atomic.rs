//! [`write_atomic`]: the one way this project writes a file that must never be seen half
//! written (checkpoints here; run folders, tables and plots in the CLI).

use std::{
    fs::File,
    io::Write,
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
};

use crate::{TrainError, error::Result};

/// Writes `bytes` to `path` so that a reader sees the old file or the whole new one, even
/// after a crash: into a temporary file beside it ([`temp_path`]: unique to this process and
/// call, so that processes sharing a folder never write into each other's), flushed to disk
/// (`fsync`), renamed over `path`, then the folder synced so the rename itself survives.
///
/// # Errors
///
/// [`TrainError::Io`] naming the file that could not be created, written, synced or renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path, "tmp");
    {
        let mut f = File::create(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| TrainError::io(&tmp, e))?;
    }
    commit(&tmp, path)
}

/// A temporary name beside `path` for writing it: `<name>.<pid>.<n>.<ext>`, with `n` counting
/// this process's calls, so that concurrent writers (threads or processes sharing a folder)
/// never share one.
pub fn temp_path(path: &Path, ext: &str) -> std::path::PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.{n}.{ext}", std::process::id()));
    path.with_file_name(name)
}

/// The second half of [`write_atomic`], for files another library writes itself (plots):
/// syncs the finished temporary file `tmp`, renames it over `path` and syncs the folder.
///
/// # Errors
///
/// [`TrainError::Io`] naming the file that could not be synced or renamed.
pub fn commit(tmp: &Path, path: &Path) -> Result<()> {
    File::options()
        .write(true)
        .open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| TrainError::io(tmp, e))?;
    std::fs::rename(tmp, path).map_err(|e| TrainError::io(path, e))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(d) = dir.and_then(|d| File::open(d).ok()) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_whole_and_leaves_no_temporary() {
        let dir = crate::test_util::tmp_dir("atomic");
        let path = dir.0.join("a.json");
        write_atomic(&path, b"first").expect("write");
        write_atomic(&path, b"second").expect("overwrite");
        assert_eq!(std::fs::read(&path).expect("read"), b"second");
        let left: Vec<_> = std::fs::read_dir(&dir.0)
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("a.json")],
            "no temporary left"
        );
        let e = write_atomic(&dir.0.join("missing/a.json"), b"x").expect_err("no folder");
        assert!(
            e.to_string().contains("a.json.") && e.to_string().contains(".tmp"),
            "{e}"
        );
        let (a, b) = (temp_path(&path, "tmp"), temp_path(&path, "tmp"));
        assert_ne!(a, b, "every call its own temporary");
    }
}
