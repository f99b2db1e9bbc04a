"""Imprint recognizers compared on the same upright bands of held-out faces (``[train]`` env not needed).

    python bench/compare_readers.py MODEL.onnx [A.onnx+B.onnx ...]   (needs work/cutouts and $PILLCHECK_DB)

Per kind of face (real photo / drawn; faces with Hangul apart, when any model reads Hangul): exact greedy reads,
and for faces with text the rank of the true string by CTC among every catalog string the widest alphabet spells
(``A+B``: the mean of both models' likelihoods over the characters both read, as ``ImprintReader``). A model
without Hangul reads no Hangul face: its strings score -inf there.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from pillcheck import config
from pillcheck.catalog.db import open_catalog
from pillcheck.catalog.normalize import normalize_imprint
from pillcheck.inference.imprint import ImprintReader, ctc_scores, greedy, is_hangul, to_batch
from pillcheck.training import imprint as ti
from pillcheck.training.render import appearance_records


def main(specs: list[str]) -> None:
    records = appearance_records(open_catalog(config.default_db()).cursor())
    readers = {spec: ImprintReader([Path(p) for p in spec.split("+")], threads=1) for spec in specs}
    widest = max((r.alphabet for r in readers.values()), key=len)
    bands, labels, kinds = ti.build_samples(config.REPO_ROOT / "work" / "cutouts", records, True, 1, 400,
                                            np.random.default_rng(123), widest)
    kinds = [k + ("-hangul" if any(is_hangul(c) for c in t) else "") for k, t in zip(kinds, labels)]
    vocab = sorted({normalize_imprint(r.get(k), fold=False) for r in records.values()
                    for k in ("print_front", "print_back")} - {""})
    vocab = [v for v in vocab if all(c in widest for c in v)]
    for spec, reader in readers.items():
        stats: dict[str, list[int]] = {}
        for band, label, kind in zip(bands, labels, kinds):
            lps = [r(to_batch([band]), reader.alphabet)[0] for r in reader.recognizers]
            s = stats.setdefault(kind, [0, 0, 0, 0, 0])  # faces, exact, with text, CTC top-1, top-5
            s[0] += 1
            s[1] += greedy(lps[0], reader.alphabet)[0] == label
            if label:
                texts = vocab if label in vocab else [*vocab, label]
                scores = sum(ctc_scores(lp, texts, reader.alphabet) for lp in lps) / len(lps)
                rank = int((scores >= scores[texts.index(label)]).sum()) - 1  # ties (-inf) count against it
                s[2] += 1
                s[3] += rank == 0
                s[4] += rank < 5
        print(spec)
        for kind, (n, exact, text, top1, top5) in stats.items():
            print(f"  {kind}: {n} faces, exact read {exact / n:.3f}; {text} with text: CTC top-1 "
                  f"{top1 / max(text, 1):.3f}, top-5 {top5 / max(text, 1):.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
