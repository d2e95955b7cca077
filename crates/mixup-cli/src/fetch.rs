//! Downloading public datasets into a local cache, with pinned checksums.
//!
//! [`fetch_dataset`] downloads a dataset's original files, checks each against a pinned SHA-256
//! ([`download_verified`]) and converts them into the `label<TAB>text` files the rest of the
//! zoo reads. Nothing here prints: callers report progress themselves.
//!
//! Only TREC (the 6 coarse classes) is known for now: its two files are pinned to one commit of
//! `harvardnlp/sent-conv-torch` on GitHub.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mixup_data::{TrecLabels, read_trec};
use sha2::{Digest, Sha256};

/// Where the pinned TREC files live: `harvardnlp/sent-conv-torch` at commit `d61ded09`,
/// folder `data/raw`. The files are `TREC.train` and `TREC.test`.
pub const TREC_BASE_URL: &str = "https://raw.githubusercontent.com/harvardnlp/sent-conv-torch/\
                                 d61ded09c99c0199d8c5bca946cd65864de2b296/data/raw";

/// SHA-256 (lower-case hex) of `TREC.train` at [`TREC_BASE_URL`].
pub const TREC_TRAIN_SHA256: &str =
    "9e4c8bdcaffb96ed61041bd64b564183d52793a8e91d84fc3a8646885f466ec3";

/// SHA-256 (lower-case hex) of `TREC.test` at [`TREC_BASE_URL`].
pub const TREC_TEST_SHA256: &str =
    "033f22c028c2bbba9ca682f68ffe204dc1aa6e1cf35dd6207f2d4ca67f0d0e8e";

/// Size in bytes of `TREC.train` at [`TREC_BASE_URL`].
pub const TREC_TRAIN_BYTES: u64 = 335_858;

/// Size in bytes of `TREC.test` at [`TREC_BASE_URL`].
pub const TREC_TEST_BYTES: u64 = 23_354;

/// The dataset names [`fetch_dataset`] knows.
pub const KNOWN_DATASETS: &[&str] = &["trec"];

/// The whole of one download may take at most this long.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// A body longer than this is refused rather than written to disk (256 MiB).
const MAX_DOWNLOAD_BYTES: u64 = 256 << 20;

/// Why a download or a conversion failed. Every variant names the address or the file.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The server could not be reached, answered with an error status, or broke off.
    #[error("downloading {url} failed: {message}")]
    Http {
        /// The address asked for.
        url: String,
        /// The HTTP status, when the server answered with one that is not a success.
        status: Option<u16>,
        /// What went wrong, in words.
        message: String,
    },
    /// The downloaded bytes are not the pinned ones. Nothing was kept.
    #[error("checksum mismatch for {url}: expected SHA-256 {expected}, got {actual}")]
    ChecksumMismatch {
        /// The address downloaded.
        url: String,
        /// The pinned SHA-256, hex.
        expected: String,
        /// The SHA-256 of what arrived, hex.
        actual: String,
    },
    /// Reading or writing a local file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A downloaded file could not be read as its dataset's format.
    #[error(transparent)]
    Data(#[from] mixup_data::DataError),
    /// No dataset of this name is known.
    #[error("unknown dataset {0:?}; known datasets: {known}", known = KNOWN_DATASETS.join(", "))]
    UnknownDataset(String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Lower-case hex of a byte string.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// `path` with `suffix` appended to its file name (`a/b.tsv` -> `a/b.tsv.part`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Whether `url` points at this machine, where a proxy from the environment cannot help.
fn is_loopback(url: &str) -> bool {
    url.parse::<ureq::http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_ascii_lowercase))
        .is_some_and(|h| {
            h == "localhost"
                || h == "[::1]"
                || h == "::1"
                || h.parse::<std::net::Ipv4Addr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
}

fn agent(url: &str, timeout: Duration) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent(concat!("mixup-zoo/", env!("CARGO_PKG_VERSION")));
    if is_loopback(url) {
        config = config.proxy(None);
    }
    config.build().into()
}

/// Removes a partial download when dropped, unless disarmed.
struct PartGuard<'a> {
    path: &'a Path,
    keep: bool,
}

impl Drop for PartGuard<'_> {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(self.path);
        }
    }
}

/// Downloads `url` into `dest`, keeping it only if its SHA-256 is `sha256_hex`.
///
/// The body is streamed into `dest` with `.part` appended to its name while being hashed, and
/// renamed to `dest` only when the hash matches; on a mismatch or any error the `.part` file is
/// removed and `dest` is left as it was. The parent folder of `dest` is created if missing.
/// The whole download may take at most 60 seconds. `sha256_hex` is compared case-insensitively.
///
/// # Errors
///
/// [`FetchError::Http`] when the server cannot be reached, answers with a status other than
/// 2xx, or breaks off; [`FetchError::ChecksumMismatch`] when the bytes are not the pinned ones;
/// [`FetchError::Io`] when a local file cannot be written.
pub fn download_verified(url: &str, sha256_hex: &str, dest: &Path) -> Result<(), FetchError> {
    download_verified_within(url, sha256_hex, dest, DOWNLOAD_TIMEOUT)
}

/// [`download_verified`] with a limit on the whole download other than 60 seconds.
///
/// # Errors
///
/// As [`download_verified`]; a download that takes longer than `timeout` (a stalled server)
/// is a [`FetchError::Http`] and leaves nothing behind.
pub fn download_verified_within(
    url: &str,
    sha256_hex: &str,
    dest: &Path,
    timeout: Duration,
) -> Result<(), FetchError> {
    let http = |status: Option<u16>, message: String| FetchError::Http {
        url: url.to_string(),
        status,
        message,
    };
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    let mut response = agent(url, timeout)
        .get(url)
        .call()
        .map_err(|e| http(None, e.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        let reason = status.canonical_reason().unwrap_or("");
        return Err(http(
            Some(status.as_u16()),
            format!("HTTP status {} {reason}", status.as_u16())
                .trim_end()
                .to_string(),
        ));
    }

    let part = with_suffix(dest, ".part");
    let mut guard = PartGuard {
        path: &part,
        keep: false,
    };
    let mut file = File::create(&part).map_err(io_error(&part))?;
    let mut reader = response.body_mut().as_reader();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(http(None, format!("reading the body: {e}"))),
        };
        total += n as u64;
        if total > MAX_DOWNLOAD_BYTES {
            return Err(http(
                None,
                format!("body is larger than the {MAX_DOWNLOAD_BYTES} byte limit"),
            ));
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(io_error(&part))?;
    }
    file.sync_all().map_err(io_error(&part))?;
    drop(file);

    let actual = hex(&hasher.finalize());
    let expected = sha256_hex.trim().to_ascii_lowercase();
    if actual != expected {
        return Err(FetchError::ChecksumMismatch {
            url: url.to_string(),
            expected,
            actual,
        });
    }
    std::fs::rename(&part, dest).map_err(io_error(dest))?;
    guard.keep = true;
    Ok(())
}

/// SHA-256 (lower-case hex) of a file, or `None` when it cannot be read.
fn file_sha256(path: &Path) -> Option<String> {
    let mut file = File::open(path).ok()?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(hex(&hasher.finalize()))
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so that
/// `path` is either absent or complete.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), FetchError> {
    mixup_train::write_atomic(path, bytes).map_err(|e| match e {
        mixup_train::TrainError::Io { path, source } => FetchError::Io { path, source },
        other => FetchError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(other.to_string()),
        },
    })
}

/// Downloads (unless already cached) and converts the dataset `name`, returning the folder that
/// holds its `train.tsv` and `test.tsv`.
///
/// For `"trec"`: `{base_url}/TREC.train` and `{base_url}/TREC.test` are downloaded into
/// `cache_dir/raw/trec/` and checked against [`TREC_TRAIN_SHA256`] and [`TREC_TEST_SHA256`];
/// a raw file already there with the right checksum is not downloaded again. They are then
/// converted with the coarse labels into `cache_dir/trec/train.tsv` and `test.tsv`, one
/// `label<TAB>text` line per question, and `cache_dir/trec` is returned. When both converted
/// files already exist, nothing is downloaded or written. Pass [`TREC_BASE_URL`] as
/// `base_url` for the public copy.
///
/// # Errors
///
/// [`FetchError::UnknownDataset`] for a name not in [`KNOWN_DATASETS`]; otherwise the errors of
/// [`download_verified`], [`FetchError::Data`] when a file cannot be parsed, and
/// [`FetchError::Io`] when a folder or file cannot be written.
pub fn fetch_dataset(name: &str, base_url: &str, cache_dir: &Path) -> Result<PathBuf, FetchError> {
    match name {
        "trec" => fetch_trec(base_url, cache_dir),
        other => Err(FetchError::UnknownDataset(other.to_string())),
    }
}

fn fetch_trec(base_url: &str, cache_dir: &Path) -> Result<PathBuf, FetchError> {
    let out_dir = cache_dir.join("trec");
    let splits = [
        ("TREC.train", TREC_TRAIN_SHA256, "train.tsv"),
        ("TREC.test", TREC_TEST_SHA256, "test.tsv"),
    ];
    if splits.iter().all(|(_, _, tsv)| out_dir.join(tsv).is_file()) {
        return Ok(out_dir);
    }
    let raw_dir = cache_dir.join("raw").join("trec");
    std::fs::create_dir_all(&raw_dir).map_err(io_error(&raw_dir))?;
    std::fs::create_dir_all(&out_dir).map_err(io_error(&out_dir))?;
    let base = base_url.trim_end_matches('/');
    for (raw_name, sha, tsv) in splits {
        let raw = raw_dir.join(raw_name);
        let cached = file_sha256(&raw).is_some_and(|h| h == sha);
        if !cached {
            download_verified(&format!("{base}/{raw_name}"), sha, &raw)?;
        }
        let examples = read_trec(&raw, TrecLabels::Coarse)?;
        let mut text = String::new();
        for ex in &examples {
            text.push_str(&ex.label);
            text.push('\t');
            text.push_str(&ex.text);
            text.push('\n');
        }
        write_atomically(&out_dir.join(tsv), text.as_bytes())?;
    }
    Ok(out_dir)
}

/// The folder datasets are cached in: `$MIXUP_CACHE_DIR`, else `$XDG_CACHE_HOME/mixup-zoo`,
/// else `$HOME/.cache/mixup-zoo`, else `./.mixup-cache`. Empty variables count as unset, and a
/// relative `$XDG_CACHE_HOME` is ignored, as the XDG specification asks.
pub fn default_cache_dir() -> PathBuf {
    cache_dir_from(|key| std::env::var_os(key))
}

fn cache_dir_from(var: impl Fn(&str) -> Option<OsString>) -> PathBuf {
    let var = |key: &str| var(key).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var("MIXUP_CACHE_DIR") {
        return dir;
    }
    if let Some(xdg) = var("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return xdg.join("mixup-zoo");
    }
    if let Some(home) = var("HOME") {
        return home.join(".cache").join("mixup-zoo");
    }
    PathBuf::from(".mixup-cache")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::tmp_dir;
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::thread::JoinHandle;

    /// A one-thread HTTP/1.1 server on 127.0.0.1 serving fixed bodies by path, 404 otherwise.
    struct Server {
        url: String,
        requests: Arc<AtomicUsize>,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    impl Server {
        fn start(files: HashMap<String, Vec<u8>>) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
            let addr = listener.local_addr().expect("local address");
            let requests = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let (r, s) = (requests.clone(), stop.clone());
            let thread = std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if s.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        r.fetch_add(1, Ordering::SeqCst);
                        // A broken connection only fails the test that made it.
                        let _ = serve(stream, &files);
                    }
                }
            });
            Server {
                url: format!("http://{addr}"),
                requests,
                stop,
                thread: Some(thread),
            }
        }

        fn requests(&self) -> usize {
            self.requests.load(Ordering::SeqCst)
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            // Wake the accept loop so that it sees the flag.
            let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn serve(stream: TcpStream, files: &HashMap<String, Vec<u8>>) -> std::io::Result<()> {
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
                break;
            }
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("");
        // `/truncated/<path>` announces the whole body and sends half of it before closing;
        // `/stall/<path>` sends half and then nothing for 3 seconds.
        let (mode, file) = match path.split_once('/').and_then(|(_, p)| p.split_once('/')) {
            Some((m @ ("truncated" | "stall"), rest)) => (m, format!("/{rest}")),
            _ => ("whole", path.to_string()),
        };
        let (status, body): (&str, &[u8]) = match files.get(&file) {
            Some(bytes) => ("200 OK", bytes),
            None => ("404 Not Found", b"not found\n"),
        };
        let mut out = stream;
        write!(
            out,
            "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        match mode {
            "truncated" => out.write_all(&body[..body.len() / 2])?,
            "stall" => {
                out.write_all(&body[..body.len() / 2])?;
                out.flush()?;
                std::thread::sleep(Duration::from_secs(3));
            }
            _ => out.write_all(body)?,
        }
        out.flush()
    }

    fn data_dir() -> PathBuf {
        std::env::var_os("MIXUP_DATA_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
    }

    /// The bytes of `$MIXUP_DATA_DIR/{rel}`, or `None` (after a note) when absent outside CI.
    fn shared_file(rel: &str) -> Option<Vec<u8>> {
        let path = data_dir().join(rel);
        match std::fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!(
                        "{} is needed by this test and cannot be read ({e}); set MIXUP_DATA_DIR \
                         to the shared data folder",
                        path.display()
                    );
                }
                eprintln!(
                    "note: skipping: {} cannot be read ({e}); set MIXUP_DATA_DIR to the shared \
                     data folder",
                    path.display()
                );
                None
            }
        }
    }

    fn raw_trec() -> Option<(Vec<u8>, Vec<u8>)> {
        Some((
            shared_file("raw/trec/TREC.train")?,
            shared_file("raw/trec/TREC.test")?,
        ))
    }

    fn trec_server(train: Vec<u8>, test: Vec<u8>) -> Server {
        let mut files = HashMap::new();
        files.insert("/data/raw/TREC.train".to_string(), train);
        files.insert("/data/raw/TREC.test".to_string(), test);
        Server::start(files)
    }

    #[test]
    fn fetch_trec_converts_byte_for_byte_like_the_shared_copy() {
        let Some((train, test)) = raw_trec() else {
            return;
        };
        let (Some(want_train), Some(want_test)) =
            (shared_file("trec/train.tsv"), shared_file("trec/test.tsv"))
        else {
            return;
        };
        assert_eq!(train.len() as u64, TREC_TRAIN_BYTES);
        assert_eq!(test.len() as u64, TREC_TEST_BYTES);
        let server = trec_server(train, test);
        let tmp = tmp_dir("fetch-convert");
        let base = format!("{}/data/raw/", server.url);

        let dir = fetch_dataset("trec", &base, &tmp.0).expect("fetch trec");
        assert_eq!(dir, tmp.0.join("trec"));
        assert_eq!(server.requests(), 2);
        let got_train = std::fs::read(dir.join("train.tsv")).expect("train.tsv");
        let got_test = std::fs::read(dir.join("test.tsv")).expect("test.tsv");
        assert!(
            got_train == want_train,
            "train.tsv differs from the shared copy"
        );
        assert!(
            got_test == want_test,
            "test.tsv differs from the shared copy"
        );
        assert_eq!(
            hex(&Sha256::digest(&got_train)),
            "0c35c0ad80b2667b10ce8f0beab4e4e6aa72e13bbc3c6b3ffcb10def7fb6428b"
        );
        assert_eq!(
            hex(&Sha256::digest(&got_test)),
            "bc8b9b5aaa3617167b8ff2a5a7028bb7e8a8fb0fc06162a7db9b15566cc0424d"
        );
        let text = String::from_utf8(got_train).expect("train.tsv is UTF-8");
        let line66 = text.lines().nth(65).expect("line 66");
        assert!(line66.starts_with("LOC\t"), "{line66}");
        assert!(line66.contains("sisterðcity"), "{line66}");
        assert_eq!(text.lines().count(), 5452);
        assert_eq!(
            file_sha256(&tmp.0.join("raw/trec/TREC.train")).as_deref(),
            Some(TREC_TRAIN_SHA256)
        );
        assert!(!tmp.0.join("raw/trec/TREC.train.part").exists());
        assert!(!dir.join("train.tsv.tmp").exists());

        // Converted files present: nothing is downloaded again.
        fetch_dataset("trec", &base, &tmp.0).expect("cached fetch");
        assert_eq!(server.requests(), 2);
        // Raw files present with the right checksum: converted again without downloading.
        std::fs::remove_file(dir.join("test.tsv")).expect("remove test.tsv");
        fetch_dataset("trec", &base, &tmp.0).expect("reconvert");
        assert_eq!(server.requests(), 2);
        assert!(std::fs::read(dir.join("test.tsv")).expect("test.tsv") == want_test);
    }

    #[test]
    fn altered_bytes_are_a_checksum_mismatch_and_leave_nothing() {
        let Some((mut train, test)) = raw_trec() else {
            return;
        };
        train[100] ^= 0x20;
        let server = trec_server(train, test);
        let tmp = tmp_dir("fetch-mismatch");
        let url = format!("{}/data/raw/TREC.train", server.url);
        let dest = tmp.0.join("sub/TREC.train");

        let err = download_verified(&url, TREC_TRAIN_SHA256, &dest).expect_err("must fail");
        match &err {
            FetchError::ChecksumMismatch {
                url: u,
                expected,
                actual,
            } => {
                assert_eq!(u, &url);
                assert_eq!(expected, TREC_TRAIN_SHA256);
                assert_ne!(actual, TREC_TRAIN_SHA256);
                assert_eq!(actual.len(), 64);
            }
            other => panic!("expected ChecksumMismatch, got {other:?}"),
        }
        assert!(err.to_string().contains(&url), "{err}");
        assert!(!dest.exists());
        assert!(!with_suffix(&dest, ".part").exists());

        // Through fetch_dataset: no converted file either.
        let err = fetch_dataset("trec", &format!("{}/data/raw", server.url), &tmp.0)
            .expect_err("must fail");
        assert!(
            matches!(err, FetchError::ChecksumMismatch { .. }),
            "{err:?}"
        );
        assert!(!tmp.0.join("raw/trec/TREC.train").exists());
        assert!(!tmp.0.join("raw/trec/TREC.train.part").exists());
        assert!(!tmp.0.join("trec/train.tsv").exists());
    }

    #[test]
    fn not_found_is_an_http_error_naming_the_url() {
        let mut files = HashMap::new();
        files.insert("/present".to_string(), b"hello\n".to_vec());
        let server = Server::start(files);
        let tmp = tmp_dir("fetch-404");
        let url = format!("{}/missing/TREC.train", server.url);
        let dest = tmp.0.join("TREC.train");

        let err = download_verified(&url, TREC_TRAIN_SHA256, &dest).expect_err("must fail");
        match &err {
            FetchError::Http { url: u, status, .. } => {
                assert_eq!(u, &url);
                assert_eq!(*status, Some(404));
            }
            other => panic!("expected Http, got {other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.contains(&url) && message.contains("404"),
            "{message}"
        );
        assert!(!dest.exists());
        assert!(!with_suffix(&dest, ".part").exists());

        // A 200 with the right checksum is kept.
        let ok = format!("{}/present", server.url);
        let sha = hex(&Sha256::digest(b"hello\n"));
        download_verified(&ok, &sha.to_ascii_uppercase(), &dest).expect("download");
        assert_eq!(std::fs::read(&dest).expect("dest"), b"hello\n");
    }

    #[test]
    fn truncated_and_stalled_bodies_fail_cleanly_and_leave_nothing() {
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let sha = hex(&Sha256::digest(&body));
        let mut files = HashMap::new();
        files.insert("/f.bin".to_string(), body.clone());
        let server = Server::start(files);
        let tmp = tmp_dir("fetch-cut");
        let dest = tmp.0.join("f.bin");

        let url = format!("{}/truncated/f.bin", server.url);
        let err = download_verified(&url, &sha, &dest).expect_err("truncated body");
        assert!(
            matches!(&err, FetchError::Http { url: u, .. } if u == &url),
            "{err:?}"
        );
        assert!(!dest.exists() && !with_suffix(&dest, ".part").exists());

        let url = format!("{}/stall/f.bin", server.url);
        let started = std::time::Instant::now();
        let err = download_verified_within(&url, &sha, &dest, Duration::from_millis(700))
            .expect_err("stalled body");
        let took = started.elapsed();
        assert!(
            matches!(&err, FetchError::Http { url: u, .. } if u == &url),
            "{err:?}"
        );
        assert!(
            took < Duration::from_millis(2500),
            "the timeout did not stop the download ({took:?})"
        );
        assert!(!dest.exists() && !with_suffix(&dest, ".part").exists());

        // The same server still serves the whole file, which is kept.
        download_verified(&format!("{}/f.bin", server.url), &sha, &dest).expect("whole");
        assert_eq!(std::fs::read(&dest).expect("dest"), body);
    }

    #[test]
    fn unreachable_server_is_an_http_error() {
        // Bind then drop a listener to get a port nobody listens on.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let tmp = tmp_dir("fetch-refused");
        let url = format!("http://127.0.0.1:{port}/TREC.train");
        let err =
            download_verified(&url, TREC_TRAIN_SHA256, &tmp.0.join("x")).expect_err("must fail");
        assert!(
            matches!(&err, FetchError::Http { url: u, status: None, .. } if u == &url),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_dataset_lists_the_known_ones() {
        let tmp = tmp_dir("fetch-unknown");
        let err = fetch_dataset("sst2", "http://127.0.0.1:9", &tmp.0).expect_err("must fail");
        assert!(
            matches!(&err, FetchError::UnknownDataset(n) if n == "sst2"),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("sst2") && message.contains("trec"),
            "{message}"
        );
        assert!(!tmp.0.join("sst2").exists());
    }

    #[test]
    fn cache_dir_precedence() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |key: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        assert_eq!(
            cache_dir_from(env(&[
                ("MIXUP_CACHE_DIR", "/m"),
                ("XDG_CACHE_HOME", "/x"),
                ("HOME", "/h"),
            ])),
            PathBuf::from("/m")
        );
        assert_eq!(
            cache_dir_from(env(&[("MIXUP_CACHE_DIR", ""), ("XDG_CACHE_HOME", "/x")])),
            PathBuf::from("/x/mixup-zoo")
        );
        assert_eq!(
            cache_dir_from(env(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/h")])),
            PathBuf::from("/h/.cache/mixup-zoo")
        );
        assert_eq!(cache_dir_from(env(&[])), PathBuf::from(".mixup-cache"));
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("http://127.0.0.1:8080/a"));
        assert!(is_loopback("http://localhost/a"));
        assert!(is_loopback("http://[::1]:80/a"));
        assert!(!is_loopback(TREC_BASE_URL));
        assert_eq!(
            TREC_BASE_URL,
            "https://raw.githubusercontent.com/harvardnlp/sent-conv-torch/\
             d61ded09c99c0199d8c5bca946cd65864de2b296/data/raw"
                .replace(' ', "")
        );
    }
}
