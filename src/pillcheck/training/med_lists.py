"""Simulated medication lists for `eval identify --lists`: how much the person's own list helps, and what it risks.

Per photo: no list; the photo's own products plus 6 random others; the photo's own products plus k others (k = 3, 9,
20), half of the others look-alikes of the photo's products (same imprint code, else same shape and colour), as a
real drawer holds; and lists of 10 products none of which is in the photo, random or half look-alikes, where any sure
answer is a wrong one (unless the product named is interchangeable with the pill: same HIRA 주성분코드).
"""

from __future__ import annotations

import zlib

import numpy as np

from pillcheck.catalog.identify import CandidateIndex

HELD = (3, 9, 20)
ABSENT = 10


class Lookalikes:
    """Products a pill is easily taken for: the same code on a face, else the same shape and front colour."""

    def __init__(self, index: CandidateIndex) -> None:
        self.index = index
        self.by_code: dict[str, set[str]] = {}
        for seq, f, b in zip(index.item_seq, index.front, index.back):
            for code in {f, b} - {""}:
                self.by_code.setdefault(code, set()).add(str(seq))
        self.by_look: dict[tuple, set[str]] = {}
        for seq, shape, colour in zip(index.item_seq, index.shape_idx, index.colour_front):
            self.by_look.setdefault((int(shape), colour.tobytes()), set()).add(str(seq))
        self.products = sorted(index.first_record)

    def of(self, seq: str) -> list[str]:
        i = self.index.first_record.get(seq)
        if i is None:
            return []
        twins = set().union(*(self.by_code.get(c, set()) for c in {self.index.front[i], self.index.back[i]} - {""}))
        same = twins or self.by_look.get((int(self.index.shape_idx[i]), self.index.colour_front[i].tobytes()), set())
        return sorted(same - {seq})


def simulated_lists(image: str, products: list[str], looks: Lookalikes) -> dict[str, list[str] | None]:
    """The lists one photo is ranked under, keyed by condition; reproducible per image name."""
    rng = np.random.default_rng(zlib.crc32(image.encode()))
    catalog = looks.products
    own = list(dict.fromkeys(products))
    near = sorted(set().union(*(looks.of(p) for p in own)) - set(own))

    def draw(n: int, pool: list[str], taken: set[str]) -> list[str]:
        pool = [p for p in pool if p not in taken]
        return [str(x) for x in rng.choice(pool, size=min(n, len(pool)), replace=False)] if pool else []

    def others(n: int, look_share: float) -> list[str]:
        alike = draw(int(round(n * look_share)), near, set(own))
        return alike + draw(n - len(alike), catalog, set(own) | set(alike))

    lists: dict[str, list[str] | None] = {"none": None, "own+6-random": own + others(6, 0.0)}
    for k in HELD:
        lists[f"own+{k}"] = own + others(k, 0.5)
    lists[f"absent{ABSENT}"] = others(ABSENT, 0.0)
    lists[f"absent{ABSENT}-lookalike"] = others(ABSENT, 0.5)
    return lists
