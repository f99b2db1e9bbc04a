"""The app in a real headless Chromium at a phone's size (390x844): what a person taps and reads.

Uses Debian's /usr/bin/chromium through pip playwright (no browser download) and skips when either is
missing. The photo test needs models/detector.onnx; the correction test runs on a stand-in detector.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from pillcheck import config
from tests.conftest import SHARED, needs_shared
from tests.test_ui import PHOTOS, TwoPills, jpeg, needs_detector, serve_app

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
PHONE = {"width": 390, "height": 844}
SCREENSHOT = config.REPO_ROOT / "docs" / "screenshot.png"

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download needed)")
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*"),
              pytest.mark.skipif(not CHROMIUM.is_file(), reason="apt-get install -y chromium")]


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, timeout=60_000)
        yield b
        b.close()


@pytest.fixture()
def phone(browser):
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    context.close()


def wait_text(page, selector: str, text: str, timeout: float = 30_000) -> None:
    """Wait until the element's visible text contains ``text`` (Gradio renders hidden copies: use innerText)."""
    page.wait_for_function("([s, t]) => (document.querySelector(s)?.innerText || '').includes(t)", arg=[selector, text],
                           timeout=timeout)


def no_sideways_scroll(page) -> bool:
    """Nothing wider than the phone's screen, and no control pushed past its right edge. Against the screen's
    width, not window.innerWidth: a phone browser widens its layout viewport to fit a page that is too wide (and
    shows it cut or zoomed out), so innerWidth grows with the fault."""
    width = PHONE["width"]
    return page.evaluate(f"document.documentElement.scrollWidth <= {width} && ['#pc-lang', '#pc-large', "
                         "'#pc-photo', '#pc-warnings'].every(s => document.querySelector(s)"
                         f".getBoundingClientRect().right <= {width})")


def photo_drawn(page) -> None:
    """Wait until the annotated photo has loaded (it is sent again after every change)."""
    page.wait_for_function("[...document.querySelectorAll('#pc-result img')].every(i => i.complete && i.naturalWidth > 0)")


def open_with_two_pills(page, url: str, tmp_path: Path) -> None:
    """The app with a photo on which the stand-in pipeline (TwoPills) finds its two demo pills."""
    page.goto(url, wait_until="load")
    wait_text(page, "#pc-banner", "데모 데이터")
    photo = tmp_path / "pills.jpg"
    photo.write_bytes(jpeg((640, 480)))
    page.locator("#pc-photo input[type=file]").set_input_files(str(photo))
    wait_text(page, "#pc-status", "2개")


def add_medication(page, query: str) -> None:
    page.locator("#pc-med-search textarea, #pc-med-search input").first.fill(query)
    wait_text(page, "#pc-med-results", query)
    page.locator("#pc-med-results label", has_text=query).first.click()
    wait_text(page, "#pc-meds-list", query)


@needs_shared
@needs_detector
def test_phone_photo_boxes_cards_warning_english(demo_db, phone, tmp_path):
    """Upload a real photo with two saved medications: numbered boxes, a card per pill, the critical warning
    above the photo, no sideways scrolling; then English and large text; screenshots for the README."""
    with serve_app(demo_db) as url:
        page = phone
        page.goto(url, wait_until="load")
        wait_text(page, "#pc-banner", "데모 데이터")
        for med in ("데모코나졸", "데모스타틴"):
            add_medication(page, med)
        wait_text(page, "#pc-warnings", "병용금기")
        page.locator("#pc-photo input[type=file]").set_input_files(str(sorted(PHOTOS.glob("*.jpg"))[0]))
        wait_text(page, "#pc-status", "찾았습니다", timeout=90_000)
        page.locator("#pc-result img").wait_for(state="visible")  # the annotated photo, numbered boxes drawn in
        photo_drawn(page)
        assert page.locator("#pc-cards .pc-card").count() >= 1 and page.locator("#pc-cards .pc-num").first.is_visible()
        page.evaluate("window.scrollTo(0, 0)")
        warn = page.locator("#pc-warnings .pc-critical").first.bounding_box()
        assert warn and warn["y"] < PHONE["height"], "the critical warning must be visible without scrolling"
        assert no_sideways_scroll(page)

        page.locator("#pc-lang label", has_text="English").click()
        wait_text(page, "#pc-warnings", "Do not take these together")
        wait_text(page, "#pc-banner", "Demo data — not for medical use")
        assert no_sideways_scroll(page)
        photo_drawn(page)
        bottom = page.evaluate("(() => { const r = document.querySelector('#pc-cards .pc-card').getBoundingClientRect();"
                               " return r.bottom + window.scrollY + 8; })()")
        page.screenshot(path=str(tmp_path / "phone-en.png"), full_page=True)
        page.screenshot(path=str(tmp_path / "readme.png"), full_page=True,
                        clip={"x": 0, "y": 0, "width": PHONE["width"], "height": bottom})
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(tmp_path / "readme.png", SCREENSHOT)

        size = "getComputedStyle(document.querySelector('#pc-warnings .pc-warn')).fontSize"
        before = float(page.evaluate(size).removesuffix("px"))
        page.locator("#pc-large input").check()
        page.wait_for_function(f"parseFloat({size}) > {before}")
        assert no_sideways_scroll(page)
        page.screenshot(path=str(tmp_path / "phone-large.png"))


def test_phone_choose_a_pill_and_remember_medications(demo_db, phone, tmp_path):
    """Tap a pill on the photo: it is picked and its card scrolled to. Tap the unsure pill's number, tap its
    product: the check re-runs at once; a medication added by search
    survives a reload (it lives in the browser); a broken upload is one friendly line."""
    with serve_app(demo_db, TwoPills(db=demo_db)) as url:
        page = phone
        page.goto(url, wait_until="load")
        wait_text(page, "#pc-banner", "데모 데이터")
        add_medication(page, "데모칼슘")
        photo = tmp_path / "pills.jpg"
        photo.write_bytes(jpeg((640, 480)))
        page.locator("#pc-photo input[type=file]").set_input_files(str(photo))
        wait_text(page, "#pc-status", "2개")
        wait_text(page, "#pc-warnings", "알약 #2")
        photo_drawn(page)
        img = page.locator("#pc-result img").first
        box = img.bounding_box()  # tap pill #1 on the photo: it is picked, and the page scrolls to its card
        img.click(position={"x": 0.25 * box["width"], "y": 0.3 * box["height"]})
        page.wait_for_function("document.querySelector('#pc-pick label.selected')?.innerText.includes('#1')")
        page.wait_for_function("(() => { const r = document.getElementById('pc-card-1').getBoundingClientRect();"
                               " return r.top >= 0 && r.bottom <= window.innerHeight; })()")
        # pill #2's card offers its candidates as buttons: tapping one confirms it; the new critical warning it
        # raises is said in the status, which is scrolled into view (the warnings are far above the card)
        button = page.locator("#pc-card-2 button.pc-cand[data-seq='999900002']")
        assert "데모스타틴" in button.inner_text() and button.bounding_box()["height"] >= 44
        button.click()
        wait_text(page, "#pc-warnings", "병용금기")
        wait_text(page, "#pc-cards", "직접 선택함")
        wait_text(page, "#pc-status", "새 경고 1건")
        page.wait_for_function("(() => { const r = document.querySelector('#pc-status .pc-status-alert')"
                               "?.getBoundingClientRect(); return r && r.top >= 0 && r.bottom <= window.innerHeight; })()")
        assert not page.locator("#pc-card-2 button.pc-cand").count()  # confirmed: nothing left to choose
        assert no_sideways_scroll(page)
        # the report for the pharmacist: a picture on the page (to hold up, save or share) and the files
        page.locator("#pc-report button, #pc-report summary").first.click()
        page.locator("#pc-report-btn").click()
        page.wait_for_function("document.querySelector('#pc-report-image img')?.naturalWidth > 0")
        assert page.evaluate("document.querySelector('#pc-report-image img').naturalWidth") == 1080
        wait_text(page, "#pc-report-files", ".pdf")
        assert page.locator("#pc-report-share").bounding_box()["height"] >= 44
        with page.expect_download() as download:  # no share sheet in a headless browser: the picture is saved
            page.locator("#pc-report-share").click()
        assert download.value.suggested_filename == "pillcheck-report.png"
        page.screenshot(path=str(tmp_path / "phone-corrected.png"), full_page=True)

        page.reload(wait_until="load")
        wait_text(page, "#pc-meds-list", "데모칼슘")
        broken = tmp_path / "broken.jpg"
        broken.write_bytes(jpeg((640, 480))[:3000])
        page.locator("#pc-photo input[type=file]").set_input_files(str(broken))
        wait_text(page, "#pc-status", "사진을 사용할 수 없습니다")
        assert "Traceback" not in page.evaluate("document.body.innerText")



def test_phone_photo_of_the_other_side(demo_db, phone, tmp_path):
    """The unsure pill's card asks for its other side; a photo of it, taken in the correction panel, names it."""
    with serve_app(demo_db, TwoPills(db=demo_db)) as url:
        page = phone
        page.goto(url, wait_until="load")
        wait_text(page, "#pc-banner", "데모 데이터")
        photo, side = tmp_path / "pills.jpg", tmp_path / "side.jpg"
        photo.write_bytes(jpeg((640, 480)))
        side.write_bytes(jpeg((320, 240)))
        page.locator("#pc-photo input[type=file]").set_input_files(str(photo))
        wait_text(page, "#pc-cards", "뒤집어")  # pill #2 is unsure: turn it over
        page.locator("#pc-other-side input[type=file]").set_input_files(str(side))
        wait_text(page, "#pc-status", "알약 #2: 반대쪽 사진")
        wait_text(page, "#pc-cards", "D520 // S3")
        assert "뒤집어" not in page.evaluate("document.querySelector('#pc-cards').innerText")
        page.wait_for_function("!document.querySelector('#pc-other-side img')")  # emptied, ready for the next pill
        assert no_sideways_scroll(page)


# Every visible text's contrast against the background it is drawn on (WCAG 2 relative luminance), the
# worst ones first: [ratio, text, colour, background, font size].
LOW_CONTRAST = """(() => {
  const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = c => { const v = c.slice(0, 3).map(x => { x /= 255; return x <= 0.03928 ? x / 12.92
                     : Math.pow((x + 0.055) / 1.055, 2.4); }); return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
  const bg = el => { for (let e = el; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor);
                     if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c; } return [255, 255, 255]; };
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].filter(n => n.nodeType === 3 && n.textContent.trim()).map(n => n.textContent.trim());
    if (!own.length) continue;
    const st = getComputedStyle(el), r = el.getBoundingClientRect();
    if (st.visibility === 'hidden' || st.display === 'none' || r.width < 1 || r.height < 1 || +st.opacity < 0.1) continue;
    if (el.closest('[aria-hidden=true], .hide, .hidden, [hidden]')) continue;
    const fg = rgb(st.color), back = bg(el);
    const [a, b] = [lum(fg), lum(back)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    if (ratio < 4.5) out.push([+ratio.toFixed(2), own.join(' ').slice(0, 40), st.color, back.join(','), st.fontSize]);
  }
  return out.sort((x, y) => x[0] - y[0]);
})()"""


# Everything a finger can tap, visible on the page, smaller than 44x44 CSS px (WCAG 2.5.5 / Apple's guideline):
# [tag, id or class, text, width, height]. A label that wraps an input is the target, not the input inside it.
SMALL_TARGETS = """(() => {
  const out = [];
  for (const el of document.querySelectorAll('button, a[href], label, input, select, textarea, summary, [role=button]')) {
    if (el.tagName === 'INPUT' && el.closest('label')) continue;
    if (el.tagName === 'INPUT' && ['hidden', 'file'].includes(el.type)) continue;
    if (el.tagName === 'LABEL' && !el.querySelector('input') && !el.htmlFor) continue;
    const r = el.getBoundingClientRect(), st = getComputedStyle(el);
    if (r.width < 2 || r.height < 2 || st.visibility === 'hidden' || el.closest('[hidden], .hide, .sr-only')) continue;
    if (r.height < 44 || r.width < 44)
      out.push([el.tagName, el.id || el.className.toString().slice(0, 30), (el.innerText || el.value || '').trim().slice(0, 20),
                Math.round(r.width), Math.round(r.height)]);
  }
  return out;
})()"""


def test_phone_readable_in_both_text_sizes(demo_db, phone, tmp_path):
    """After a photo, in normal and large text: no sideways scrolling, every text at contrast >= 4.5:1, every
    tap target at least 44x44 px, the disclaimer at least 14 px, the summary sticks to the top; a broken
    file is refused in Korean only (no English sentence)."""
    with serve_app(demo_db, TwoPills(db=demo_db)) as url:
        page = phone
        open_with_two_pills(page, url, tmp_path)
        for large in (False, True):
            if large:
                page.locator("#pc-large input").check()
                page.wait_for_function("document.documentElement.classList.contains('pc-large')")
            assert no_sideways_scroll(page), page.evaluate("document.documentElement.scrollWidth")
            low = page.evaluate(LOW_CONTRAST)
            assert not low, low
            small = page.evaluate(SMALL_TARGETS)
            assert not small, small
            page.screenshot(path=str(tmp_path / f"phone-after-photo{'-large' if large else ''}.png"), full_page=True)
            disclaimer = page.evaluate("parseFloat(getComputedStyle(document.querySelector('.pc-disclaimer')).fontSize)")
            assert disclaimer >= 14
        page.evaluate("window.scrollTo(0, document.body.scrollHeight / 2)")  # the summary stays in sight
        page.wait_for_timeout(200)
        top = page.evaluate("document.querySelector('#pc-summary .pc-summary').getBoundingClientRect().top")
        assert 0 <= top < 20 and "확인 필요 1알" in page.evaluate("document.querySelector('#pc-summary').innerText")
        broken = tmp_path / "broken.jpg"
        broken.write_bytes(b"%PDF-1.4 not a photo")
        page.locator("#pc-photo input[type=file]").set_input_files(str(broken))
        wait_text(page, "#pc-status", "사진을 사용할 수 없습니다")
        status = page.evaluate("document.querySelector('#pc-status').innerText")
        assert "읽을 수 있는 사진이 아닙니다" in status and not re.search(r"[a-z]{2,} [a-z]{2,}", status), status


# Every visible text node and screen-reader label (aria-label, title) on the page: [where, text]
PAGE_WORDS = """((sel) => {
  const out = [];
  for (const root of document.querySelectorAll(sel)) {
    const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    while (walk.nextNode()) {
      const n = walk.currentNode, text = n.nodeValue.trim(), el = n.parentElement;
      if (!text || el.closest('script, style')) continue;
      const r = el.getBoundingClientRect(), st = getComputedStyle(el);
      if (r.width < 1 || st.visibility === 'hidden' || st.display === 'none') continue;
      out.push(['text', text]);
    }
    for (const el of root.querySelectorAll('[aria-label], [title]'))
      for (const a of ['aria-label', 'title']) if (el.getAttribute(a)) out.push([a, el.getAttribute(a)]);
  }
  return out;
})"""
OUR_LATIN = re.compile(r"pillcheck|Language|English|CSV|JSON|PDF|IoU|zip|DUR|name \d+ · company · [A-Z0-9]+")


@pytest.mark.parametrize("browser_locale", ["en-US", "ko-KR"])
def test_gradio_words_follow_the_language_switch(demo_db, browser, browser_locale, tmp_path):
    """Gradio's own words (upload prompts, the camera button, screen-reader labels, the queue line) follow
    pillcheck's switch, whatever the browser's language: Korean mode shows no English sentence, English mode no
    Hangul in Gradio's widgets."""
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale=browser_locale)
    page = context.new_page()
    try:
        with serve_app(demo_db, TwoPills(db=demo_db)) as url:
            open_with_two_pills(page, url, tmp_path)
            page.locator("#pc-other-side button[aria-label='카메라로 찍기']").click()  # Gradio's webcam prompt
            wait_text(page, "#pc-other-side", "눌러서 카메라 켜기")
            for acc in page.locator("#pc-advanced, #pc-report, #pc-batch, #pc-corrections").all():
                acc.locator("button").first.click()
            page.evaluate("document.body.append(Object.assign(document.createElement('p'), "
                          "{id: 'pc-queue-probe', textContent: 'queue: 1/2 | 1.6/4.4s'}))")
            wait_text(page, "#pc-queue-probe", "대기 1/2 1.6/4.4s")
            page.wait_for_timeout(300)
            words = page.evaluate(f"{PAGE_WORDS}('body')")
            english = [w for w in words if re.search(r"[A-Za-z]{2,}[ .,]+[A-Za-z]{2,}", OUR_LATIN.sub("", w[1]))]
            assert not english, english

            page.locator("#pc-lang label", has_text="English").click()
            wait_text(page, "#pc-other-side", "Tap to turn on the camera")
            wait_text(page, "#pc-queue-probe", "waiting 1/2 1.6/4.4s")
            page.wait_for_timeout(300)
            gradio = page.evaluate(f"{PAGE_WORDS}('#pc-photo, #pc-other-side, #pc-scan, #pc-batch, #pc-advanced')")
            hangul = [w for w in gradio if re.search("[가-힣]", w[1])]
            assert not hangul, hangul
            assert page.evaluate("document.documentElement.lang") == "en"
    finally:
        context.close()


SCREENSHOTS = config.REPO_ROOT / "docs" / "screenshots"
REFERENCE = SHARED / "photos" / "catalog_reference" / "set_a" / "images"
# four official products, the front half of each official photo tiled 2 x 2: 리바스타틴정 20밀리그램 (심바스타틴),
# 록스펜정, 아세탑CR정, 디엠정; with 스코나졸정 (이트라코나졸) saved as my medication, 심바스타틴 is 병용금기
FOUR = ["201306445", "199700059", "201208743", "199500061"]
HEAP = PHOTOS / "IMG_6078-Medium_jpeg.rf.08e8850212170fec81220c078ee3c637.jpg"  # 22 pills, US products


def four_pill_photo(path: Path) -> Path:
    halves = [cv2.imread(str(REFERENCE / f"{s}.jpg")) for s in FOUR]
    halves = [im[:, : im.shape[1] // 2] for im in halves]
    h, w = min(im.shape[0] for im in halves), min(im.shape[1] for im in halves)
    halves = [im[:h, :w] for im in halves]
    cv2.imwrite(str(path), np.vstack([np.hstack(halves[:2]), np.hstack(halves[2:])]), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return path


def shoot(page, case: str, again=None) -> None:
    """The top of the page in Korean and English, normal and large text: docs/screenshots/CASE-LANG[-large].jpg;
    in every one, nothing is wider than the phone and the chosen language shows as chosen. ``again(lang)``: what
    to redo after switching language (a message is not translated after it was said)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    chosen = ("getComputedStyle(document.querySelector('#pc-lang input:checked')).backgroundColor"
              " !== 'rgb(255, 255, 255)'")
    for lang, word in (("ko", "한국어"), ("en", "English")):
        page.locator("#pc-lang label", has_text=word).click()
        page.wait_for_function(f"document.documentElement.lang === '{lang}'")
        wait_text(page, "#pc-banner", "참고용" if lang == "ko" else "An aid")
        assert page.evaluate(chosen)  # under the finger too (a phone keeps :hover on what was tapped)
        if again:
            again(lang)
        for large in (False, True):
            box = page.locator("#pc-large input")
            box.check() if large else box.uncheck()
            page.wait_for_function(f"document.documentElement.classList.contains('pc-large') === {str(large).lower()}")
            page.wait_for_timeout(250)
            page.evaluate("window.scrollTo(0, 0)")
            assert no_sideways_scroll(page), (case, lang, large)
            page.screenshot(path=str(SCREENSHOTS / f"{case}-{lang}{'-large' if large else ''}.jpg"), type="jpeg",
                            quality=60)
    page.locator("#pc-lang label", has_text="한국어").click()
    page.wait_for_function("document.documentElement.lang === 'ko'")
    page.locator("#pc-large input").uncheck()


@needs_shared
@needs_detector
def test_readme_screenshots_of_real_photos(official_db, browser):
    """The README's screenshots, made from real photos on the official catalog: four official products with 스코나졸정
    saved as my medication (a possible 병용금기 for the unsure pill), that pill confirmed by tapping its candidate
    on its card (the 병용금기 found), a real 22-pill photo, and a file that is not a photo — each in Korean and
    English, normal and large text."""
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    context.route("https://nedrug.mfds.go.kr/**", lambda route: route.abort())  # tests stay offline
    context.set_default_timeout(60_000)
    page = context.new_page()
    tmp = Path(tempfile.mkdtemp())
    try:
        with serve_app(official_db) as url:
            page.goto(url, wait_until="load")
            wait_text(page, "#pc-banner", "참고용")
            add_medication(page, "스코나졸정")
            page.locator("#pc-photo input[type=file]").set_input_files(str(four_pill_photo(tmp / "four.jpg")))
            wait_text(page, "#pc-status", "알약 4개를 찾았습니다", timeout=120_000)
            photo_drawn(page)
            wait_text(page, "#pc-warnings", "확인되면 생길 수 있는 경고")
            assert page.locator("#pc-cards .pc-card").count() == 4
            shoot(page, "four-pills")

            statin = page.locator("#pc-card-1 button.pc-cand[data-seq='201306445']")
            assert "리바스타틴" in statin.inner_text()
            statin.click()
            wait_text(page, "#pc-warnings", "함께 먹으면 안 됩니다")
            wait_text(page, "#pc-cards", "직접 선택함")
            assert page.locator("#pc-warnings .pc-critical").count() >= 1
            shoot(page, "confirmed-contraindication")

            page.locator("#pc-photo button[aria-label='사진 지우기']").first.click()
            page.locator("#pc-photo input[type=file]").set_input_files(str(HEAP))
            page.wait_for_function("document.querySelectorAll('#pc-cards .pc-card').length >= 18", timeout=120_000)
            wait_text(page, "#pc-status", "찾았습니다")
            photo_drawn(page)
            shoot(page, "22-pills")

            bad = tmp / "report.jpg"
            bad.write_bytes(b"%PDF-1.4 not a photo")

            def send_bad_file(lang: str) -> None:
                page.locator("#pc-photo button[aria-label='사진 지우기'], "
                             "#pc-photo button[aria-label='Remove photo']").first.click()
                page.locator("#pc-photo input[type=file]").set_input_files(str(bad))
                wait_text(page, "#pc-status", "사진을 사용할 수 없습니다" if lang == "ko" else "cannot be used")

            send_bad_file("ko")
            shoot(page, "bad-file", send_bad_file)
    finally:
        context.close()
        shutil.rmtree(tmp, ignore_errors=True)
