//! Loaders: TSV, CSV, JSONL and TREC's original format, for single texts and text pairs.
//!
//! A file holds single texts or pairs, never both: a TSV line `label<TAB>text_a<TAB>text_b`,
//! a CSV file with a `text_b` column, or JSONL objects with a `"text_b"` string make every
//! example a pair ([`Example::text_b`]), and a line without the second text is then an error.

use std::path::{Path, PathBuf};

use crate::error::DataError;

/// The longest line a loader accepts, in bytes (1 MiB). Longer lines are an error, not a
/// silent truncation.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// One labelled text, with the place it came from (for error messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    /// The text (the first of a pair), trimmed.
    pub text: String,
    /// The second text of a pair (NLI hypothesis, paraphrase candidate), trimmed; `None` for
    /// single-text examples.
    pub text_b: Option<String>,
    /// The label, as written in the file.
    pub label: String,
    /// 1-based line number in its file.
    pub line: usize,
}

/// Which TREC labels to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TrecLabels {
    /// The 6 coarse classes (`DESC`, `ENTY`, ...).
    #[default]
    Coarse,
    /// The 50 fine classes (`DESC:manner`, ...).
    Fine,
}

/// A file format [`read_examples`] knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// `label<TAB>text` or, for pairs, `label<TAB>text_a<TAB>text_b`; no header.
    Tsv,
    /// Comma-separated with a header row; the columns are picked by name.
    Csv {
        /// Header of the text column (of the first text of a pair). `text` also finds a
        /// column named `text_a` when the header has no `text`.
        text_column: String,
        /// Header of the label column.
        label_column: String,
        /// Header of the second text of a pair. `None`: the file holds pairs when its header
        /// has a `text_b` column.
        text_b_column: Option<String>,
    },
    /// One JSON object a line with a string `text` (or `text_a`), for pairs a string
    /// `text_b`, and a string or integer `label`.
    Jsonl,
    /// TREC's original `COARSE:fine question` lines.
    Trec(TrecLabels),
}

impl Format {
    /// The format a file's extension implies (`.tsv`, `.csv` with columns `text` and `label`,
    /// `.jsonl`, or TREC's `.label`, and the `TREC.train` / `TREC.test` names).
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        match ext.as_str() {
            "tsv" => Some(Format::Tsv),
            "csv" => Some(Format::Csv {
                text_column: "text".into(),
                label_column: "label".into(),
                text_b_column: None,
            }),
            "jsonl" => Some(Format::Jsonl),
            "label" => Some(Format::Trec(TrecLabels::Coarse)),
            _ if name.starts_with("TREC.") => Some(Format::Trec(TrecLabels::Coarse)),
            _ => None,
        }
    }
}

/// Reads all examples of `path` in `format`.
///
/// # Errors
///
/// [`DataError`] naming the file (and line) for an unreadable or empty file, a line over
/// [`MAX_LINE_BYTES`], bytes that are not UTF-8 (TREC excepted: its one stray byte is read as
/// Latin-1), a missing tab or column, an empty text or label, or malformed JSON.
pub fn read_examples(path: &Path, format: &Format) -> Result<Vec<Example>, DataError> {
    parse_examples(path, &read_bytes(path)?, format)
}

/// Parses the bytes of a data file in `format`; `path` only names the file in errors. This is
/// [`read_examples`] without the file system (the fuzz targets call it).
///
/// # Errors
///
/// See [`read_examples`].
pub fn parse_examples(
    path: &Path,
    bytes: &[u8],
    format: &Format,
) -> Result<Vec<Example>, DataError> {
    // A UTF-8 byte-order mark is not part of the first line.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match format {
        Format::Tsv => parse_tsv(path, bytes),
        Format::Csv {
            text_column,
            label_column,
            text_b_column,
        } => parse_csv(
            path,
            bytes,
            text_column,
            label_column,
            text_b_column.as_deref(),
        ),
        Format::Jsonl => parse_jsonl(path, bytes),
        Format::Trec(labels) => parse_trec(path, bytes, *labels),
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Splits into `(line number, line)` with `\n` or `\r\n` endings, skipping blank lines and
/// refusing lines over [`MAX_LINE_BYTES`].
fn lines<'a>(
    path: &'a Path,
    bytes: &'a [u8],
) -> impl Iterator<Item = Result<(usize, &'a [u8]), DataError>> + 'a {
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter_map(move |(i, raw)| {
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            if line.len() > MAX_LINE_BYTES {
                return Some(Err(DataError::line(
                    path,
                    i + 1,
                    format!(
                        "line is {} bytes, longer than the {} byte limit",
                        line.len(),
                        MAX_LINE_BYTES
                    ),
                )));
            }
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                return None;
            }
            Some(Ok((i + 1, line)))
        })
}

fn utf8<'a>(path: &Path, line: usize, bytes: &'a [u8]) -> Result<&'a str, DataError> {
    std::str::from_utf8(bytes).map_err(|e| {
        DataError::line(
            path,
            line,
            format!(
                "not valid UTF-8 (bad byte at column {})",
                e.valid_up_to() + 1
            ),
        )
    })
}

fn non_empty(path: &Path, out: Vec<Example>) -> Result<Vec<Example>, DataError> {
    if out.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

fn example(
    path: &Path,
    line: usize,
    label: &str,
    text: &str,
    text_b: Option<&str>,
) -> Result<Example, DataError> {
    let label = label.trim();
    let text = text.trim();
    if label.is_empty() {
        return Err(DataError::line(path, line, "empty label"));
    }
    if text.is_empty() {
        return Err(DataError::line(path, line, "empty text"));
    }
    let text_b = match text_b.map(str::trim) {
        Some("") => return Err(DataError::line(path, line, "empty second text (text_b)")),
        other => other.map(str::to_string),
    };
    Ok(Example {
        text: text.to_string(),
        text_b,
        label: label.to_string(),
        line,
    })
}

/// Refuses a file that mixes single texts and pairs: `first` is whether its first example is
/// a pair.
fn same_shape(path: &Path, out: &[Example], e: &Example) -> Result<(), DataError> {
    match out.first() {
        Some(first) if first.text_b.is_some() != e.text_b.is_some() => Err(DataError::line(
            path,
            e.line,
            if first.text_b.is_some() {
                format!(
                    "one text, but line {} starts a file of text pairs (every line needs both)",
                    first.line
                )
            } else {
                format!(
                    "a text pair, but line {} starts a file of single texts",
                    first.line
                )
            },
        )),
        _ => Ok(()),
    }
}

/// Reads `label<TAB>text` (or `label<TAB>text_a<TAB>text_b`) lines (no header).
///
/// # Errors
///
/// See [`read_examples`].
pub fn read_tsv(path: &Path) -> Result<Vec<Example>, DataError> {
    read_examples(path, &Format::Tsv)
}

fn parse_tsv(path: &Path, bytes: &[u8]) -> Result<Vec<Example>, DataError> {
    let mut out = Vec::new();
    for item in lines(path, bytes) {
        let (n, raw) = item?;
        let line = utf8(path, n, raw)?;
        let mut fields = line.split('\t');
        let (Some(label), Some(text)) = (fields.next(), fields.next()) else {
            return Err(DataError::line(
                path,
                n,
                "no tab: expected `label<TAB>text` or `label<TAB>text_a<TAB>text_b`",
            ));
        };
        let text_b = fields.next();
        if fields.next().is_some() {
            return Err(DataError::line(
                path,
                n,
                "more than 3 tab-separated fields: expected `label<TAB>text` or \
                 `label<TAB>text_a<TAB>text_b` (texts cannot contain tabs)",
            ));
        }
        let e = example(path, n, label, text, text_b)?;
        same_shape(path, &out, &e)?;
        out.push(e);
    }
    non_empty(path, out)
}

/// Parses one line of TREC's original format, `COARSE:fine question tokens`, into the label
/// (coarse or `COARSE:fine`) and the question with its whitespace collapsed to single spaces.
///
/// # Errors
///
/// A message for a line without the `LABEL:fine` prefix or without a question.
pub fn parse_trec_line(line: &str, labels: TrecLabels) -> Result<(String, String), String> {
    let line = line.trim();
    let (head, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let Some((coarse, fine)) = head.split_once(':') else {
        return Err(format!(
            "expected `COARSE:fine question`, got {:?}",
            truncate(line)
        ));
    };
    if coarse.is_empty() || fine.is_empty() {
        return Err(format!("empty coarse or fine label in {head:?}"));
    }
    let text = rest.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return Err("empty question".into());
    }
    let label = match labels {
        TrecLabels::Coarse => coarse.to_string(),
        TrecLabels::Fine => head.to_string(),
    };
    Ok((label, text))
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Reads TREC's original format. The published file has one byte that is not UTF-8; lines
/// that are not valid UTF-8 are decoded as Latin-1 (every byte one character), which keeps
/// that byte as `ð`.
///
/// # Errors
///
/// See [`read_examples`].
pub fn read_trec(path: &Path, labels: TrecLabels) -> Result<Vec<Example>, DataError> {
    read_examples(path, &Format::Trec(labels))
}

fn parse_trec(path: &Path, bytes: &[u8], labels: TrecLabels) -> Result<Vec<Example>, DataError> {
    let mut out = Vec::new();
    for item in lines(path, bytes) {
        let (n, raw) = item?;
        let line = match std::str::from_utf8(raw) {
            Ok(s) => s.to_string(),
            Err(_) => raw.iter().map(|&b| b as char).collect(),
        };
        let (label, text) =
            parse_trec_line(&line, labels).map_err(|m| DataError::line(path, n, m))?;
        out.push(Example {
            text,
            text_b: None,
            label,
            line: n,
        });
    }
    non_empty(path, out)
}

/// Reads a CSV file with a header row, taking the text and label from the named columns.
fn parse_csv(
    path: &Path,
    bytes: &[u8],
    text_column: &str,
    label_column: &str,
    text_b_column: Option<&str>,
) -> Result<Vec<Example>, DataError> {
    if let Some(pos) = bytes
        .split(|&b| b == b'\n')
        .position(|l| l.len() > MAX_LINE_BYTES)
    {
        return Err(DataError::line(
            path,
            pos + 1,
            "line longer than the 1 MiB limit",
        ));
    }
    // csv's record positions count a CRLF line end twice; normalise to LF first.
    let mut normalised = Vec::with_capacity(bytes.len());
    let mut it = bytes.iter().peekable();
    while let Some(&b) = it.next() {
        if b == b'\r' && it.peek() == Some(&&b'\n') {
            continue;
        }
        normalised.push(b);
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(normalised.as_slice());
    let headers = reader
        .byte_headers()
        .map_err(|e| DataError::line(path, 1, format!("cannot read the CSV header: {e}")))?
        .clone();
    if headers.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    let names: Vec<String> = headers
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_string())
        .collect();
    let find = |name: &str| {
        names.iter().position(|h| h == name).ok_or_else(|| {
            DataError::line(
                path,
                1,
                format!(
                    "no column named {name:?} in the header (columns: {})",
                    names.join(", ")
                ),
            )
        })
    };
    let has = |name: &str| names.iter().any(|h| h == name);
    let text_column = if text_column == "text" && !has("text") && has("text_a") {
        "text_a"
    } else {
        text_column
    };
    let (ti, li) = (find(text_column)?, find(label_column)?);
    let bi = match text_b_column {
        Some(name) => Some(find(name)?),
        None if has("text_b") => Some(find("text_b")?),
        None => None,
    };
    let mut out = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        let line = reader.position().line() as usize;
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(line);
                return Err(DataError::line(
                    path,
                    line,
                    format!("malformed CSV row: {e}"),
                ));
            }
        }
        let line = record.position().map(|p| p.line() as usize).unwrap_or(line);
        if record
            .iter()
            .all(|f| f.iter().all(|b| b.is_ascii_whitespace()))
        {
            continue;
        }
        let text = utf8(path, line, record.get(ti).unwrap_or_default())?;
        let label = utf8(path, line, record.get(li).unwrap_or_default())?;
        let text_b = bi
            .map(|b| utf8(path, line, record.get(b).unwrap_or_default()))
            .transpose()?;
        out.push(example(path, line, label, text, text_b)?);
    }
    non_empty(path, out)
}

/// Reads one JSON object a line: `{"text": "...", "label": "..." | 3}`, for pairs with
/// `"text_b": "..."` (and `"text_a"` allowed for `"text"`).
fn parse_jsonl(path: &Path, bytes: &[u8]) -> Result<Vec<Example>, DataError> {
    let mut out = Vec::new();
    for item in lines(path, bytes) {
        let (n, raw) = item?;
        let line = utf8(path, n, raw)?;
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| DataError::line(path, n, format!("invalid JSON: {e}")))?;
        let string = |key: &str| match value.get(key) {
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(DataError::line(
                path,
                n,
                format!("\"{key}\" is not a string: {other}"),
            )),
            None => Ok(None),
        };
        let text = match string("text")? {
            Some(t) => t,
            None => string("text_a")?
                .ok_or_else(|| DataError::line(path, n, "missing field \"text\""))?,
        };
        let text_b = string("text_b")?;
        let label = match value.get("label") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(x)) if x.is_i64() || x.is_u64() => x.to_string(),
            Some(other) => {
                return Err(DataError::line(
                    path,
                    n,
                    format!("\"label\" must be a string or an integer, got {other}"),
                ));
            }
            None => return Err(DataError::line(path, n, "missing field \"label\"")),
        };
        let e = example(path, n, &label, &text, text_b.as_deref())?;
        same_shape(path, &out, &e)?;
        out.push(e);
    }
    non_empty(path, out)
}

pub(crate) fn existing(dir: &Path, stem: &str) -> Option<(PathBuf, Format)> {
    ["tsv", "csv", "jsonl"].iter().find_map(|ext| {
        let p = dir.join(format!("{stem}.{ext}"));
        if p.is_file() {
            Format::from_path(&p).map(|f| (p, f))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tmp(PathBuf);
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn tmp(name: &str) -> Tmp {
        let dir = std::env::temp_dir().join(format!("mixup-data-{}-{}", name, std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Tmp(dir)
    }
    fn write(dir: &Tmp, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.0.join(name);
        std::fs::write(&p, bytes).expect("write");
        p
    }
    fn err(r: Result<Vec<Example>, DataError>) -> String {
        r.expect_err("should fail").to_string()
    }

    #[test]
    fn tsv_reads_crlf_and_bom_and_skips_blank_lines() {
        let d = tmp("tsv-ok");
        let p = write(
            &d,
            "a.tsv",
            b"\xEF\xBB\xBFPOS\tgood film\r\n\r\nNEG\t bad  one \n",
        );
        let ex = read_tsv(&p).expect("reads");
        assert_eq!(ex.len(), 2);
        assert_eq!(
            ex[0],
            Example {
                text: "good film".into(),
                text_b: None,
                label: "POS".into(),
                line: 1
            }
        );
        assert_eq!(ex[1].text, "bad  one");
        assert_eq!(ex[1].line, 3);
    }

    #[test]
    fn tsv_errors_name_file_and_line() {
        let d = tmp("tsv-bad");
        let p = write(&d, "missing-tab.tsv", b"POS\tok\nno tab here\n");
        let m = err(read_tsv(&p));
        assert!(
            m.contains("missing-tab.tsv:2") && m.contains("no tab"),
            "{m}"
        );

        let p = write(&d, "empty-text.tsv", b"POS\tok\nNEG\t   \n");
        let m = err(read_tsv(&p));
        assert!(
            m.contains("empty-text.tsv:2") && m.contains("empty text"),
            "{m}"
        );

        let p = write(
            &d,
            "bad-utf8.tsv",
            b"POS\tok\nPOS\tok\nNEG\tsister\xF0city\n",
        );
        let m = err(read_tsv(&p));
        assert!(m.contains("bad-utf8.tsv:3") && m.contains("UTF-8"), "{m}");

        let p = write(&d, "empty.tsv", b"");
        let m = err(read_tsv(&p));
        assert!(m.contains("empty.tsv") && m.contains("empty"), "{m}");
        let p = write(&d, "blank.tsv", b"\n\r\n  \n");
        assert!(err(read_tsv(&p)).contains("empty"));

        let mut long = b"POS\t".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_LINE_BYTES + 1));
        let p = write(&d, "long.tsv", &long);
        let m = err(read_tsv(&p));
        assert!(m.contains("long.tsv:1") && m.contains("limit"), "{m}");

        let m = err(read_tsv(&d.0.join("nope.tsv")));
        assert!(m.contains("nope.tsv"), "{m}");
    }

    #[test]
    fn csv_by_column_name() {
        let d = tmp("csv");
        let p = write(
            &d,
            "a.csv",
            b"\xEF\xBB\xBFid,label,text\r\n1,POS,\"good, really\"\r\n2,NEG,bad\r\n",
        );
        let f = Format::Csv {
            text_column: "text".into(),
            label_column: "label".into(),
            text_b_column: None,
        };
        let ex = read_examples(&p, &f).expect("reads");
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[0].text, "good, really");
        assert_eq!(
            ex[1],
            Example {
                text: "bad".into(),
                text_b: None,
                label: "NEG".into(),
                line: 3
            }
        );

        let f = Format::Csv {
            text_column: "sentence".into(),
            label_column: "label".into(),
            text_b_column: None,
        };
        let m = err(read_examples(&p, &f));
        assert!(m.contains("a.csv:1") && m.contains("\"sentence\""), "{m}");

        let p = write(&d, "ragged.csv", b"label,text\nPOS,ok\nNEG\n");
        let m = err(read_examples(&p, &Format::from_path(&p).expect("csv")));
        assert!(m.contains("ragged.csv:3"), "{m}");
        let p = write(
            &d,
            "empty-label.csv",
            b"label,text\nPOS,ok\nPOS,fine\n,orphan\n",
        );
        let m = err(read_examples(&p, &Format::from_path(&p).expect("csv")));
        assert!(m.contains("empty-label.csv:4: empty label"), "{m}");
    }

    #[test]
    fn jsonl_strings_and_integer_labels() {
        let d = tmp("jsonl");
        let p = write(
            &d,
            "a.jsonl",
            b"{\"text\": \"hi there\", \"label\": 1}\n{\"text\":\"yo\",\"label\":\"X\"}\n",
        );
        let ex = read_examples(&p, &Format::Jsonl).expect("reads");
        assert_eq!(ex[0].label, "1");
        assert_eq!(ex[1].label, "X");
        let p = write(
            &d,
            "b.jsonl",
            b"{\"text\": \"hi\", \"label\": 1}\n{\"text\": 3, \"label\": 1}\n",
        );
        let m = err(read_examples(&p, &Format::Jsonl));
        assert!(m.contains("b.jsonl:2") && m.contains("text"), "{m}");
        let p = write(&d, "c.jsonl", b"{\"text\": \"hi\"}\n");
        assert!(
            err(read_examples(&p, &Format::Jsonl)).contains("c.jsonl:1: missing field \"label\"")
        );
        let p = write(&d, "d.jsonl", b"{oops\n");
        assert!(err(read_examples(&p, &Format::Jsonl)).contains("d.jsonl:1: invalid JSON"));
    }

    /// Pairs in all three formats; a file mixing single texts and pairs names the line.
    #[test]
    fn pairs_in_tsv_csv_and_jsonl() {
        let d = tmp("pairs");
        let want = |ex: &[Example]| {
            assert_eq!(ex.len(), 2);
            assert_eq!(ex[0].text, "A man sleeps.");
            assert_eq!(ex[0].text_b.as_deref(), Some("Someone rests."));
            assert_eq!(ex[1].label, "no");
        };
        let p = write(
            &d,
            "a.tsv",
            b"yes\tA man sleeps.\tSomeone rests.\nno\tDogs bark.\tCats fly.\n",
        );
        want(&read_tsv(&p).expect("tsv pairs"));
        let p = write(
            &d,
            "a.csv",
            b"label,text_a,text_b\nyes,A man sleeps.,Someone rests.\nno,Dogs bark.,Cats fly.\n",
        );
        want(&read_examples(&p, &Format::from_path(&p).expect("csv")).expect("csv pairs"));
        let f = Format::Csv {
            text_column: "premise".into(),
            label_column: "label".into(),
            text_b_column: Some("hypothesis".into()),
        };
        let p = write(
            &d,
            "named.csv",
            b"premise,hypothesis,label\nA man sleeps.,Someone rests.,yes\nDogs bark.,Cats fly.,no\n",
        );
        want(&read_examples(&p, &f).expect("named columns"));
        let p = write(&d, "nohyp.csv", b"premise,label\nA,yes\n");
        let m = err(read_examples(&p, &f));
        assert!(
            m.contains("nohyp.csv:1") && m.contains("\"hypothesis\""),
            "{m}"
        );
        let p = write(
            &d,
            "a.jsonl",
            b"{\"text\": \"A man sleeps.\", \"text_b\": \"Someone rests.\", \"label\": \"yes\"}\n\
              {\"text_a\": \"Dogs bark.\", \"text_b\": \"Cats fly.\", \"label\": \"no\"}\n",
        );
        want(&read_examples(&p, &Format::Jsonl).expect("jsonl pairs"));

        let p = write(&d, "mixed.tsv", b"yes\ta\tb\nno\tonly one\n");
        let m = err(read_tsv(&p));
        assert!(m.contains("mixed.tsv:2") && m.contains("pairs"), "{m}");
        let p = write(&d, "mixed2.tsv", b"yes\ta\nno\ta\tb\n");
        let m = err(read_tsv(&p));
        assert!(
            m.contains("mixed2.tsv:2") && m.contains("single texts"),
            "{m}"
        );
        let p = write(&d, "four.tsv", b"yes\ta\tb\tc\n");
        assert!(err(read_tsv(&p)).contains("four.tsv:1: more than 3"));
        let p = write(&d, "emptyb.tsv", b"yes\ta\t  \n");
        assert!(err(read_tsv(&p)).contains("emptyb.tsv:1: empty second text"));
        let p = write(&d, "mixed.jsonl", b"{\"text\": \"a\", \"label\": 1}\n{\"text\": \"a\", \"text_b\": \"b\", \"label\": 1}\n");
        assert!(err(read_examples(&p, &Format::Jsonl)).contains("mixed.jsonl:2"));
    }

    #[test]
    fn trec_lines_coarse_and_fine_with_latin1_byte() {
        let d = tmp("trec");
        let p = write(
            &d,
            "TREC.train",
            b"DESC:manner How  did it end ?\nLOC:other Where is sister\xF0city ?\n",
        );
        let coarse = read_trec(&p, TrecLabels::Coarse).expect("reads");
        assert_eq!(coarse[0].label, "DESC");
        assert_eq!(coarse[0].text, "How did it end ?");
        assert_eq!(coarse[1].text, "Where is sister\u{f0}city ?");
        let fine = read_trec(&p, TrecLabels::Fine).expect("reads");
        assert_eq!(fine[1].label, "LOC:other");
        let p = write(&d, "bad.label", b"DESC:manner ok ?\nno label here\n");
        let m = err(read_examples(&p, &Format::from_path(&p).expect("trec")));
        assert!(
            m.contains("bad.label:2") && m.contains("COARSE:fine"),
            "{m}"
        );
    }
}
