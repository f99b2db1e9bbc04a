"""What the person sees, as pure functions of the report: numbered boxes on the photo, cards, the warnings panel.

No Gradio here, so every piece is testable on its own. All catalog text is HTML-escaped: product names and
official reasons are data, never markup.
"""

from __future__ import annotations

from html import escape

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pillcheck.images import scaled
from pillcheck.safety.dur import SEVERITY_ORDER
from pillcheck.ui.i18n import t, term

# Box colours by status (RGB) — also used by the cards so a number reads the same on the photo and below it.
STATUS_RGB = {"sure": (22, 130, 60), "confirmed": (29, 78, 216), "unsure": (194, 65, 12), "unknown": (75, 85, 99)}
SEVERITY_ICON = {"critical": "⛔", "warning": "⚠️", "caution": "🔶", "info": "ℹ️"}
DISPLAY_SIDE = 1280  # longest side of the annotated photo: sharp on a phone, light to send
# the profile's pregnancy choice -> Profile.pregnant (None: not said, the pregnancy rules are reported as not checked),
# and back: the words ``preg_<choice>`` on the page, in the profile and on the printed sheet
PREGNANCY = {"no": False, "yes": True, "unknown": None}
PREGNANCY_CHOICE = {v: k for k, v in PREGNANCY.items()}


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def downscale(rgb: np.ndarray, max_side: int = DISPLAY_SIDE) -> tuple[np.ndarray, float]:
    """The photo at display size (kept in the session instead of the full photo) and the scale used."""
    h, w = rgb.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale == 1.0:
        return rgb, scale
    return scaled(rgb, scale), scale


def annotate(preview: np.ndarray, pills: list[dict], scale: float = 1.0) -> np.ndarray:
    """The photo with one numbered box per pill, coloured by status; boxes are in original pixels × ``scale``."""
    img = Image.fromarray(np.ascontiguousarray(preview))
    draw = ImageDraw.Draw(img)
    side = max(img.size)
    line = max(2, side // 300)
    font = ImageFont.load_default(size=max(14, side // 28))
    for p in pills:
        colour = STATUS_RGB.get(p["status"], STATUS_RGB["unknown"])
        x1, y1, x2, y2 = (v * scale for v in p["box"])
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=line)
        label = str(p["index"])
        tx1, ty1, tx2, ty2 = draw.textbbox((0, 0), label, font=font)
        pad = line * 2
        bw, bh = tx2 - tx1 + 2 * pad, ty2 - ty1 + 2 * pad
        bx = min(max(0.0, x1), img.width - bw)  # keep the number on the photo near the box's corner
        by = y1 - bh if y1 - bh >= 0 else min(y1, img.height - bh)
        draw.rounded_rectangle((bx, by, bx + bw, by + bh), radius=pad, fill=colour)
        draw.text((bx + pad - tx1, by + pad - ty1), label, fill=(255, 255, 255), font=font)
    return np.asarray(img)


def confidence_word(score: float, lang: str, sure: bool = True) -> str:
    """Probability in words: people read 'high' more reliably than '0.72', and it is never '100%'. For a pill the
    app is not sure of (``sure=False``) it says 'medium' at most, so the word never contradicts the status."""
    if not sure:
        score = min(score, 0.59)
    key = "conf_very_high" if score >= 0.9 else "conf_high" if score >= 0.6 else "conf_medium" if score >= 0.3 else "conf_low"
    return t(lang, key)


def rx_otc(etc_otc: str | None, lang: str) -> str:
    if not etc_otc:
        return ""
    if "전문" in etc_otc:
        return t(lang, "rx")
    if "일반" in etc_otc:
        return t(lang, "otc")
    return etc_otc


def shown_product(pill: dict, info: dict[str, dict]) -> dict | None:
    """The product a card names: the confirmed or identified one, else the best guess (marked unsure)."""
    seq = pill.get("item_seq")
    if seq:
        cand = next((c for c in pill["candidates"] if c["item_seq"] == seq), None)
        return {**(cand or {}), **info.get(seq, {}), "item_seq": seq}
    if pill["candidates"] and pill["status"] == "unsure":
        best = pill["candidates"][0]
        return {**best, **info.get(best["item_seq"], {})}
    return None


def _josa(name: str) -> str:
    """과 after a final consonant, 와 after a vowel: '리피논정80밀리그램과', '판콜에이와'."""
    last = name.rstrip(" )")[-1:] if name else ""
    if "가" <= last <= "힣":
        return "과" if (ord(last) - 0xAC00) % 28 else "와"
    return "과"


def source_text(pill: dict, prod: dict, lang: str) -> str:
    """Where the name came from, when the person has a medication list: one of their medicines (surely, or the list's
    best guess to confirm), or the whole catalog."""
    if pill.get("from_list") is None or not prod:
        return ""
    name = prod.get("name") or ""
    if pill["from_list"] and pill.get("status") == "sure":
        return t(lang, "from_list_yes", name=name, josa=_josa(name))
    if pill["from_list"]:  # the list ranks it first; the pill itself does not settle it
        return t(lang, "from_list_maybe", name=name)
    return t(lang, "from_list_no")


def other_side_text(pill: dict, prod: dict, lang: str) -> str:
    """What the other side of the card's product says, for a pill seen from one side only (the caller's test): the
    person can turn the pill over and look, no second photo needed. Nothing when which side is up is not known
    (nothing read from a pill printed on both sides) or when the product has no imprint at all."""
    front, back = (prod.get("faces") or ("", ""))[:2]
    read = pill.get("imprint_read") or ""
    if not (front or back):
        return ""
    if read:
        seen_back = (prod.get("evidence") or {}).get("face") == "back"
    elif bool(front) != bool(back):
        seen_back = not back  # nothing read: the blank side is up
    else:
        return ""
    other, name = (front if seen_back else back), prod.get("name") or ""
    return t(lang, "other_side_says", name=name, text=other) if other else t(lang, "other_side_blank", name=name)


def market_text(prod: dict, lang: str) -> str:
    """On the reimbursement list or not; nothing when the catalog holds no list (then nothing is known)."""
    if "market" not in prod or not prod.get("list_date"):
        return ""
    return t(lang, "market_on" if prod["market"] else "market_off", date=prod["list_date"])


def _date(text: str) -> str:
    """20260101 -> 2026-01-01 (the notices' own format is hard to read)."""
    return f"{text[:4]}-{text[4:6]}-{text[6:]}" if len(text) == 8 and text.isdigit() else text


def _row(label: str, value: str, cls: str = "") -> str:
    return f"<div class='pc-row {cls}'><span>{escape(label)}</span><b>{escape(value)}</b></div>" if value else ""


CARD_CHOICES = 3  # candidates a card offers to tap; the picker below the cards has 5 and a search


def candidate_button(index: int, c: dict, lang: str) -> str:
    """One product a pill may be, as a button on its card: the official photo (loaded by the person's browser from
    the MFDS site, never through the server), name, imprint, shape and colour, how likely. ``data-pill`` and
    ``data-seq`` say what was tapped (CARD_JS)."""
    looks = " · ".join(x for x in (c.get("imprint") or "", term(lang, c.get("shape")), term(lang, c.get("colour"))) if x)
    url = c.get("image_url") or ""
    img = (f"<img src='{escape(url)}' alt='' loading='lazy' referrerpolicy='no-referrer' width='64' height='64'>"
           if url.startswith("https://nedrug.mfds.go.kr/") else "")
    likely = confidence_word(c["score"], lang, sure=False) if c.get("score") is not None else ""
    return (f"<button type='button' class='pc-cand' data-pill='{index}' data-seq='{escape(c['item_seq'])}'>{img}"
            f"<span class='pc-cand-text'><b>{escape(c.get('name') or c['item_seq'])}</b>"
            f"<small>{escape(looks)}</small><small>{escape(c.get('company') or '')}"
            f"{' · ' + escape(likely) if likely else ''}</small></span></button>")


def cards_html(pills: list[dict], info: dict[str, dict], lang: str) -> str:
    """One card per pill: number, name, company, imprint read, shape/colour, confidence in words, Rx/OTC."""
    if not pills:
        return ""
    cards = []
    for p in pills:
        status = p["status"]
        colour = _hex(STATUS_RGB.get(status, STATUS_RGB["unknown"]))
        prod = shown_product(p, info)
        name = prod["name"] if prod else t(lang, "unknown_product")
        if status == "unsure":
            name += " ?"
        score = prod.get("score") if prod else None
        if p.get("group") and status == "sure":  # named as a group: the group's probability, not its first product's
            score = (prod or {}).get("evidence", {}).get("group_probability", score)
        conf = t(lang, "status_confirmed") if status == "confirmed" else (
            confidence_word(score, lang, sure=status == "sure") if score is not None else "")
        rows = [
            _row(t(lang, "company"), (prod or {}).get("company") or ""),
            _row(t(lang, "imprint_read"), p.get("imprint_read") or "—"),
            _row(t(lang, "imprint"), (prod or {}).get("imprint") or ""),
            _row(t(lang, "shape_colour"), " · ".join(x for x in (term(lang, (prod or {}).get("shape")),
                                                               term(lang, (prod or {}).get("colour"))) if x)),
            _row(t(lang, "confidence"), conf),
            _row(t(lang, "source"), source_text(p, prod or {}, lang) if status != "confirmed" else ""),
            _row(t(lang, "group"), t(lang, "group_text", n=len(p["group"])) if p.get("group") and status == "sure"
                 else ""),
            _row(t(lang, "kind"), rx_otc((prod or {}).get("etc_otc"), lang)),
            _row(t(lang, "market"), market_text(prod or {}, lang)),
            _row(t(lang, "code"), (prod or {}).get("item_seq") or ""),
        ]
        rows += [_row(t(lang, "recall"), (r["reason"] or "") + (f" · {_date(r['date'])}" if r.get("date") else ""),
                      "pc-recall") for r in (prod or {}).get("recalls", [])]
        choices = ""
        if status in ("unsure", "unknown") and p["candidates"]:
            buttons = "".join(candidate_button(int(p["index"]), {**c, **info.get(c["item_seq"], {})}, lang)
                              for c in p["candidates"][:CARD_CHOICES])
            choices = (f"<div class='pc-choices' role='group' aria-label='{escape(t(lang, 'top_choices'))}'>"
                       f"<span>{escape(t(lang, 'top_choices'))}</span>{buttons}</div>")
        if status in ("unsure", "unknown") and " // " not in (p.get("imprint_read") or ""):  # one side seen so far
            choices += f"<p class='pc-turn'>{escape(t(lang, 'turn_over'))}</p>"
            check = other_side_text(p, prod, lang) if prod and status == "unsure" else ""
            choices += f"<p class='pc-turn pc-other-side'>{escape(check)}</p>" if check else ""
        cards.append(
            f"<article class='pc-card pc-{status}' id='pc-card-{int(p['index'])}' style='border-color:{colour}'>"
            f"<header><span class='pc-num' style='background:{colour}'>{p['index']}</span>"
            f"<span class='pc-name'>{escape(name)}</span>"
            f"<span class='pc-badge' style='color:{colour}'>{escape(t(lang, 'status_' + status))}</span></header>"
            f"{''.join(rows)}{choices}</article>")
    return f"<div class='pc-cards'>{''.join(cards)}</div>"


def products_of(w: dict, labels: dict) -> str:
    """A warning's products as the person sees them: the photo's number and name where a pill is on it, else the
    product's name (one place, so the page and the printed sheet never name a warning's pills differently)."""
    return " + ".join(labels.get(s, n) for s, n in zip(w["items"], w.get("item_names") or w["items"]))


def _warning_html(w: dict, who: str, lang: str, possible: str = "") -> str:
    """One warning: icon, severity, type, the products (``who``, HTML), the official reason; a possible one says
    under what condition (``possible``, HTML) and is not an alert."""
    sev = w["severity"]
    when = f" ({escape(t(lang, 'notice'))} {escape(_date(w['notice_date']))})" if w.get("notice_date") else ""
    role = "" if possible else " role='alert'"
    # what to do now, in plain words, beside the official reason (a found warning only)
    do_now = f"<div class='pc-warn-do'>{escape(t(lang, 'do_' + sev))}</div>" if is_serious(w) else ""
    return (f"<div class='pc-warn pc-{sev}{' pc-possible' if possible else ''}'{role}><span class='pc-icon' "
            f"aria-hidden='true'>{'❓' if possible else SEVERITY_ICON.get(sev, '')}</span><div>{possible}"
            f"<div class='pc-warn-head'>{escape(t(lang, 'sev_' + sev))} · "
            f"{escape(w['type_name'])} — {escape(t(lang, 'kind_' + w['kind']))}</div>"
            f"<div class='pc-warn-who'>{who}</div>"
            f"<div class='pc-warn-why'>{escape(t(lang, 'reason'))}: {escape(w['reason'] or '')}{when}</div>"
            f"{'' if possible else do_now}</div></div>")


POSSIBLE_SHOWN = 0.10  # possible warnings less likely than this are only counted


def possible_html(possible: list[dict], labels: dict[str, str], info: dict[str, dict], lang: str) -> str:
    """The serious warnings the pills not identified would raise if they are what they most likely are: said as
    a condition ('if pill #2 is X'), so a person confirms the pill instead of taking it as found."""
    if not possible:
        return ""
    parts = []
    name = lambda s: (info.get(s) or {}).get("name") or s  # noqa: E731
    shown = sorted((e for e in possible if e["p"] >= POSSIBLE_SHOWN), key=lambda e: -e["p"])
    for e in shown:
        w, cond = e["warning"], e["if"]
        who = " + ".join(escape(labels.get(s) or next((f"#{n} {name(s)}?" for n, x in cond.items() if x == s),
                                                        name(s))) for s in w["items"])
        ifs = ", ".join(t(lang, "possible_if", num=n, name=name(s)) for n, s in cond.items())
        settle = t(lang, "possible_settle", nums=", ".join(f"#{n}" for n in cond))
        head = (f"<div class='pc-possible-if'>{escape(ifs)} ({escape(confidence_word(e['p'], lang))})</div>"
                f"<div class='pc-possible-settle'>{escape(settle)}</div>")
        parts.append(_warning_html(w, who, lang, head))
    more = len(possible) - len(shown)
    rest = f"<p class='pc-possible-note'>{escape(t(lang, 'possible_more', n=more))}</p>" if more else ""
    return (f"<details class='pc-possible-list'><summary>❓ {escape(t(lang, 'possible_title', n=len(possible)))}"
            f"</summary>{''.join(parts)}{rest}<p class='pc-possible-note'>{escape(t(lang, 'possible_note'))}</p>"
            "</details>")


def warnings_html(check: dict | None, labels: dict[str, str], not_identified: list[int], lang: str,
                  possible: list[dict] | None = None, info: dict[str, dict] | None = None, nursing: bool = False) -> str:
    """The panel people read first: most severe first, colour + icon + plain words, the products by number and
    name, the official reason; then what the pills not identified could mean (``possible``, their products'
    names in ``info``); then what could not be checked (``nursing``: DUR has no rules for breastfeeding), because
    no warning is not a guarantee."""
    parts = []
    warnings = sorted((check or {}).get("warnings", []), key=lambda w: SEVERITY_ORDER.get(w["severity"], 9))
    who = lambda w: escape(products_of(w, labels))  # noqa: E731
    # one product's cautions (max dose, duration, splitting, the elderly) are how to take it, not a danger of
    # the set: one quiet, folded list, so they never outnumber the warnings that matter
    cautions = [w for w in warnings if not is_serious(w)]
    serious = [w for w in warnings if is_serious(w)]
    parts += [_warning_html(w, who(w), lang) for w in serious]
    if not serious:
        key = calm_key(check, labels, not_identified)
        icon, cls = {"no_warnings": ("✅", "pc-ok"), "none_identified": ("❔", "pc-caution"),
                     "nothing_checked": ("📷", "pc-ok")}[key]
        parts.append(f"<div class='pc-warn {cls}'><span class='pc-icon' aria-hidden='true'>{icon}</span>"
                     f"<div>{escape(t(lang, key))}</div></div>")
    if cautions:
        items = "".join(f"<li><b>{who(w)}</b> · {escape(w['type_name'])}: {escape(w['reason'] or '')}</li>"
                        for w in cautions)
        parts.append(f"<details class='pc-cautions'><summary>ℹ️ {escape(t(lang, 'cautions_title', n=len(cautions)))}"
                     f"</summary><ul>{items}</ul></details>")
    parts.append(possible_html(possible or [], labels, info or {}, lang))
    lines = "".join(f"<li>{escape(g)}</li>" for g in gap_lines(check, labels, not_identified, lang, nursing))
    return (f"<section class='pc-warnings' aria-label='{escape(t(lang, 'warnings_title'))}'>"
            f"<h2>{escape(t(lang, 'warnings_title'))}</h2>{''.join(parts)}"
            + (f"<ul class='pc-unchecked'>{lines}</ul>" if lines else "") + "</section>")


def calm_key(check: dict | None, labels: dict[str, str], not_identified: list[int]) -> str:
    """What to say when no serious warning was found: checked and clear, nothing named yet, or nothing to check
    (``labels`` name every product that went into the check)."""
    return "no_warnings" if check and labels else "none_identified" if not_identified else "nothing_checked"


def gap_lines(check: dict | None, labels: dict[str, str], not_identified: list[int], lang: str,
              nursing: bool = False) -> list[str]:
    """What could not be checked, in words (the panel and the report sheet say the same): no warning is not a
    guarantee."""
    checked_any = bool(check and labels)
    gaps = []
    if not_identified:
        gaps.append(t(lang, "not_identified", nums=", ".join(f"#{i}" for i in not_identified)))
    if check and check.get("unchecked"):
        gaps.append(t(lang, "no_ingredient", names=", ".join(labels.get(s, s) for s in check["unchecked"])))
    if check and check.get("unknown"):
        gaps.append(t(lang, "unknown_codes", codes=", ".join(check["unknown"])))
    skipped = set((check or {}).get("checks_skipped") or []) if checked_any else set()
    if skipped & {"AGE", "ELDERLY"}:
        gaps.append(t(lang, "skipped_age"))
    if "PREGNANCY" in skipped:
        gaps.append(t(lang, "skipped_pregnancy"))
    if nursing and checked_any:
        gaps.append(t(lang, "nursing_note"))
    if checked_any:
        gaps.append(t(lang, "not_guarantee"))
    return gaps


def is_serious(w: dict) -> bool:
    """A danger of the set (critical, warning), not a caution on how to take one product (dose, duration,
    splitting, the elderly): the panel, the summary bar and the batch summary count the same ones."""
    return w["severity"] in ("critical", "warning")


def summary_html(check: dict | None, not_identified: list[int], meds: list[str], lang: str) -> str:
    """The line that stays at the top of the screen: serious warnings found, pills to confirm, my medications
    (nothing before there is anything to count)."""
    serious = sum(1 for w in (check or {}).get("warnings", []) if is_serious(w))
    if not (serious or not_identified or meds):
        return ""
    parts = [(f"⚠️ {t(lang, 'sum_danger', n=serious)}", "pc-sum-danger" if serious else "pc-sum-ok"),
             (f"❔ {t(lang, 'sum_confirm', n=len(not_identified))}", "pc-sum-confirm" if not_identified else "pc-sum-ok"),
             (f"💊 {t(lang, 'sum_meds', n=len(meds))}", "pc-sum-ok")]
    return ("<div class='pc-summary' role='status'>"
            + " · ".join(f"<span class='{c}'>{escape(x)}</span>" for x, c in parts) + "</div>")


def banner_html(data: str, lang: str) -> str:
    """The demo banner (whenever the demo catalog is loaded) and the short medical disclaimer."""
    demo = (f"<div class='pc-demo' role='status'>🧪 {escape(t(lang, 'demo_banner'))}</div>" if data == "demo" else "")
    return f"{demo}<div class='pc-disclaimer'>{escape(t(lang, 'disclaimer'))}</div>"


def status_html(message: str, kind: str = "info") -> str:
    """A one-line message under the photo: progress, counts, or a friendly error (never a traceback)."""
    return f"<div class='pc-status pc-status-{kind}' role='status'>{escape(message)}</div>" if message else ""


def batch_summary(reports: list[tuple[str, dict | None, str | None]], lang: str) -> str:
    """The batch's result in one line that cannot read as 'no problem' when a photo carries a warning: photos
    checked, those with a serious (or possible serious) warning, those with pills to confirm, files not read.
    ``reports``: (name, report dict or None, error) per file."""
    done = [r for _, r, _ in reports if r is not None]
    danger = sum(1 for r in done if any(map(is_serious, r["warnings"])) or r["possible_warnings"])
    confirm = sum(1 for r in done if r["not_identified"] or any(p["status"] == "unsure" for p in r["pills"]))
    text = t(lang, "batch_done", n=len(reports), ok=len(done), danger=danger, confirm=confirm,
             bad=len(reports) - len(done))
    return status_html(text, "error" if danger or len(done) < len(reports) else "info")
