"""The report a person shows a pharmacist: one picture (PNG) and the same content as A4 pages (PDF) — the photo
with its numbers, what each pill is, the warnings with what to do now, my medications, what was not checked, and
when it was made.

Drawn with PIL in the person's language, as a stack of rows so the PDF can break pages between rows, never
through a line. Hangul needs a Korean font: Debian's fonts-nanum (installed in the Docker image), or
$PILLCHECK_FONT; without one, Hangul would print as empty boxes, so the sheet says so in the log.
"""

from __future__ import annotations

import functools
import logging
import os
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pillcheck.safety.dur import SEVERITY_ORDER
from pillcheck.ui import render
from pillcheck.ui.i18n import t

if TYPE_CHECKING:
    from pillcheck.ui.app import Evaluation

log = logging.getLogger(__name__)

WIDTH = 1080  # px: sharp on a phone, and an A4 page at ~130 dpi
MARGIN = 44
PAGE_HEIGHT = round(WIDTH * 297 / 210)  # A4's shape
FONT_DIRS = (Path("/usr/share/fonts/truetype/nanum"), Path("/usr/share/fonts/truetype/nanum-gothic"))
SEVERITY_FILL = {"critical": ((254, 226, 226), (185, 28, 28)), "warning": ((255, 237, 213), (194, 65, 12))}
INK, SOFT = (17, 24, 39), (55, 65, 81)


@functools.cache
def font_files() -> tuple[Path, Path] | None:
    """(regular, bold) font files with Hangul: $PILLCHECK_FONT (both), else Debian's NanumGothic."""
    if os.environ.get("PILLCHECK_FONT") and Path(os.environ["PILLCHECK_FONT"]).is_file():
        path = Path(os.environ["PILLCHECK_FONT"])
        return path, path
    for folder in FONT_DIRS:
        regular, bold = folder / "NanumGothic.ttf", folder / "NanumGothicBold.ttf"
        if regular.is_file():
            return regular, bold if bold.is_file() else regular
    log.warning("no Korean font (apt-get install fonts-nanum, or set PILLCHECK_FONT): Hangul prints as boxes")
    return None


@functools.cache
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    files = font_files()
    return ImageFont.truetype(str(files[bold]), size) if files else ImageFont.load_default(size)


def plain(text: str) -> str:
    """The text without emoji (fonts for print have none: they would be boxes) and with single spaces."""
    kept = "".join(c for c in text if unicodedata.category(c) not in ("So", "Cs", "Mn") or "가" <= c <= "힣")
    return " ".join(kept.replace("\ufe0f", "").split())


def wrap(text: str, fnt: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: float) -> list[str]:
    """Lines no wider than ``width``: broken at spaces, and inside a word only when the word alone is too wide
    (long Korean product names)."""
    lines, line = [], ""
    for word in text.split(" "):
        trial = f"{line} {word}" if line else word
        if fnt.getlength(trial) <= width:
            line = trial
            continue
        if line:
            lines.append(line)
        line = ""
        for ch in word:
            if fnt.getlength(line + ch) > width and line:
                lines.append(line)
                line = ""
            line += ch
    return [*lines, line] if line else lines


@dataclass
class Sheet:
    """Rows of one fixed width, stacked; each row is a place the PDF may break a page. ``lines``: the text drawn,
    in order (what the picture says, for a test or an alt text)."""

    rows: list[Image.Image] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def text(self, text: str, size: int = 30, bold: bool = False, colour: tuple = INK,
             fill: tuple | None = None, bar: tuple | None = None, indent: int = 0, gap: int = 8) -> None:
        fnt, inner = font(size, bold), WIDTH - 2 * MARGIN - indent - (24 if fill else 0)
        lines = wrap(plain(text), fnt, inner)
        self.lines.append(" ".join(lines))
        for i, line in enumerate(lines):
            height = round(size * 1.45) + (gap if i == len(lines) - 1 else 0)
            row = Image.new("RGB", (WIDTH, height), (255, 255, 255))
            draw = ImageDraw.Draw(row)
            x = MARGIN + indent
            if fill:
                draw.rectangle((x, 0, WIDTH - MARGIN, height - (gap if i == len(lines) - 1 else 0)), fill=fill)
                if bar:
                    draw.rectangle((x, 0, x + 8, height - (gap if i == len(lines) - 1 else 0)), fill=bar)
                x += 24
            draw.text((x, round(size * 0.2)), line, font=fnt, fill=colour)
            self.rows.append(row)

    def space(self, height: int = 16) -> None:
        self.rows.append(Image.new("RGB", (WIDTH, height), (255, 255, 255)))

    def picture(self, rgb: np.ndarray) -> None:
        img = Image.fromarray(np.ascontiguousarray(rgb))
        width = WIDTH - 2 * MARGIN
        img = img.resize((width, max(1, round(img.height * width / img.width))), Image.Resampling.LANCZOS)
        if img.height > PAGE_HEIGHT - 2 * MARGIN:  # a tall photo still fits one page
            h = PAGE_HEIGHT - 2 * MARGIN
            img = img.resize((max(1, round(img.width * h / img.height)), h), Image.Resampling.LANCZOS)
        row = Image.new("RGB", (WIDTH, img.height + 12), (255, 255, 255))
        row.paste(img, ((WIDTH - img.width) // 2, 0))
        self.rows.append(row)

    def image(self) -> Image.Image:
        """All rows on one long picture."""
        out = Image.new("RGB", (WIDTH, sum(r.height for r in self.rows) + 2 * MARGIN), (255, 255, 255))
        y = MARGIN
        for r in self.rows:
            out.paste(r, (0, y))
            y += r.height
        return out

    def pages(self) -> list[Image.Image]:
        """A4-shaped pages, each filled with whole rows."""
        pages, current, used = [], [], 0
        room = PAGE_HEIGHT - 2 * MARGIN
        for r in self.rows:
            if current and used + r.height > room:
                pages.append(current)
                current, used = [], 0
            current.append(r)
            used += r.height
        pages.append(current)
        out = []
        for rows in pages:
            page = Image.new("RGB", (WIDTH, PAGE_HEIGHT), (255, 255, 255))
            y = MARGIN
            for r in rows:
                page.paste(r, (0, y))
                y += r.height
            out.append(page)
        return out


def build(ev: Evaluation, photo: np.ndarray | None, lang: str, when: datetime, device: dict) -> Sheet:
    """The sheet of one evaluation, its photo with the numbered boxes drawn (``render.annotate``) if any, and the
    person's profile from ``device`` (age, pregnancy, nursing: what a pharmacist asks first)."""
    s = Sheet()
    s.text(t(lang, "sheet_title"), 44, bold=True)
    offset = when.isoformat(timespec="minutes")[16:] if when.utcoffset() is not None else ""
    s.text(t(lang, "sheet_made", when=f"{when:%Y-%m-%d %H:%M}" + (f" (UTC{offset})" if offset else "")), 26,
           colour=SOFT)
    age = device.get("age")
    pregnant = render.PREGNANCY_CHOICE.get(device.get("pregnant"), "unknown")
    profile = [f"{t(lang, 'age')}: {int(age) if isinstance(age, int | float) else '—'}",
               f"{t(lang, 'pregnancy')}: {t(lang, 'preg_' + pregnant)}"] + ([t(lang, "nursing")] if device.get("nursing")
                                                                        else [])
    s.text(" · ".join(profile), 26, colour=SOFT)
    if ev.data == "demo":
        s.text(t(lang, "demo_banner"), 28, bold=True, colour=(120, 53, 15), fill=(254, 243, 199), bar=(217, 119, 6))
    if photo is not None:
        s.space()
        s.picture(photo)
    warnings = sorted((ev.check or {}).get("warnings", []), key=lambda w: SEVERITY_ORDER.get(w["severity"], 9))
    serious = [w for w in warnings if render.is_serious(w)]
    who = lambda w: render.products_of(w, ev.labels)  # noqa: E731
    s.space()
    s.text(t(lang, "warnings_title"), 36, bold=True)
    for w in serious:
        fill, bar = SEVERITY_FILL[w["severity"]]
        ink = (127, 29, 29) if w["severity"] == "critical" else (124, 45, 18)
        s.text(f"{t(lang, 'sev_' + w['severity'])} · {w['type_name']} — {t(lang, 'kind_' + w['kind'])}", 32, True,
               ink, fill, bar, gap=0)
        s.text(who(w), 28, True, ink, fill, bar, gap=0)
        s.text(f"{t(lang, 'reason')}: {w['reason'] or ''}", 26, False, ink, fill, bar, gap=0)
        s.text(t(lang, "do_" + w["severity"]), 28, True, ink, fill, bar)
    if not serious:
        s.text(t(lang, render.calm_key(ev.check, ev.labels, ev.not_identified)), 30, True)
    if ev.possible:
        nums = sorted({int(n) for e in ev.possible for n in e["if"]})
        s.text(t(lang, "sheet_possible", n=len(ev.possible), nums=", ".join(f"#{n}" for n in nums)), 28, True,
               (31, 41, 55), (243, 244, 246), (75, 85, 99))
    cautions = [w for w in warnings if not render.is_serious(w)]
    if cautions:
        s.text(t(lang, "sheet_cautions", n=len(cautions)), 28, True)
        for w in cautions:
            s.text(f"· {who(w)} · {w['type_name']}: {w['reason'] or ''}", 24, indent=16, gap=2)
    if ev.pills:
        s.space()
        s.text(t(lang, "sheet_pills", n=len(ev.pills)), 36, True)
        for p in ev.pills:
            prod = render.shown_product(p, ev.info) or {}
            name = prod.get("name") or t(lang, "unknown_product")
            colour = render.STATUS_RGB.get(p["status"], render.STATUS_RGB["unknown"])
            s.text(f"#{p['index']} {name}{' ?' if p['status'] == 'unsure' else ''} — {t(lang, 'status_' + p['status'])}",
                   30, True, colour, gap=0)
            facts = [f"{t(lang, 'imprint_read')}: {p.get('imprint_read') or '—'}", prod.get("company") or "",
                     prod.get("item_seq") or ""]
            s.text(" · ".join(x for x in facts if x), 24, colour=SOFT, indent=16)
    if ev.meds:
        s.space()
        s.text(t(lang, "sheet_meds", n=len(ev.meds)), 36, True)
        for m in ev.meds:
            s.text(f"· {(ev.info.get(m) or {}).get('name') or m} ({m})", 26, indent=16, gap=2)
    gaps = render.gap_lines(ev.check, ev.labels, ev.not_identified, lang, bool(device.get("nursing")))
    if gaps:
        s.space()
        for g in gaps:
            s.text(f"· {g}", 24, colour=SOFT, gap=2)
    s.space()
    s.text(t(lang, "disclaimer"), 24, colour=SOFT)
    return s


def write(folder: Path, stem: str, sheet: Sheet) -> list[Path]:
    """``stem``.png (one long picture, to show or share from the phone) and ``stem``.pdf (A4 pages, to print)."""
    png, pdf = folder / f"{stem}.png", folder / f"{stem}.pdf"
    sheet.image().save(png, "PNG", optimize=True)
    first, *rest = sheet.pages()
    first.save(pdf, "PDF", resolution=130, save_all=True, append_images=rest)
    return [png, pdf]
