"""Package barcodes in a photo of a medicine box: EAN-13 and GS1 DataMatrix carry the 표준코드 (GTIN-13).

Korean cartons print the 13-digit 표준코드 as an EAN-13 bar code and, on newer packs, inside a GS1 DataMatrix with the
expiry and lot ((01)0880…(17)…(10)…). Reading both lets a person add a medicine to their list by showing its box.
"""

from __future__ import annotations

import cv2
import numpy as np
import zxingcpp

from pillcheck.catalog.status import gtin13

FORMATS = (zxingcpp.BarcodeFormat.EAN13, zxingcpp.BarcodeFormat.UPCA, zxingcpp.BarcodeFormat.DataMatrix,
           zxingcpp.BarcodeFormat.Code128, zxingcpp.BarcodeFormat.ITF)
# zxing looks for codes at several scales itself; beyond this side a phone photo only costs time
MAX_SIDE = 2400


def read_codes(rgb: np.ndarray) -> list[str]:
    """Every 표준코드 readable in the photo (EAN-13, GTIN-14 or a GS1 element string, folded to 13 digits), in
    reading order, without duplicates; codes that are not a valid GTIN (a lot number's Code 128) are left out."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    side = max(gray.shape[:2])
    if side > MAX_SIDE:
        k = MAX_SIDE / side
        gray = cv2.resize(gray, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
    found = zxingcpp.read_barcodes(np.ascontiguousarray(gray), formats=FORMATS, try_rotate=True, try_downscale=True)
    codes = [gtin13(r.text) for r in found]
    return list(dict.fromkeys(c for c in codes if c))
