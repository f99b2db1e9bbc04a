"""The mobile web app: photo -> numbered boxes -> named pills -> warnings, in Korean (default) and English.

One Gradio Blocks column, phones first. Every answer comes from ``Pipeline.analyze`` and the catalog/safety
APIs; this module adds layout, words and files. What is personal (my medications, age, pregnancy, language,
text size) lives in the browser (``gr.BrowserState``), never on the server; the photo and the pills found live
in the session only, and uploaded files are deleted as soon as they are read.

Named API endpoints for programs (gradio_client): ``/analyze``, ``/check``, ``/search``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.data_classes import FileData
from gradio.utils import get_upload_folder, is_in_or_equal

from pillcheck import config, images
from pillcheck.batch import photozip
from pillcheck.catalog.db import CatalogError, CatalogMissing
from pillcheck.catalog.status import describe, resolve_codes
from pillcheck.inference.session import ModelError
from pillcheck.pipeline import Pipeline, unidentified
from pillcheck.safety.dur import Profile, check, possible_warnings
from pillcheck.ui import export, gradio_texts, render, sheet
from pillcheck.ui.i18n import DEFAULT, LANGS, bad_photo, input_message, t, term
from pillcheck.ui.style import CSS

log = logging.getLogger(__name__)

INFERENCE = "inference"  # the one concurrency group around the models (a photo, a batch, an API analyze)
CONCURRENCY = 2  # analyses at once (`serve --concurrency`); measured on 2 cores in bench/bench_serve.py
MAX_FILE_SIZE = "100mb"  # batch zips; single photos are held to images.MAX_BYTES when read
# every minute, Gradio's copies older than 2 min go (annotated photos are fetched at once; a report to download
# is written when asked for): health data does not sit on the server for a quarter of an hour
DELETE_CACHE = (60, 120)
MAX_MEDS = 40
# history: the products this person confirmed for pills before (a prior for naming pills, never checked as taken)
# pregnant: True, False (known not pregnant) or None (not said: the pregnancy rules are reported as not checked)
# undo: the medications the last untick removed, to put back with one tap
DEVICE_DEFAULT: dict[str, Any] = {"meds": [], "undo": [], "history": [], "age": None, "pregnant": None, "nursing": False,
                                  "lang": DEFAULT, "large": False, "save_corrections": False}
MAX_HISTORY = 60
WEBCAM = gr.WebcamOptions(mirror=False,  # imprints must read the right way round
                          constraints={"video": {"facingMode": {"ideal": "environment"},
                                                 "width": {"ideal": 1920}, "height": {"ideal": 1440}}})
SCROLL_TO_CARD = ("(n) => { document.getElementById('pc-card-' + n)?.scrollIntoView({block: 'center'}); "
                  "return []; }")
LARGE_JS = "(on) => { document.documentElement.classList.toggle('pc-large', !!on); return []; }"
# a tap on a candidate button of a card (render.candidate_button) is the cards' select event: (pill, product)
CARD_JS = ("element.addEventListener('click', (e) => { const b = e.target.closest('button.pc-cand'); "
           "if (b) trigger('select', {index: Number(b.dataset.pill), value: b.dataset.seq}); });")
# the report picture to the phone's share sheet (messages, mail, a pharmacy's chat), else downloaded
SHARE_REPORT = """async () => {
  const img = document.querySelector('#pc-report-image img');
  if (!img) { document.querySelector('#pc-report-btn')?.click(); return []; }
  const file = new File([await (await fetch(img.src)).blob()], 'pillcheck-report.png', {type: 'image/png'});
  if (navigator.canShare && navigator.canShare({files: [file]})) {
    try { await navigator.share({files: [file], title: 'pillcheck'}); } catch (e) { /* the person closed it */ }
  } else {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(file); a.download = file.name; a.click(); URL.revokeObjectURL(a.href);
  }
  return [];
}"""
# the phone's local time with its UTC offset ("2026-12-03T21:05:00+09:00"): the report is dated as the person lives it
LOCAL_TIME_JS = """(s, d, l, _) => {
  const n = new Date(), off = -n.getTimezoneOffset(), pad = (x) => String(Math.floor(Math.abs(x))).padStart(2, '0');
  const local = new Date(n.getTime() + off * 60000).toISOString().slice(0, 19);
  return [s, d, l, `${local}${off < 0 ? '-' : '+'}${pad(off / 60)}:${pad(off % 60)}`];
}"""
# a choice that raised a new serious warning brings it into view (the person may be far below it)
SHOW_NEW_WARNING = ("() => { document.querySelector('#pc-status .pc-status-alert')"
                    "?.scrollIntoView({block: 'start', behavior: 'smooth'}); return []; }")

def browser_secret() -> str:
    """The key BrowserState encrypts with. It must survive restarts, or every saved medication list becomes
    unreadable: $PILLCHECK_BROWSER_SECRET (several replicas share it), else one kept beside the catalog."""
    if os.environ.get("PILLCHECK_BROWSER_SECRET"):
        return os.environ["PILLCHECK_BROWSER_SECRET"]
    path = config.data_home() / "browser-secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(24)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret)
        return secret


class RecentUploads:
    """Uploads read in the last TTL seconds, in memory only, by their path in Gradio's upload folder.

    Gradio names an upload's folder by the sha256 of its content, so two byte-identical photos sent at the same
    moment share one file: the first request deletes it once read, and the second finds it gone. A path names
    its content, so answering the second from memory gives nobody a photo they did not send.
    """

    def __init__(self, ttl: float = 120.0, max_bytes: int = 256 * 2**20) -> None:
        self.ttl, self.max_bytes = ttl, max_bytes
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()  # oldest first
        self._bytes = 0
        self._lock = threading.Lock()

    def _expire(self) -> None:
        old = time.monotonic() - self.ttl
        while self._items and (next(iter(self._items.values()))[0] < old or self._bytes > self.max_bytes):
            self._bytes -= len(self._items.popitem(last=False)[1][1])

    def put(self, path: str, data: bytes) -> None:
        with self._lock:
            if path in self._items:
                self._bytes -= len(self._items.pop(path)[1])
            self._items[path] = (time.monotonic(), data)
            self._bytes += len(data)
            self._expire()

    def get(self, path: str) -> bytes | None:
        with self._lock:
            self._expire()
            hit = self._items.get(path)
            return hit[1] if hit else None


RECENT_UPLOADS = RecentUploads()


def read_upload(payload: Any) -> tuple[bytes, str]:
    """The bytes of an uploaded file and its name; the upload is deleted from Gradio's cache once read
    (and kept in memory for a moment, for an identical photo sent at the same time: ``RecentUploads``).

    A webcam frame may come inline as a data: URL instead of a file; it is held to the same size limit."""
    path = payload.get("path") if isinstance(payload, dict) else getattr(payload, "path", payload)
    url = (payload.get("url") if isinstance(payload, dict) else None) or ""
    if not path and url.startswith("data:"):
        encoded = url.partition(",")[2]
        if len(encoded) > images.MAX_BYTES * 4 // 3 + 4:
            raise images.InputError("too_large", mb=round(len(encoded) * 3 / 4 / 2**20), limit=round(images.MAX_BYTES / 2**20))
        try:
            return base64.b64decode(encoded), "camera"
        except binascii.Error as exc:
            raise images.InputError("camera_damaged") from exc
    if not path:
        raise images.InputError("no_file")
    p = Path(path)
    name = (payload.get("orig_name") if isinstance(payload, dict) else None) or p.name
    uploaded = is_in_or_equal(str(p), get_upload_folder())
    try:
        size = p.stat().st_size
        if size > images.MAX_BYTES:
            raise images.InputError("too_large", mb=round(size / 2**20), limit=round(images.MAX_BYTES / 2**20))
        data = p.read_bytes()
    except FileNotFoundError as exc:
        data = RECENT_UPLOADS.get(str(p)) if uploaded else None
        if data is None:
            raise images.InputError("upload_gone") from exc
    else:  # in memory before the file goes: a request that finds the file gone a moment later finds it here
        if uploaded:
            RECENT_UPLOADS.put(str(p), data)
    finally:
        discard_upload(p)
    return data, name


def profile_of(device: dict) -> Profile:
    """The person's profile from the device state; raises ValueError for an impossible age."""
    age = device.get("age")
    return Profile(age=float(age) if age not in (None, "") else None, pregnant=pregnant_of(device))


def _api_errors(fn: Callable) -> Callable:
    """API endpoints answer a bad request with one readable line (gradio_client raises AppError with it)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (images.InputError, ModelError, CatalogMissing, CatalogError, ValueError) as exc:
            raise gr.Error(str(exc), print_exception=False) from exc

    return wrapper


@dataclass
class Evaluation:
    """A session's pills and the person's medications, checked together, with everything the view names."""

    pills: list[dict]
    meds: list[str]
    check: dict | None
    info: dict[str, dict]
    labels: dict[str, str]
    data: str
    problem: str = ""
    possible: list[dict] = field(default_factory=list)  # what the pills not identified could mean

    @property
    def serious(self) -> set[tuple]:
        """The serious warnings, each as (kind, products): to tell which ones a change has just raised."""
        return {(w["kind"], tuple(w["items"])) for w in (self.check or {}).get("warnings", []) if render.is_serious(w)}

    @property
    def not_identified(self) -> list[int]:
        return [p["index"] for p in self.pills if not p["item_seq"]]

    def report(self) -> dict:
        """The same shape as ``Report.to_dict()`` (pills, warnings, unchecked, ...), with the person's choices."""
        chk = self.check or {"warnings": [], "unchecked": [], "unknown": [], "checks_run": [], "checks_skipped": []}
        return {"pills": self.pills, "warnings": chk["warnings"], "unchecked": chk["unchecked"], "unknown": chk["unknown"],
                "not_identified": self.not_identified, "checks_run": chk["checks_run"],
                "checks_skipped": chk["checks_skipped"], "possible_warnings": self.possible, "my_meds": self.meds,
                "data": self.data}


@dataclass
class Texts:
    """Components whose words follow the language switch: (component, {attribute: string key or callable})."""

    items: list[tuple[gr.components.Component | gr.blocks.BlockContext, dict]] = field(default_factory=list)

    def add(self, comp: Any, **keys: str | Callable[[str], Any]) -> Any:
        self.items.append((comp, keys))
        return comp

    @property
    def components(self) -> list:
        return [c for c, _ in self.items]

    def updates(self, lang: str) -> list:
        return [gr.update(**{attr: key(lang) if callable(key) else t(lang, key) for attr, key in keys.items()})
                for _, keys in self.items]


class PillcheckApp:
    """The handlers (one method per user action) and the layout that wires them."""

    def __init__(self, pipeline: Pipeline, secret: str | None = None, concurrency: int = CONCURRENCY) -> None:
        self.pipe = pipeline
        self.concurrency = concurrency  # analyses running at once in the inference group
        self.secret = secret or browser_secret()
        self.scratch = export.Scratch()
        self.texts = Texts()

    # ------------------------------------------------------------------ catalog helpers
    def info(self, seqs: list[str]) -> dict[str, dict]:
        """Name, company, Rx/OTC, imprint, shape and colour of products, for cards and labels."""
        seqs = list(dict.fromkeys(s for s in seqs if s))
        if not seqs:
            return {}
        cat = self.pipe.catalog
        known = cat.status.of(seqs)
        return {seq: {**d, "list_date": cat.status.list_date, **known.get(seq, {})}
                for seq, d in describe(cat.cursor(), seqs).items()}

    def search(self, text: str, limit: int = 8) -> list[dict]:
        return [h.to_dict() for h in self.pipe.catalog.search.search((text or "").strip(), limit)] if text else []

    def search_choices(self, text: str, lang: str) -> dict:
        """Fuzzy search results (name or imprint) as choices to tap; a search that finds nothing says so."""
        hits = self.search(text)
        none = t(lang, "search_none", q=text.strip()[:40]) if text and text.strip() and not hits else ""
        return gr.update(choices=[(choice_label(hit_as_product(h), lang), h["item_seq"]) for h in hits], value=None,
                         info=none)

    def evaluate(self, session: dict | None, device: dict, lang: str) -> Evaluation:
        """Check the photo's identified pills together with my medications and profile (cheap: re-run freely)."""
        pills = (session or {}).get("pills", [])
        meds = list(device.get("meds") or [])
        problem = ""
        try:
            profile = profile_of(device)
        except ValueError:
            profile, problem = Profile(pregnant=pregnant_of(device)), "bad_age"
        if profile.implausible:
            problem = "odd_pregnancy"
        cat = self.pipe.catalog
        items = list(dict.fromkeys([p["item_seq"] for p in pills if p["item_seq"]] + meds))
        result = check(cat.dur, items, profile).to_dict() if items else None
        possible = possible_warnings(cat.dur, items, unidentified(pills), profile)
        info = self.info(items + [c["item_seq"] for p in pills for c in p["candidates"][:5]])
        name = lambda s: info.get(s, {}).get("name", s)  # noqa: E731
        labels = {s: f"{t(lang, 'my_med')}: {name(s)}" for s in meds}
        labels.update({p["item_seq"]: f"#{p['index']} {name(p['item_seq'])}" for p in pills if p["item_seq"]})
        return Evaluation(pills, meds, result, info, labels, cat.data, problem, possible)

    def choice_update(self, pills: list[dict], index: int | None, lang: str) -> dict:
        """The products a pill may be (its top candidates, and the person's choice), to tap."""
        pill = next((p for p in pills if p["index"] == index), None)
        if pill is None:
            return gr.update(choices=[], value=None)
        cands = pill["candidates"][:5]
        seqs = [c["item_seq"] for c in cands]
        if pill["item_seq"] and pill["item_seq"] not in seqs:
            cands = [self.info([pill["item_seq"]]).get(pill["item_seq"], {"item_seq": pill["item_seq"]}), *cands]
        return gr.update(choices=[(choice_label(c, lang), c["item_seq"]) for c in cands], value=pill["item_seq"])

    # ------------------------------------------------------------------ the view every handler ends with
    def view(self, session: dict | None, device: dict, lang: str, message: str = "", kind: str = "info",
             pick: int | None = None) -> list:
        """Banner, status, warnings, annotated photo, cards, correction panel, medication list, summary — in VIEW
        order."""
        ev = self.evaluate(session, device, lang)
        if ev.problem and not message:
            message, kind = t(lang, ev.problem), "error"
        indices = [p["index"] for p in ev.pills]
        if pick not in indices:
            pick = (ev.not_identified or indices or [None])[0]
        image = render.annotate(session["preview"], ev.pills, session["scale"]) if session else None
        return [
            render.banner_html(ev.data, lang),
            render.status_html(message, kind),
            render.warnings_html(ev.check, ev.labels, ev.not_identified, lang, ev.possible, ev.info,
                                 nursing=bool(device.get("nursing"))),
            gr.update(value=image, visible=session is not None),
            render.cards_html(ev.pills, ev.info, lang),
            gr.update(visible=bool(ev.pills)),
            gr.update(choices=[(pill_tag(p), p["index"]) for p in ev.pills], value=pick),
            self.choice_update(ev.pills, pick, lang),
            gr.update(choices=[(med_label(ev.info.get(s, {"name": s}), lang), s) for s in ev.meds], value=ev.meds,
                      info="" if ev.meds else t(lang, "meds_empty")),
            render.summary_html(ev.check, ev.not_identified, ev.meds, lang),
        ]

    # ------------------------------------------------------------------ handlers: the photo
    def on_photo(self, payload: Any, device: Any, lang: str, conf: float, iou: float) -> list:
        device = device_of(device)
        if not payload:
            return [None, *self.view(None, device, lang, t(lang, "photo_hint"))]
        try:
            data, name = read_upload(payload)
            photo = images.decode(data, min_side=images.WORKING_SIDE)
        except images.InputError as exc:
            return [None, *self.view(None, device, lang, bad_photo(lang, exc), "error")]
        return self.analyze_into({"name": Path(name).stem, "photo": data}, photo, device, lang, conf, iou)

    def on_rerun(self, session: dict | None, device: Any, lang: str, conf: float, iou: float) -> list:
        device = device_of(device)
        if not session:
            return [None, *self.view(None, device, lang, t(lang, "photo_hint"))]
        photo = images.decode(session["photo"], min_side=images.WORKING_SIDE)
        session.pop("sides", None)  # other thresholds may number the pills differently
        return self.analyze_into(session, photo, device, lang, conf, iou)

    def on_other_side(self, payload: Any, session: dict | None, pick: int | None, device: Any, lang: str,
                      conf: float, iou: float) -> list:
        """A photo of pill ``pick`` turned over: the photo is analysed again, that pill with both its sides."""
        device = device_of(device)
        if not payload or not session or not pick:
            return [session, *self.view(session, device, lang, pick=pick), gr.update()]
        try:
            data, _ = read_upload(payload)
            images.decode(data, min_side=images.WORKING_SIDE)  # a bad photo is refused here, before anything changes
        except images.InputError as exc:
            return [session, *self.view(session, device, lang, bad_photo(lang, exc), "error", pick=pick),
                    gr.update()]
        # kept as the file's bytes, like the photo itself (a decoded frame is ~10 MB per side and session)
        session["sides"] = {**session.get("sides", {}), int(pick): data}
        photo = images.decode(session["photo"], min_side=images.WORKING_SIDE)
        out = self.analyze_into(session, photo, device, lang, conf, iou, pick=int(pick), keep_choices=True,
                                walk_sides=True)
        return [*out, gr.update(value=None)]  # emptied for the next pill's other side

    @staticmethod
    def next_side(pills: list[dict], sides: dict[int, bytes], pick: int, lang: str) -> tuple[str, int]:
        """After the other side of pill ``pick``: what it gave, and which pill to turn over next (the person is
        walked through every pill still not named; one named now lets the panel move on)."""
        message = t(lang, "side_added", n=pick)
        named = next((bool(p["item_seq"]) for p in pills if p["index"] == pick), True)
        if not named:
            return f"{message} {t(lang, 'side_still_unsure')}", pick
        todo = [p["index"] for p in pills if not p["item_seq"] and p["index"] not in sides]
        return (f"{message} {t(lang, 'side_next', n=todo[0])}", todo[0]) if todo else (message, pick)

    def analyze_into(self, session: dict, photo: images.Decoded, device: dict, lang: str, conf: float,
                     iou: float, message: str = "", pick: int | None = None, keep_choices: bool = False,
                     walk_sides: bool = False) -> list:
        """Detect and identify (the slow part, in the inference group); the check itself runs in the view.
        ``keep_choices``: the same photo again, with the same pills: what the person chose stays chosen.
        ``walk_sides``: pill ``pick`` just got its other side: say what that gave and which pill to turn next."""
        chosen = {p["index"]: p for p in session.get("pills", []) if p["status"] == "confirmed"} if keep_choices else {}
        try:
            report = self.pipe.analyze(photo, device["meds"], None, conf=float(conf), iou=float(iou),
                                       other_sides=session.get("sides"), history=device["history"])
        except ModelError as exc:  # the person needs to know it is not their photo; the log gets the path
            log.error("analyze: %s", exc)
            return [None, *self.view(None, device, lang, t(lang, "model_missing"), "error")]
        except Exception as exc:  # a broken catalog or a bug: the person gets a sentence, the log the traceback
            log.exception("analyze failed")
            return [None, *self.view(None, device, lang, t(lang, "failed", msg=exc.__class__.__name__), "error")]
        preview, scale = render.downscale(photo.rgb)  # report boxes are in full-size pixels
        pills = [chosen.get(p.index) or p.to_dict() for p in report.pills]
        session.update(preview=preview, scale=scale / photo.scale, pills=pills, conf=float(conf), iou=float(iou),
                       corrections=session.get("corrections", []) if keep_choices else [], advice=report.advice)
        n = len(pills)
        if walk_sides:
            message, pick = self.next_side(pills, session["sides"], pick, lang)
        elif not message:
            message = found_message(session, lang)
        return [session, *self.view(session, device, lang, message, "info" if n else "error", pick=pick)]

    # ------------------------------------------------------------------ handlers: choosing and correcting
    def on_pick(self, session: dict | None, pick: int, lang: str) -> dict:
        return self.choice_update((session or {}).get("pills", []), pick, lang)

    def on_tap_photo(self, session: dict | None, lang: str, evt: gr.SelectData) -> list:
        """A tap on the photo picks the pill under the finger (the smallest box holding the point); the page then
        scrolls to its card (SCROLL_TO_CARD)."""
        pills = (session or {}).get("pills", [])
        if not pills or not evt.index:
            return [gr.update(), gr.update()]
        x, y = (float(v) / session["scale"] for v in evt.index)  # the preview's pixels -> the photo's
        hit = [p for p in pills if p["box"][0] <= x <= p["box"][2] and p["box"][1] <= y <= p["box"][3]]
        if not hit:
            return [gr.update(), gr.update()]
        p = min(hit, key=lambda q: (q["box"][2] - q["box"][0]) * (q["box"][3] - q["box"][1]))
        return [gr.update(value=p["index"]), self.choice_update(pills, p["index"], lang)]

    def on_fix_search(self, text: str, session: dict | None, pick: int, lang: str) -> dict:
        return self.search_choices(text, lang) if (text or "").strip() else self.on_pick(session, pick, lang)

    def on_choose(self, session: dict | None, pick: int, seq: str, device: Any, lang: str) -> list:
        """The person says which product pill ``pick`` is: it joins the check at once, and the device remembers it
        as one of this person's products (a prior the next time a pill is named)."""
        device = device_of(device)
        pill = next((p for p in (session or {}).get("pills", []) if p["index"] == pick), None)
        if pill is None or not seq:
            return [session, device, *self.view(session, device, lang, pick=pick)]
        before = self.evaluate(session, device, lang).serious
        device = {**device, "history": list(dict.fromkeys([seq, *device["history"]]))[:MAX_HISTORY]}
        chosen = self.info([seq]).get(seq, {})
        pill.update(status="confirmed", item_seq=seq, name=chosen.get("name"), company=chosen.get("company"))
        messages, kind = [t(lang, "chosen", n=pick, name=chosen.get("name") or seq)], "info"
        new = len(self.evaluate(session, device, lang).serious - before)
        if new:  # the warning is above, maybe screens away: say so here, and SHOW_NEW_WARNING scrolls to it
            messages.append(t(lang, "new_warnings", n=new))
            kind = "alert"
        if device.get("save_corrections"):
            jpeg, box = export.crop_example(images.load(session["photo"]), pill["box"])
            kept = [c for c in session["corrections"] if c["pill"] != pick]
            session["corrections"] = [*kept, {"pill": pick, "jpeg": jpeg, "box": box, "item_seq": seq}]
            messages.append(t(lang, "corr_saved", n=len(session["corrections"])))
        return [session, device, *self.view(session, device, lang, " ".join(messages), kind, pick=pick)]

    def on_card_choice(self, session: dict | None, device: Any, lang: str, evt: gr.SelectData) -> list:
        """A candidate tapped on a pill's card (CARD_JS): the same as choosing it in the picker."""
        try:
            pick, seq = int(evt.index), str(evt.value or "")
        except (TypeError, ValueError):  # not a candidate button's data: nothing changes
            return [session, device_of(device), *self.view(session, device_of(device), lang)]
        return self.on_choose(session, pick, seq, device, lang)

    # ------------------------------------------------------------------ handlers: my medications, profile, prefs
    def with_meds(self, device: dict, meds: list[str], session: dict | None, lang: str, message: str = "",
                  kind: str = "info") -> list:
        """The medication list changed: it joins the check at once, and a photo on screen is named again with it
        (the list is evidence for which product each pill is); the person's choices stay."""
        new = list(dict.fromkeys(m for m in meds if m))[:MAX_MEDS]
        changed, device = new != device["meds"], {**device, "meds": new}
        if session and session.get("photo") and changed:
            photo = images.decode(session["photo"], min_side=images.WORKING_SIDE)
            again, *view = self.analyze_into(session, photo, device, lang, session.get("conf", 0.35),
                                             session.get("iou", 0.5), f"{message} {t(lang, 'meds_changed')}".strip(),
                                             keep_choices=True)
            return [device, again or session, *view]  # a failed run says why and keeps the photo
        return [device, session, *self.view(session, device, lang, message, kind)]

    def on_add_pill(self, session: dict | None, pick: int, device: Any, lang: str) -> list:
        device = device_of(device)
        pill = next((p for p in (session or {}).get("pills", []) if p["index"] == pick), None)
        return self.with_meds(device, device["meds"] + ([pill["item_seq"]] if pill and pill["item_seq"] else []),
                              session, lang)

    def on_meds_edit(self, selected: list[str], device: Any, session: dict | None, lang: str) -> list:
        """An untick removes the medication at once, says so, and offers to put it back (one tap)."""
        device = device_of(device)
        kept = [m for m in device["meds"] if m in (selected or [])]
        removed = [m for m in device["meds"] if m not in kept]
        info = self.info(removed)
        names = ", ".join(med_label(info.get(m, {"item_seq": m}), lang) for m in removed)
        out = self.with_meds({**device, "undo": removed}, kept, session, lang,
                             t(lang, "meds_removed", names=names) if removed else "")
        return [*out, gr.update(visible=bool(removed))]

    def on_undo(self, device: Any, session: dict | None, lang: str) -> list:
        device = device_of(device)
        back = [m for m in device["undo"] if isinstance(m, str)]
        return [*self.with_meds({**device, "undo": []}, [*device["meds"], *back], session, lang,
                                t(lang, "meds_back") if back else ""), gr.update(visible=False)]

    def on_add_med(self, seq: str, device: Any, session: dict | None, lang: str) -> list:
        device = device_of(device)
        device, session, *view = self.with_meds(device, [*device["meds"], seq], session, lang)
        return [device, session, "", gr.update(choices=[], value=None), *view]

    def on_scan(self, payload: Any, device: Any, session: dict | None, lang: str) -> list:
        """A photo of a medicine box: the products its barcode names join my medications."""
        device = device_of(device)
        if not payload:
            return [device, session, *self.view(session, device, lang), None]
        try:
            data, _ = read_upload(payload)
            found = self.pipe.scan_box(images.decode(data, min_side=images.WORKING_SIDE))
        except images.InputError as exc:
            return [device, session, *self.view(session, device, lang, bad_photo(lang, exc), "error"), None]
        seqs = [f["item_seq"] for f in found if f["item_seq"]]
        if not seqs:
            message = t(lang, "scan_unknown", code=found[0]["barcode"]) if found else t(lang, "scan_none")
            return [device, session, *self.view(session, device, lang, message, "error"), None]
        names = ", ".join(dict.fromkeys(med_label(f, lang) for f in found if f["item_seq"]))
        return [*self.with_meds(device, [*device["meds"], *seqs], session, lang, t(lang, "scan_added", names=names)),
                None]

    def on_profile(self, age: float | None, pregnancy: str | None, nursing: bool, device: Any, session: dict | None,
                   lang: str) -> list:
        device = {**device_of(device), "age": age, "pregnant": render.PREGNANCY.get(pregnancy or "unknown"),
                  "nursing": bool(nursing)}
        return [device, *self.view(session, device, lang)]

    def on_lang(self, lang: str, device: Any, session: dict | None) -> list:
        """Every word in the new language. With a photo, the message says again what was found; without one, the
        last message stays as it was said (it may be why a photo was refused: it must not vanish)."""
        device = {**device_of(device), "lang": lang}
        if session and "pills" in session:
            n = len(session["pills"])
            return [device, *self.texts.updates(lang),
                    *self.view(session, device, lang, found_message(session, lang), "info" if n else "error")]
        banner, _, *rest = self.view(session, device, lang)
        return [device, *self.texts.updates(lang), banner, gr.update(), *rest]

    def on_load(self, device: Any) -> list:
        device = device_of(device)
        lang = device["lang"]
        return [lang, device["large"], device["age"], render.PREGNANCY_CHOICE[pregnant_of(device)], device["nursing"],
                device["save_corrections"],
                *self.view(None, device, lang, t(lang, "photo_hint"))]

    def on_pref(self, key: str) -> Callable[[Any, Any], dict]:
        """A handler that stores one preference (text size, corrections opt-in) on the device."""
        return lambda value, device: {**device_of(device), key: bool(value)}

    # ------------------------------------------------------------------ handlers: files
    def on_report(self, session: dict | None, device: Any, lang: str, clock: str = "") -> tuple[list[str], dict]:
        """The report to show a pharmacist: a picture (shown on the page, to save or share) and A4 pages (PDF) of
        the photo, the pills, the warnings and the date (the phone's own clock, ``clock``: LOCAL_TIME_JS, else the
        server's); and the same report as CSV and JSON."""
        device = device_of(device)
        ev = self.evaluate(session, device, lang)
        folder = self.scratch.new_dir()
        stem = f"pillcheck-{(session or {}).get('name') or 'medications'}"
        photo = render.annotate(session["preview"], ev.pills, session["scale"]) if session else None
        pictures = sheet.write(folder, stem, sheet.build(ev, photo, lang, local_time(clock), device))
        tables = export.write_reports(folder, stem, [((session or {}).get("name", ""), ev.report(), None)], ev.data)
        return [str(p) for p in (*pictures, *tables)], gr.update(value=str(pictures[0]), visible=True)

    def on_batch(self, zip_path: str | None, device: Any, lang: str, conf: float, iou: float,
                 progress: gr.Progress = gr.Progress()) -> tuple[list[str] | None, str]:  # noqa: B008 (Gradio's idiom)
        """Every photo in a zip -> one CSV row per pill and a JSON report per photo, with a progress bar."""
        if not zip_path:
            return None, render.status_html(t(lang, "batch_none"), "error")
        device = device_of(device)
        try:
            profile = profile_of(device)
        except ValueError:
            return None, render.status_html(t(lang, "bad_age"), "error")
        reports: list[tuple[str, dict | None, str | None]] = []
        try:
            with photozip.PhotoZip(zip_path) as photos:
                for i, entry in enumerate(photos):
                    progress((i, len(photos)), desc=entry.name)
                    if entry.error:
                        reports.append((entry.name, None, input_message(lang, entry.error)))
                        continue
                    try:
                        report = self.pipe.analyze(entry.data, device["meds"], profile, conf=float(conf), iou=float(iou))
                        reports.append((entry.name, report.to_dict(), None))
                    except images.InputError as exc:
                        reports.append((entry.name, None, input_message(lang, exc)))
        except images.InputError as exc:
            return None, render.status_html(bad_photo(lang, exc), "error")
        except ModelError as exc:
            log.error("batch: %s", exc)
            return None, render.status_html(t(lang, "model_missing"), "error")
        finally:
            discard_upload(zip_path)
        files = export.write_reports(self.scratch.new_dir(), "pillcheck-batch", reports, self.pipe.catalog.data)
        return [str(p) for p in files], render.batch_summary(reports, lang)

    def on_corrections(self, session: dict | None, lang: str) -> tuple[list[str] | None, str]:
        corrections = (session or {}).get("corrections") or []
        if not corrections:
            return None, render.status_html(t(lang, "corr_none"), "error")
        path = export.corrections_zip(self.scratch.new_dir(), corrections)
        return [str(path)], render.status_html(t(lang, "corr_saved", n=len(corrections)))

    # ------------------------------------------------------------------ the named HTTP API (gradio_client)
    @_api_errors
    def api_analyze(self, photo: FileData, my_meds: list[str] | None = None, age: float | None = None,
                    pregnant: bool | None = None, conf: float = 0.35, iou: float = 0.5,
                    other_side: FileData | None = None,
                    other_pill: int = 0, history: list[str] | None = None) -> dict:
        """Photo -> pills (box, status, top candidates) and DUR warnings, with my medications (ITEM_SEQ codes or
        package barcodes: they join the check and help name the pills) and profile; ``other_side``: a photo of
        pill number ``other_pill`` turned over; ``history``: products confirmed before (they help name pills,
        they are not checked). A photo that cannot be used is answered with an error message saying why."""
        meds = codes(my_meds)
        profile = Profile(age=age, pregnant=pregnant)
        past = codes((history or [])[:MAX_MEDS])
        if not (0.01 <= conf <= 0.99 and 0.05 <= iou <= 0.95):
            raise ValueError("conf must be within 0.01..0.99 and iou within 0.05..0.95")
        if bool(other_side) != bool(other_pill):
            raise ValueError("other_side and other_pill go together: the photo of a pill turned over, and its number")
        data, _ = read_upload(photo)
        sides = {int(other_pill): read_upload(other_side)[0]} if other_side else None
        report = self.pipe.analyze(data, meds, profile, conf=conf, iou=iou, other_sides=sides, history=past).to_dict()
        return {**report, "notice": export.notice(report["data"]), "disclaimer": t("en", "disclaimer")}

    @_api_errors
    def api_check(self, items: list[str], age: float | None = None, pregnant: bool | None = None) -> dict:
        """DUR warnings for products (ITEM_SEQ codes) and an optional profile, most severe first."""
        cat = self.pipe.catalog
        items = resolve_codes(cat.cursor(), codes(items))  # package barcodes name their products
        result = check(cat.dur, items, Profile(age=age, pregnant=pregnant)).to_dict()
        return {**result, "products": cat.status.of(items), "notice": export.notice(result["data"])}

    @_api_errors
    def api_scan(self, photo: FileData) -> dict:
        """A photo of a medicine box -> the products its barcodes (EAN-13, GS1 DataMatrix) name, each with what its
        pill looks like (imprint, shape, colour)."""
        data, _ = read_upload(photo)
        return {"products": self.pipe.scan_box(data), "data": self.pipe.catalog.data}

    @_api_errors
    def api_search(self, text: str, limit: int = 10) -> dict:
        """Products by name, company or imprint (fuzzy)."""
        return {"query": text, "results": self.search(text, max(1, min(int(limit), 50))),
                "data": self.pipe.catalog.data, "notice": export.notice(self.pipe.catalog.data)}

    # ------------------------------------------------------------------ layout and wiring
    def blocks(self) -> gr.Blocks:
        """The page, top to bottom as a phone shows it: what to worry about, the photo, then the details."""
        ko, L = DEFAULT, self.texts.add
        heading = lambda key: lambda lang: f"### {t(lang, key)}"  # noqa: E731
        with gr.Blocks(title="pillcheck", analytics_enabled=False, delete_cache=DELETE_CACHE) as demo:
            device = gr.BrowserState(DEVICE_DEFAULT, storage_key="pillcheck-device", secret=self.secret)
            session = gr.State(None)
            L(gr.HTML(header_html(ko), elem_id="pc-header"), value=header_html)
            with gr.Row(elem_classes="pc-prefs"):
                lang = L(gr.Radio([(name, code) for code, name in LANGS.items()], value=ko, label=t(ko, "language"),
                                  show_label=False, container=False, min_width=0, elem_id="pc-lang"), label="language")
                large = L(gr.Checkbox(False, label=t(ko, "large"), container=False, min_width=0, elem_id="pc-large"),
                          label="large")
            summary = gr.HTML(elem_id="pc-summary")  # sticky: the counts stay in sight while scrolling
            banner = gr.HTML(elem_id="pc-banner")
            status = gr.HTML(elem_id="pc-status")
            warnings = gr.HTML(elem_id="pc-warnings")  # above the photo: what matters is read without scrolling
            photo = L(gr.Image(sources=["upload", "webcam"], type="filepath", image_mode=None, label=t(ko, "photo"),
                               placeholder=t(ko, "photo_placeholder"), webcam_options=WEBCAM, height=240,
                               elem_id="pc-photo"), label="photo", placeholder="photo_placeholder")
            result = L(gr.Image(label=t(ko, "result"), interactive=False, visible=False, format="jpeg",
                                buttons=["fullscreen"], elem_id="pc-result"), label="result")
            cards = gr.HTML(elem_id="pc-cards", js_on_load=CARD_JS)
            with gr.Column(visible=False, elem_id="pc-fix") as fix_box:
                L(gr.Markdown(heading("fix_title")(ko)), value=heading("fix_title"))
                pick = L(gr.Radio([], label=t(ko, "pick"), elem_id="pc-pick"), label="pick")
                choice = L(gr.Radio([], label=t(ko, "choice"), elem_id="pc-choice"), label="choice")
                fix_search = L(gr.Textbox(label=t(ko, "fix_search"), placeholder=t(ko, "search_placeholder"),
                                          elem_id="pc-fix-search"), label="fix_search", placeholder="search_placeholder")
                other_side = L(gr.Image(sources=["upload", "webcam"], type="filepath", image_mode=None,
                                        label=t(ko, "other_side"), webcam_options=WEBCAM, height=160,
                                        elem_id="pc-other-side"), label="other_side")
                add_pill = L(gr.Button(t(ko, "add_pill_to_meds"), size="md", elem_id="pc-add-pill"), value="add_pill_to_meds")
            with gr.Column(elem_id="pc-meds"):
                L(gr.Markdown(heading("meds_title")(ko)), value=heading("meds_title"))
                meds_box = L(gr.CheckboxGroup([], label=t(ko, "meds"), elem_id="pc-meds-list"), label="meds")
                undo = L(gr.Button(t(ko, "undo"), visible=False, size="md", elem_id="pc-undo"), value="undo")
                med_search = L(gr.Textbox(label=t(ko, "meds_search"), placeholder=t(ko, "search_placeholder"),
                                          elem_id="pc-med-search"), label="meds_search", placeholder="search_placeholder")
                med_results = L(gr.Radio([], label=t(ko, "meds_results"), elem_id="pc-med-results"), label="meds_results")
                scan = L(gr.Image(sources=["upload", "webcam"], type="filepath", image_mode=None, label=t(ko, "scan_box"),
                                  webcam_options=WEBCAM, height=160, elem_id="pc-scan"), label="scan_box")
            with gr.Column(elem_id="pc-profile"):
                L(gr.Markdown(heading("profile_title")(ko)), value=heading("profile_title"))
                with gr.Row():
                    age = L(gr.Number(None, label=t(ko, "age"), minimum=0, maximum=130, precision=0, min_width=120,
                                      elem_id="pc-age"), label="age")
                    pregnant = L(gr.Radio(pregnancy_choices(ko), value="unknown", label=t(ko, "pregnancy"),
                                          min_width=200, elem_id="pc-pregnant"), label="pregnancy",
                                 choices=pregnancy_choices)
                nursing = L(gr.Checkbox(False, label=t(ko, "nursing"), elem_id="pc-nursing"), label="nursing")
            with L(gr.Accordion(t(ko, "advanced_title"), open=False, elem_id="pc-advanced"), label="advanced_title"):
                conf = L(gr.Slider(0.05, 0.95, value=0.35, step=0.05, label=t(ko, "conf_slider")), label="conf_slider")
                iou = L(gr.Slider(0.1, 0.9, value=0.5, step=0.05, label=t(ko, "iou_slider")), label="iou_slider")
                rerun = L(gr.Button(t(ko, "rerun")), value="rerun")
            with L(gr.Accordion(t(ko, "report_title"), open=False, elem_id="pc-report"), label="report_title"):
                report_btn = L(gr.Button(t(ko, "report_btn"), elem_id="pc-report-btn"), value="report_btn")
                clock = gr.Textbox(visible=False)  # the phone's time, for the report's date (LOCAL_TIME_JS)
                report_image = L(gr.Image(label=t(ko, "report_image"), type="filepath", interactive=False,
                                          visible=False, buttons=["download", "fullscreen"], elem_id="pc-report-image"),
                                 label="report_image")
                share = L(gr.Button(t(ko, "report_share"), elem_id="pc-report-share"), value="report_share")
                report_files = L(gr.File(label=t(ko, "report_files"), file_count="multiple", interactive=False,
                                         elem_id="pc-report-files"), label="report_files")
            with L(gr.Accordion(t(ko, "batch_title"), open=False, elem_id="pc-batch"), label="batch_title"):
                batch_zip = L(gr.File(label=t(ko, "batch_zip"), file_types=[".zip"], type="filepath"), label="batch_zip")
                batch_btn = L(gr.Button(t(ko, "batch_btn")), value="batch_btn")
                batch_status = gr.HTML()
                batch_files = L(gr.File(label=t(ko, "batch_files"), file_count="multiple", interactive=False),
                                label="batch_files")
            with L(gr.Accordion(t(ko, "corr_title"), open=False, elem_id="pc-corrections"), label="corr_title"):
                save_opt = L(gr.Checkbox(False, label=t(ko, "corr_optin"), elem_id="pc-save-opt"), label="corr_optin")
                corr_btn = L(gr.Button(t(ko, "corr_btn")), value="corr_btn")
                corr_status = gr.HTML()
                corr_files = L(gr.File(label=t(ko, "corr_files"), file_count="multiple", interactive=False),
                               label="corr_files")

            view = [banner, status, warnings, result, cards, fix_box, pick, choice, meds_box, summary]
            private = {"api_visibility": "private"}
            inference = {"concurrency_id": INFERENCE, "concurrency_limit": self.concurrency, **private}
            # preprocess=False: the photo reaches images.load untouched, so a broken upload gets our message
            photo.change(self.on_photo, [photo, device, lang, conf, iou], [session, *view], preprocess=False,
                         show_progress_on=[warnings], **inference)  # one progress line, where the eyes are
            rerun.click(self.on_rerun, [session, device, lang, conf, iou], [session, *view], **inference)
            pick.input(self.on_pick, [session, pick, lang], [choice], **private)
            result.select(self.on_tap_photo, [session, lang], [pick, choice], **private).then(
                None, [pick], None, js=SCROLL_TO_CARD)
            other_side.upload(self.on_other_side, [other_side, session, pick, device, lang, conf, iou],
                              [session, *view, other_side], preprocess=False, show_progress_on=[status], **inference)
            fix_search.change(self.on_fix_search, [fix_search, session, pick, lang], [choice], **private)
            choice.input(self.on_choose, [session, pick, choice, device, lang], [session, device, *view],
                         **private).then(None, None, None, js=SHOW_NEW_WARNING)
            cards.select(self.on_card_choice, [session, device, lang], [session, device, *view], **private).then(
                None, None, None, js=SHOW_NEW_WARNING)
            # the list names the pills too: a change names the photo's pills again (the models run: inference)
            add_pill.click(self.on_add_pill, [session, pick, device, lang], [device, session, *view], **inference)
            meds_box.input(self.on_meds_edit, [meds_box, device, session, lang], [device, session, *view, undo],
                           **inference)
            undo.click(self.on_undo, [device, session, lang], [device, session, *view, undo], **inference)
            med_search.change(self.search_choices, [med_search, lang], [med_results], **private)
            med_results.input(self.on_add_med, [med_results, device, session, lang],
                              [device, session, med_search, med_results, *view], **inference)
            scan.upload(self.on_scan, [scan, device, session, lang], [device, session, *view, scan], preprocess=False,
                        show_progress_on=[status], **inference)
            for widget in (age, pregnant, nursing):
                widget.input(self.on_profile, [age, pregnant, nursing, device, session, lang], [device, *view],
                             **private)
            lang.change(self.on_lang, [lang, device, session], [device, *self.texts.components, *view], **private)
            lang.change(None, [lang], None, js=gradio_texts.SET_LANG_JS)
            large.change(None, [large], None, js=LARGE_JS)
            large.input(self.on_pref("large"), [large, device], [device], **private)
            save_opt.input(self.on_pref("save_corrections"), [save_opt, device], [device], **private)
            report_btn.click(self.on_report, [session, device, lang, clock], [report_files, report_image],
                             js=LOCAL_TIME_JS, **private)
            share.click(None, None, None, js=SHARE_REPORT)
            batch_btn.click(self.on_batch, [batch_zip, device, lang, conf, iou], [batch_files, batch_status], **inference)
            corr_btn.click(self.on_corrections, [session, lang], [corr_files, corr_status], **private)
            demo.load(self.on_load, [device], [lang, large, age, pregnant, nursing, save_opt, *view], **private).then(
                None, [lang], None, js=gradio_texts.SET_LANG_JS)  # also when the saved language is the default

            gr.api(self.api_analyze, api_name="analyze", concurrency_id=INFERENCE, concurrency_limit=self.concurrency)
            gr.api(self.api_check, api_name="check")
            gr.api(self.api_search, api_name="search")
            gr.api(self.api_scan, api_name="scan", concurrency_id=INFERENCE, concurrency_limit=self.concurrency)
        return demo


# ---------------------------------------------------------------------- small pure helpers
def device_of(value: Any) -> dict:
    """The device state with defaults filled in (a fresh browser sends nothing; an old one may lack keys)."""
    return {**DEVICE_DEFAULT, **(value if isinstance(value, dict) else {})}


def pregnant_of(device: dict) -> bool | None:
    """The device's pregnancy: True, False or None (anything else a browser sends is 'not said')."""
    value = device.get("pregnant")
    return value if isinstance(value, bool) else None


def pregnancy_choices(lang: str) -> list[tuple[str, str]]:
    return [(t(lang, f"preg_{k}"), k) for k in render.PREGNANCY]


def codes(items: list[str] | str | None) -> list[str]:
    """ITEM_SEQ codes from a list or a comma-separated string, de-duplicated, bounded."""
    parts = items.split(",") if isinstance(items, str) else (items or [])
    out = list(dict.fromkeys(str(x).strip() for x in parts if str(x).strip()))
    if len(out) > MAX_MEDS or any(len(x) > 20 for x in out):
        raise ValueError(f"at most {MAX_MEDS} item codes (ITEM_SEQ) of up to 20 characters")
    return out


def med_label(prod: dict, lang: str) -> str:
    """A medicine as the person should hold it against a pill: name, then what the pill looks like."""
    looks = " ".join(x for x in (term(lang, prod.get("shape")), term(lang, prod.get("colour"))) if x)
    return " · ".join(x for x in (prod.get("name") or prod.get("item_seq"), prod.get("imprint"), looks) if x)


def pill_tag(p: dict) -> str:
    return f"#{p['index']} {'✓' if p['item_seq'] else '?'}"


def hit_as_product(hit: dict) -> dict:
    """A search hit in the shape of a candidate, so both are labelled the same way."""
    imprint = " / ".join(x for x in (hit.get("print_front"), hit.get("print_back")) if x)
    return {**hit, "imprint": imprint, "score": None}


def choice_label(c: dict, lang: str) -> str:
    parts = [c.get("name") or c["item_seq"], c.get("company") or "", c.get("imprint") or ""]
    text = " · ".join(p for p in parts if p)
    return f"{text} ({render.confidence_word(c['score'], lang)})" if c.get("score") is not None else text


def local_time(clock: str | None) -> datetime:
    """The browser's ISO time with its offset; the server's own time when it sent none or nonsense."""
    try:
        when = datetime.fromisoformat((clock or "")[:40])
    except ValueError:
        return datetime.now().astimezone()
    return when if when.tzinfo else datetime.now().astimezone()


def found_message(session: dict, lang: str) -> str:
    """What the photo gave: how many pills, and the advice on taking it again when the photo was the trouble."""
    n, advice = len(session["pills"]), session.get("advice")
    said = t(lang, f"advice_{advice}") if advice else ""
    return f"{t(lang, 'found', n=n)} {said}".strip() if n else said or t(lang, "advice_no_pill")


def header_html(lang: str) -> str:
    return f"<h1 class='pc-title'>{t(lang, 'title')}</h1><p class='pc-subtitle'>{t(lang, 'subtitle')}</p>"


def discard_upload(path: str | Path | None) -> None:
    """Delete a file Gradio received for us, once used (never anything outside Gradio's upload folder). Its
    empty content-named folder stays: an identical upload may be writing into it this moment."""
    if path and is_in_or_equal(str(path), get_upload_folder()):
        Path(path).unlink(missing_ok=True)


def launch(demo: gr.Blocks, *, host: str | None = None, port: int | None = None, share: bool = False,
           auth: tuple[str, str] | None = None, quiet: bool = False, prevent_thread_lock: bool = False):
    """Queue (one inference group) and serve: upload size limit, no analytics, no SSR, no MCP."""
    demo.queue(default_concurrency_limit=4, max_size=128)
    return demo.launch(server_name=host, server_port=port, share=share, auth=auth, max_file_size=MAX_FILE_SIZE,
                       css=CSS, head=gradio_texts.script(), footer_links=["api"], ssr_mode=False, pwa=False, mcp_server=False,
                       enable_monitoring=False, show_error=False, quiet=quiet, prevent_thread_lock=prevent_thread_lock)
