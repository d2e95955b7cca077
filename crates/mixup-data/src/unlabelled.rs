//! Unlabelled texts for semi-supervised training (MixText): a dataset folder's
//! `unlabelled.txt` (one text per line) or `unlabelled.tsv` / `.csv` (a header naming a `text`
//! column) or `unlabelled.jsonl` (objects with a `"text"` string), and the augmentations a
//! user made elsewhere (e.g. back-translations), `unlabelled.aug1.txt`, `unlabelled.aug2.txt`,
//! ..., one text per line, paired line by line with the unlabelled texts. Built-in
//! augmentations for texts without such files: [`augment_words`].

use std::path::{Path, PathBuf};

use rand::{Rng, RngExt};

use crate::DataError;

/// One unlabelled text, where it came from, and its augmentations.
#[derive(Clone, Debug, PartialEq)]
pub struct UnlabelledText {
    /// The text.
    pub text: String,
    /// Its augmentations (from `unlabelled.augN.txt` files, or made by [`augment_words`]).
    pub augmentations: Vec<String>,
    /// The file it was read from.
    pub path: PathBuf,
    /// Its line (1-based; for JSONL and CSV the line of its record).
    pub line: usize,
}

fn io(path: &Path, e: std::io::Error) -> DataError {
    DataError::line(path, 1, format!("cannot read: {e}"))
}

/// Reads `dir`'s unlabelled texts and their `unlabelled.augN.txt` augmentations (`N` from 1
/// up while the files exist); `None` when the folder has no unlabelled file.
///
/// # Errors
///
/// Two unlabelled files, an unreadable or malformed file, an empty text, or an augmentation
/// file with a different number of lines, naming the file and line.
pub fn read_unlabelled(dir: &Path) -> Result<Option<Vec<UnlabelledText>>, DataError> {
    let found: Vec<PathBuf> = ["txt", "tsv", "csv", "jsonl"]
        .iter()
        .map(|ext| dir.join(format!("unlabelled.{ext}")))
        .filter(|p| p.is_file())
        .collect();
    let path = match found.as_slice() {
        [] => return Ok(None),
        [one] => one.clone(),
        [a, b, ..] => {
            return Err(DataError::line(
                b,
                1,
                format!("{} also exists: keep one unlabelled file", a.display()),
            ));
        }
    };
    let raw = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("txt");
    let texts: Vec<(usize, String)> = match ext {
        "txt" => raw
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim().to_string()))
            .collect(),
        "jsonl" => raw
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                let v: serde_json::Value = serde_json::from_str(l)
                    .map_err(|e| DataError::line(&path, i + 1, format!("not JSON: {e}")))?;
                match v.get("text").and_then(|t| t.as_str()) {
                    Some(t) => Ok((i + 1, t.trim().to_string())),
                    None => Err(DataError::line(&path, i + 1, "no \"text\" string")),
                }
            })
            .collect::<Result<_, _>>()?,
        _ => {
            let delimiter = if ext == "tsv" { b'\t' } else { b',' };
            let mut reader = csv::ReaderBuilder::new()
                .delimiter(delimiter)
                .flexible(false)
                .from_reader(raw.as_bytes());
            let header = reader
                .headers()
                .map_err(|e| DataError::line(&path, 1, format!("bad header: {e}")))?
                .clone();
            let col = header
                .iter()
                .position(|h| h == "text")
                .ok_or_else(|| DataError::line(&path, 1, "the header names no \"text\" column"))?;
            reader
                .records()
                .enumerate()
                .map(|(i, r)| {
                    let r = r.map_err(|e| DataError::line(&path, i + 2, e.to_string()))?;
                    Ok((i + 2, r.get(col).unwrap_or("").trim().to_string()))
                })
                .collect::<Result<_, DataError>>()?
        }
    };
    // A .txt file's trailing empty line is no text; any other empty text is an error.
    let mut texts = texts;
    while ext == "txt" && texts.last().is_some_and(|(_, t)| t.is_empty()) {
        texts.pop();
    }
    if let Some((line, _)) = texts.iter().find(|(_, t)| t.is_empty()) {
        return Err(DataError::line(&path, *line, "an empty unlabelled text"));
    }
    let mut out: Vec<UnlabelledText> = texts
        .into_iter()
        .map(|(line, text)| UnlabelledText {
            text,
            augmentations: Vec::new(),
            path: path.clone(),
            line,
        })
        .collect();
    for k in 1.. {
        let aug = dir.join(format!("unlabelled.aug{k}.txt"));
        if !aug.is_file() {
            break;
        }
        let raw = std::fs::read_to_string(&aug).map_err(|e| io(&aug, e))?;
        let mut lines: Vec<&str> = raw.lines().collect();
        while lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
        if lines.len() != out.len() {
            return Err(DataError::line(
                &aug,
                lines.len().min(out.len()) + 1,
                format!(
                    "{} lines, but {} holds {} texts: an augmentation file has one line per \
                     unlabelled text, in the same order",
                    lines.len(),
                    path.display(),
                    out.len()
                ),
            ));
        }
        for (i, (u, l)) in out.iter_mut().zip(lines).enumerate() {
            let l = l.trim();
            if l.is_empty() {
                return Err(DataError::line(&aug, i + 1, "an empty augmentation"));
            }
            u.augmentations.push(l.to_string());
        }
    }
    Ok(Some(out))
}

/// A built-in augmentation of `text`'s whitespace-separated words: with `drop`, each word is
/// deleted with probability `rate` (at least one word is kept); with `swap`, then each
/// adjacent pair is swapped with probability `rate` (left to right, a swapped word moves on
/// at most once). EDA's random deletion and swap (Wei and Zou 2019): no resources needed,
/// any language, and the meaning mostly kept at small rates.
pub fn augment_words<R: Rng + ?Sized>(
    text: &str,
    drop: bool,
    swap: bool,
    rate: f64,
    rng: &mut R,
) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() {
        return text.to_string();
    }
    let mut kept: Vec<&str> = if drop {
        words
            .iter()
            .copied()
            .filter(|_| !rng.random_bool(rate))
            .collect()
    } else {
        words.clone()
    };
    if kept.is_empty() {
        kept.push(words[rng.random_range(0..words.len())]);
    }
    if swap {
        let mut i = 0;
        while i + 1 < kept.len() {
            if rng.random_bool(rate) {
                kept.swap(i, i + 1);
                i += 2;
            } else {
                i += 1;
            }
        }
    }
    kept.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mixup-unl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        d
    }

    #[test]
    fn reads_texts_and_paired_augmentations_and_names_bad_lines() {
        let d = tmp("read");
        assert_eq!(read_unlabelled(&d).expect("none"), None);
        std::fs::write(d.join("unlabelled.txt"), "a b c\nd e\n").expect("w");
        std::fs::write(d.join("unlabelled.aug1.txt"), "a c b\ne d\n").expect("w");
        let u = read_unlabelled(&d).expect("reads").expect("some");
        assert_eq!(u.len(), 2);
        assert_eq!(u[1].text, "d e");
        assert_eq!(u[1].augmentations, vec!["e d".to_string()]);
        assert_eq!(u[1].line, 2);
        std::fs::write(d.join("unlabelled.aug2.txt"), "only one\n").expect("w");
        let e = read_unlabelled(&d).expect_err("short").to_string();
        assert!(
            e.contains("unlabelled.aug2.txt") && e.contains("2 texts"),
            "{e}"
        );
        std::fs::remove_file(d.join("unlabelled.aug2.txt")).expect("rm");
        std::fs::write(d.join("unlabelled.txt"), "a b c\n\nd e\n").expect("w");
        let e = read_unlabelled(&d).expect_err("empty").to_string();
        assert!(e.contains("unlabelled.txt:2"), "{e}");
        std::fs::remove_file(d.join("unlabelled.txt")).expect("rm");
        std::fs::remove_file(d.join("unlabelled.aug1.txt")).expect("rm");
        std::fs::write(d.join("unlabelled.tsv"), "id\ttext\n1\tx y\n2\tz\n").expect("w");
        let u = read_unlabelled(&d).expect("tsv").expect("some");
        assert_eq!((u[0].text.as_str(), u[1].line), ("x y", 3));
        std::fs::write(d.join("unlabelled.jsonl"), "{\"text\": \"q\"}\n").expect("w");
        let e = read_unlabelled(&d).expect_err("two files").to_string();
        assert!(e.contains("keep one"), "{e}");
        std::fs::remove_file(d.join("unlabelled.tsv")).expect("rm");
        std::fs::write(
            d.join("unlabelled.jsonl"),
            "{\"text\": \"q\"}\n{\"txt\": 1}\n",
        )
        .expect("w");
        let e = read_unlabelled(&d).expect_err("no text").to_string();
        assert!(e.contains("unlabelled.jsonl:2"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn augmentations_keep_words_and_are_seeded() {
        let text = "the quick brown fox jumps over the lazy dog";
        let mut a = rand::rngs::StdRng::seed_from_u64(1);
        let mut b = rand::rngs::StdRng::seed_from_u64(1);
        let x = augment_words(text, true, true, 0.3, &mut a);
        assert_eq!(x, augment_words(text, true, true, 0.3, &mut b));
        // Swaps only permute; drops only delete.
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let s = augment_words(text, false, true, 0.5, &mut rng);
        let mut w1: Vec<&str> = s.split(' ').collect();
        let mut w2: Vec<&str> = text.split(' ').collect();
        assert_ne!(w1, w2, "rate 0.5 swaps something");
        w1.sort_unstable();
        w2.sort_unstable();
        assert_eq!(w1, w2);
        let d = augment_words(text, true, false, 0.5, &mut rng);
        assert!(d.split(' ').count() < 9 && !d.is_empty());
        assert_eq!(augment_words("one", true, false, 0.99, &mut rng), "one");
    }
}
