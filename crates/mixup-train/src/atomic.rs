//! [`write_atomic`]: the one way this project writes a file that must never be seen half
//! written (checkpoints here; run folders, tables and plots in the CLI).

use std::{fs::File, io::Write, path::Path};

use crate::{TrainError, error::Result};

/// Writes `bytes` to `path` so that a reader sees the old file or the whole new one, even
/// after a crash: into `<path>.tmp` beside it, flushed to disk (`fsync`), renamed over
/// `path`, then the folder synced so the rename itself survives.
///
/// # Errors
///
/// [`TrainError::Io`] naming the file that could not be created, written, synced or renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    {
        let mut f = File::create(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| TrainError::io(&tmp, e))?;
    }
    commit(&tmp, path)
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
        assert!(!dir.0.join("a.json.tmp").exists());
        let e = write_atomic(&dir.0.join("missing/a.json"), b"x").expect_err("no folder");
        assert!(e.to_string().contains("a.json.tmp"), "{e}");
    }
}
