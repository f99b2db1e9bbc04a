"""Which products are held out of all training: one rule, used by the detector and identification alike."""

from __future__ import annotations

import hashlib


def is_held_out(item_seq: str, fraction: float = 0.2) -> bool:
    """A stable ~20% of products (by ITEM_SEQ hash) never appear in training, so evaluation sees new products."""
    digest = hashlib.sha1(f"pillcheck-split:{item_seq}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < fraction
