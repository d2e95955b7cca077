#!/usr/bin/env python3
"""Builds `trec-pairs`, a text-pair classification dataset, from TREC-50 (`trec50/`).

Each example is two questions and whether they ask for the same kind of answer: label `same`
when both have the same fine TREC label (e.g. both `NUM:date`), `different` otherwise. Half of
the `different` pairs share the coarse class (`NUM:date` vs `NUM:count`), so the task cannot
be solved from one question or from the coarse class alone. Classes are balanced 50/50.
Training pairs are drawn from TREC's training questions only and test pairs from its test
questions only, so no question crosses the split.

Usage: scripts/make-pair-data.py [--data-dir DIR] [--out DIR] [--train N] [--test N] [--seed S]

DIR defaults to $MIXUP_DATA_DIR or ../shared/data; the output folder defaults to
$MIXUP_CACHE_DIR (or ~/.cache/mixup-zoo), where `mixup train` finds datasets by name. Writes
OUT/trec-pairs/{train,test}.tsv (`label<TAB>question_a<TAB>question_b`) and SOURCE.md. The
same arguments always give the same files (Python's `random.Random(seed)`).
"""

import argparse
import collections
import hashlib
import os
import random
import sys
from pathlib import Path


def read(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if "\t" not in line:
                sys.exit(f"{path}:{n}: expected label<TAB>text")
            label, text = line.split("\t", 1)
            rows.append((label, text))
    if not rows:
        sys.exit(f"{path}: empty")
    return rows


def pairs(rows, count, rng):
    """`count` pairs of `rows`, alternately `same` and `different`, then shuffled."""
    by_fine = collections.defaultdict(set)
    for label, text in rows:
        by_fine[label].add(text)
    by_fine = {f: sorted(t) for f, t in by_fine.items()}
    fines = sorted(by_fine)
    coarse = lambda f: f.split(":")[0]
    # Classes drawn in proportion to their questions; positives need two distinct ones.
    weighted = [f for f in fines for _ in by_fine[f]]
    positive = [f for f in weighted if len(by_fine[f]) >= 2]
    out, seen = [], set()
    while len(out) < count:
        if len(out) % 2 == 0:
            fine = rng.choice(positive)
            a, b = rng.sample(by_fine[fine], 2)
            label = "same"
        else:
            fa = rng.choice(weighted)
            siblings = [f for f in fines if coarse(f) == coarse(fa) and f != fa]
            if siblings and rng.random() < 0.5:
                fb = rng.choice(siblings)
            else:
                fb = rng.choice([f for f in fines if coarse(f) != coarse(fa)])
            a, b = rng.choice(by_fine[fa]), rng.choice(by_fine[fb])
            label = "different"
        if (a, b) in seen:
            continue
        seen.add((a, b))
        out.append((label, a, b))
    rng.shuffle(out)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_data = os.environ.get("MIXUP_DATA_DIR") or str(
        Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    )
    default_cache = os.environ.get("MIXUP_CACHE_DIR") or str(
        Path.home() / ".cache" / "mixup-zoo"
    )
    p.add_argument("--data-dir", default=default_data)
    p.add_argument("--out", default=default_cache)
    p.add_argument("--train", type=int, default=4000)
    p.add_argument("--test", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    src = Path(args.data_dir) / "trec50"
    if not (src / "train.tsv").is_file():
        sys.exit(
            f"{src}/train.tsv not found: point --data-dir (or MIXUP_DATA_DIR) at the folder "
            "holding trec50/ (`mixup data fetch trec50` downloads it)"
        )
    out = Path(args.out) / "trec-pairs"
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    counts = {}
    digests = {}
    for split, n in [("train", args.train), ("test", args.test)]:
        made = pairs(read(src / f"{split}.tsv"), n, rng)
        text = "".join(f"{l}\t{a}\t{b}\n" for l, a, b in made)
        path = out / f"{split}.tsv"
        tmp = path.with_suffix(".tsv.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        counts[split] = collections.Counter(l for l, _, _ in made)
        digests[split] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    cmd = (
        f"scripts/make-pair-data.py --train {args.train} --test {args.test} --seed {args.seed}"
    )
    source = f"""# trec-pairs: do two questions ask for the same kind of answer?

Built by `{cmd}` from `trec50/` (TREC question classification with the 50 fine labels; see
that folder's SOURCE.md for where the questions come from and their terms).

Task: text-pair classification. Label `same` when both questions have the same fine TREC label
(e.g. both `NUM:date`), `different` otherwise; half of the `different` pairs share the coarse
class (`NUM:date` vs `NUM:count`). Balanced 50/50 by construction.

Format: `label<TAB>question_a<TAB>question_b`, UTF-8, no header. Training pairs use only TREC's
training questions and test pairs only its test questions; a question can appear in several
pairs. No dev split.

| file | pairs | same | different | sha256 |
| --- | --- | --- | --- | --- |
| train.tsv | {sum(counts['train'].values())} | {counts['train']['same']} | {counts['train']['different']} | `{digests['train'][:16]}` |
| test.tsv | {sum(counts['test'].values())} | {counts['test']['same']} | {counts['test']['different']} | `{digests['test'][:16]}` |

Licence / terms: those of the TREC questions (`trec50/SOURCE.md`); do not commit these files.
"""
    (out / "SOURCE.md").write_text(source, encoding="utf-8")
    print(f"wrote {out} ({sum(counts['train'].values())} train, {sum(counts['test'].values())} test pairs)")


if __name__ == "__main__":
    main()
