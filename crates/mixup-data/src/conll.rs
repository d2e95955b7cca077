//! CoNLL column files for sequence labelling: one token a line, columns separated by tabs or
//! spaces, a blank line between sentences, `-DOCSTART-` lines skipped.
//!
//! Tags are checked to be `O`, `B-TYPE` or `I-TYPE`. IOB1 input (where `B-` only separates two
//! adjacent entities of one type) is converted to BIO (IOB2): an `I-X` that does not continue
//! an `X` entity becomes `B-X`.

use std::path::Path;

use crate::{DataError, MAX_LINE_BYTES};

/// How the tag column is encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TagScheme {
    /// BIO / IOB2: every entity starts with `B-` (CoNLL-2003 as shipped in `shared/data`).
    #[default]
    Bio,
    /// IOB1: entities start with `I-`; `B-` only between two adjacent entities of one type
    /// (the original CoNLL-2003 files). Converted to BIO on reading.
    Iob1,
}

/// Which columns hold the token and the tag (0-based), and the tag scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConllOptions {
    /// Column of the token.
    pub token_column: usize,
    /// Column of the tag; `None` means the last column of each line.
    pub tag_column: Option<usize>,
    /// Tag scheme of the file.
    pub scheme: TagScheme,
}

impl Default for ConllOptions {
    /// Token in column 0, tag in the last column, BIO.
    fn default() -> Self {
        Self {
            token_column: 0,
            tag_column: None,
            scheme: TagScheme::Bio,
        }
    }
}

/// One sentence of a CoNLL file, its tags in BIO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaggedSentence {
    /// The tokens.
    pub tokens: Vec<String>,
    /// One tag a token.
    pub tags: Vec<String>,
    /// The 1-based line of the first token.
    pub line: usize,
}

/// Reads a CoNLL file (see the module docs).
///
/// # Errors
///
/// [`DataError`] naming the file and line: an unreadable or empty file, bytes that are not
/// UTF-8, a line over [`MAX_LINE_BYTES`], a line without the token or tag column, or a tag
/// that is not `O`, `B-TYPE` or `I-TYPE`.
pub fn read_conll(path: &Path, options: &ConllOptions) -> Result<Vec<TaggedSentence>, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_conll(path, &bytes, options)
}

/// Parses the bytes of a CoNLL file; `path` only names the file in errors.
///
/// # Errors
///
/// As [`read_conll`].
pub fn parse_conll(
    path: &Path,
    bytes: &[u8],
    options: &ConllOptions,
) -> Result<Vec<TaggedSentence>, DataError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut out = Vec::new();
    let mut current = TaggedSentence {
        tokens: Vec::new(),
        tags: Vec::new(),
        line: 0,
    };
    let flush = |s: &mut TaggedSentence, out: &mut Vec<TaggedSentence>| {
        if !s.tokens.is_empty() {
            if options.scheme == TagScheme::Iob1 {
                s.tags = iob1_to_bio(&s.tags);
            }
            out.push(std::mem::replace(
                s,
                TaggedSentence {
                    tokens: Vec::new(),
                    tags: Vec::new(),
                    line: 0,
                },
            ));
        }
    };
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let n = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.len() > MAX_LINE_BYTES {
            return Err(DataError::line(
                path,
                n,
                format!("line longer than the {MAX_LINE_BYTES} byte limit"),
            ));
        }
        let line = std::str::from_utf8(raw).map_err(|e| {
            DataError::line(
                path,
                n,
                format!(
                    "not valid UTF-8 (bad byte at column {})",
                    e.valid_up_to() + 1
                ),
            )
        })?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            flush(&mut current, &mut out);
            continue;
        }
        if fields[0] == "-DOCSTART-" {
            flush(&mut current, &mut out);
            continue;
        }
        let tag_column = options.tag_column.unwrap_or(fields.len() - 1);
        let needed = options.token_column.max(tag_column) + 1;
        if fields.len() < needed || (options.tag_column.is_none() && fields.len() < 2) {
            return Err(DataError::line(
                path,
                n,
                format!(
                    "{} column(s), expected at least {} (token in column {}, tag in column {})",
                    fields.len(),
                    needed.max(2),
                    options.token_column + 1,
                    options
                        .tag_column
                        .map_or_else(|| "last".to_string(), |c| (c + 1).to_string())
                ),
            ));
        }
        let tag = fields[tag_column];
        check_tag(tag).map_err(|m| DataError::line(path, n, m))?;
        if current.tokens.is_empty() {
            current.line = n;
        }
        current
            .tokens
            .push(fields[options.token_column].to_string());
        current.tags.push(tag.to_string());
    }
    flush(&mut current, &mut out);
    if out.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}

fn check_tag(tag: &str) -> Result<(), String> {
    if tag == "O" {
        return Ok(());
    }
    match tag.split_once('-') {
        Some(("B" | "I", kind)) if !kind.is_empty() => Ok(()),
        _ => Err(format!(
            "tag {tag:?} is not O, B-TYPE or I-TYPE (a BIO or IOB1 tag)"
        )),
    }
}

/// The type of a `B-X` / `I-X` tag; `None` for `O` and anything else.
fn kind(tag: &str) -> Option<&str> {
    match tag.split_once('-') {
        Some(("B" | "I", k)) if !k.is_empty() => Some(k),
        _ => None,
    }
}

/// Converts IOB1 tags to BIO: an `I-X` that does not continue an `X` entity becomes `B-X`.
pub fn iob1_to_bio<S: AsRef<str>>(tags: &[S]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for (i, t) in tags.iter().enumerate() {
        let t = t.as_ref();
        let continues = i > 0 && kind(tags[i - 1].as_ref()) == kind(t);
        match t.strip_prefix("I-") {
            Some(k) if !continues => out.push(format!("B-{k}")),
            _ => out.push(t.to_string()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, options: &ConllOptions) -> Result<Vec<TaggedSentence>, DataError> {
        parse_conll(Path::new("x.conll"), text.as_bytes(), options)
    }

    #[test]
    fn reads_sentences_skips_docstart_and_converts_iob1() {
        let text = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP I-ORG\nrejects VBZ B-VP O\n\
                    German JJ B-NP I-MISC\ncall NN I-NP O\n\nPeter NNP B-NP I-PER\r\n\
                    Blackburn NNP I-NP I-PER\nJohn NNP I-NP B-PER\n";
        let iob1 = ConllOptions {
            scheme: TagScheme::Iob1,
            ..ConllOptions::default()
        };
        let s = parse(text, &iob1).expect("parse");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].tokens, ["EU", "rejects", "German", "call"]);
        assert_eq!(s[0].tags, ["B-ORG", "O", "B-MISC", "O"]);
        assert_eq!(s[0].line, 3);
        // IOB1's B- between two adjacent PER entities stays B-.
        assert_eq!(s[1].tags, ["B-PER", "I-PER", "B-PER"]);
        assert_eq!(s[1].line, 8);
        // Chosen columns: token 0, tag 2 (the chunk tag here).
        let chunks = ConllOptions {
            tag_column: Some(2),
            ..ConllOptions::default()
        };
        assert_eq!(parse(text, &chunks).expect("parse")[0].tags[0], "B-NP");
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let e = parse("EU B-ORG\nrejects\n", &ConllOptions::default()).expect_err("one column");
        assert!(e.to_string().contains("x.conll:2"), "{e}");
        let e = parse("EU B-ORG\ncall X-NP\n", &ConllOptions::default()).expect_err("bad tag");
        assert!(
            e.to_string().contains("x.conll:2") && e.to_string().contains("X-NP"),
            "{e}"
        );
        let e = parse("\n\n-DOCSTART- O\n", &ConllOptions::default()).expect_err("empty");
        assert!(e.to_string().contains("empty"), "{e}");
        let e = parse_conll(
            Path::new("x.conll"),
            b"a O\n\xff O\n",
            &ConllOptions::default(),
        )
        .expect_err("utf8");
        assert!(e.to_string().contains("x.conll:2"), "{e}");
        let wide = ConllOptions {
            tag_column: Some(5),
            ..ConllOptions::default()
        };
        let e = parse("EU NNP B-NP I-ORG\n", &wide).expect_err("missing column");
        assert!(e.to_string().contains("column 6"), "{e}");
    }
}
