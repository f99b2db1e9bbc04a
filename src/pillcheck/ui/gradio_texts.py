"""Gradio's own words (upload prompts, camera buttons, screen-reader labels, the queue line) in the person's language.

Gradio's frontend picks its language from the browser once, not from pillcheck's switch, and some of its words are
English in every language ("Click to Access Webcam", "Capture from camera"). A small script in the page keeps a
look-out for those exact strings (in Gradio's English or Korean) and writes them in the language the person chose;
the switch sets ``<html data-pc-lang>``. Exact whole strings only: no text of ours is ever rewritten.
"""

from __future__ import annotations

import json

# Gradio's words (English, and its Korean where it has one) -> (Korean, English), as people should read them
WORDS: list[tuple[tuple[str, ...], str, str]] = [
    (("Drop Image Here", "이미지를 여기에 드롭"), "사진을 여기에 끌어다 놓기", "Drop a photo here"),
    (("Drop File Here", "파일을 여기에 드롭"), "파일을 여기에 끌어다 놓기", "Drop a file here"),
    (("or", "또는"), "또는", "or"),
    (("- or -", "- 또는 -"), "- 또는 -", "- or -"),
    (("Click to Upload", "클릭하여 업로드"), "눌러서 올리기", "Tap to upload"),
    (("Click to Access Webcam",), "눌러서 카메라 켜기", "Tap to turn on the camera"),
    (("Radio", "라디오"), "선택", "Choose"),
    (("Loading...", "로딩 중"), "불러오는 중", "Loading"),
    (("common.complete", "완료"), "완료", "Done"),
    (("Fullscreen", "전체 화면"), "크게 보기", "Full screen"),
    (("Exit fullscreen mode", "전체 화면 종료"), "크게 보기 닫기", "Exit full screen"),
    (("Remove Image", "이미지 제거"), "사진 지우기", "Remove photo"),
    (("Drop an image file here to upload", "이곳에 이미지 파일을 끌어다 놓으세요."),
     "사진 파일을 여기에 끌어다 놓으세요", "Drop a photo file here"),
    (("File upload",), "파일 올리기", "File upload"),
    (("Upload file",), "앨범이나 파일에서 고르기", "Choose from the album or files"),
    (("Capture from camera",), "카메라로 찍기", "Take with the camera"),
    (("grant webcam access",), "카메라 사용 허용", "Allow the camera"),
    (("Empty value",), "비어 있음", "Empty"),
    (("Click to upload or drop files",), "눌러서 올리거나 파일을 끌어다 놓기", "Tap to upload, or drop files"),
    (("Reset to default value",), "처음 값으로", "Reset to default"),
    (("Gradio footer navigation",), "바닥 메뉴", "Footer"),
    (("Download", "다운로드"), "내려받기", "Download"),
    (("Clear", "지우기"), "지우기", "Clear"),
]
# Gradio's words around a label or numbers of ours: (regular expression, Korean, English), $1.. its groups; each
# expression also matches the Korean and English it writes, so the switch can go either way
PATTERNS: list[tuple[str, str, str]] = [
    (r"^(?:number input for (.+)|(.+) \((?:숫자|number)\))$", "$1$2 (숫자)", "$1$2 (number)"),
    (r"^(?:range slider for (.+)|(.+) \((?:슬라이더|slider)\))$", "$1$2 (슬라이더)", "$1$2 (slider)"),
    (r"^(?:queue:|대기|waiting) (\d+)/(\d+)(?: \| | )?(.*)$", "대기 $1/$2 $3", "waiting $1/$2 $3"),
    (r"^(?:processing \||확인 중|checking) (.*)$", "확인 중 $1", "checking $1"),
]


def table() -> dict[str, list[str]]:
    """Every form a word may be on the page in (Gradio's, and ours in either language) -> [Korean, English]."""
    out: dict[str, list[str]] = {}
    for forms, ko, en in WORDS:
        for form in (*forms, ko, en):
            out.setdefault(form, [ko, en])
    return out


def script() -> str:
    """The page script (for ``launch(head=...)``): rewrites Gradio's words as they appear, at most once a frame,
    and again when the language changes (``window.pcFollowTexts``)."""
    patterns = [[rx, ko, en] for rx, ko, en in PATTERNS]
    return """<script>
(() => {
  const WORDS = __WORDS__, PATTERNS = __PATTERNS__.map(([rx, ko, en]) => [new RegExp(rx), ko, en]);
  const ATTRS = ['aria-label', 'title'];
  const say = (text) => {
    const key = text.trim(), en = document.documentElement.dataset.pcLang === 'en' ? 1 : 0;
    if (!key) return text;
    if (WORDS[key]) return text.replace(key, WORDS[key][en]);
    for (const [rx, ko, english] of PATTERNS) {
      const m = key.match(rx);
      if (m) return (en ? english : ko).replace(/\\$(\\d)/g, (_, i) => m[+i] || '').trim();
    }
    return text;
  };
  const fix = () => {
    const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    while (walk.nextNode()) {
      const n = walk.currentNode, v = say(n.nodeValue);
      if (v !== n.nodeValue) n.nodeValue = v;
    }
    for (const el of document.querySelectorAll('[aria-label], [title]'))
      for (const a of ATTRS) {
        const old = el.getAttribute(a);
        if (old !== null) { const v = say(old); if (v !== old) el.setAttribute(a, v); }
      }
  };
  let queued = false;
  const soon = () => { if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; fix(); }); } };
  window.pcFollowTexts = soon;
  const start = () => new MutationObserver(soon).observe(document.body,
    {subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ATTRS});
  document.readyState === 'loading' ? document.addEventListener('DOMContentLoaded', start) : start();
})();
</script>""".replace("__WORDS__", json.dumps(table(), ensure_ascii=False)).replace(
        "__PATTERNS__", json.dumps(patterns, ensure_ascii=False))


# the language switch: Gradio's words follow it (and the page's lang attribute, for screen readers)
SET_LANG_JS = ("(lang) => { document.documentElement.dataset.pcLang = lang; document.documentElement.lang = lang; "
               "window.pcFollowTexts?.(); return []; }")
