"""The page's CSS: one narrow column for phones (390 px wide, no sideways scrolling), warnings in colour with
words and icons (never colour alone), and a large-text mode that scales Gradio's own size variables.

Gradio defines its theme variables on :root (and again on .dark), and derived sizes resolve there, so the
large-text mode overrides them on the same elements rather than further down the page."""

_LARGE = {"xxs": 13, "xs": 15, "sm": 17, "md": 20, "lg": 22, "xl": 28, "xxl": 32}

# Gradio's subdued grey (#BBBBC2, 1.9:1 on white) fails WCAG AA (4.5:1) for the labels and notes older eyes
# must read: the page's greys are #4b5563 (7.6:1) and darker.
CSS = """
html:root, html .dark { --body-text-color-subdued: #4b5563; --block-info-text-color: #4b5563;
                        --block-label-text-color: #374151; --input-placeholder-color: #4b5563; }
.gradio-container { max-width: 720px !important; margin: 0 auto !important; overflow: clip !important;  /* not
                    hidden: a scroll container would stop the summary from sticking */
                    padding-left: 8px !important; padding-right: 8px !important; }
.gradio-container, .gradio-container * { overflow-wrap: anywhere; }
/* Gradio's upload prompts do not wrap: in large text they widen a phone's page past its screen */
.gradio-container .prompt, .gradio-container .prompt * { white-space: normal !important; text-align: center; }
/* every tap target at least 44 x 44 px (Gradio's radios are 35 px, its toolbar icons 18-22 px) */
.gradio-container button, .gradio-container label:has(input[type=radio]),
.gradio-container label:has(input[type=checkbox]) { min-height: 44px; min-width: 44px; }
.gradio-container label:has(input[type=checkbox]) { display: flex; align-items: center; }
.gradio-container textarea, .gradio-container input[type=number], .gradio-container input[type=text] { min-height: 44px; }
.gradio-container input[type=checkbox], .gradio-container input[type=radio] { width: 22px; height: 22px; }
/* a ticked box stays coloured under the finger: phones keep :hover on what was tapped, and Gradio's hover colour
   (white) would show a chosen language or answer as not chosen */
.gradio-container input[type=checkbox]:checked:hover, .gradio-container input[type=radio]:checked:hover {
  background-color: var(--checkbox-background-color-selected) !important;
  border-color: var(--checkbox-border-color-selected) !important; }
.pc-title { font-size: var(--text-xl); line-height: 1.2; margin: 2px 0 0; }
.pc-subtitle { margin: 2px 0 0; color: var(--body-text-color-subdued); font-size: var(--text-md); }
.pc-prefs { align-items: center; gap: 8px 12px; flex-wrap: wrap !important; }
.pc-prefs > * { min-width: 0 !important; }
#pc-lang { flex: 0 0 auto !important; }
#pc-lang .wrap { flex-wrap: wrap; gap: 6px; }
html .main.fillable { padding-left: clamp(4px, 4vw - 12px, 32px) !important;  /* 4 px on a phone, not 32 */
                      padding-right: clamp(4px, 4vw - 12px, 32px) !important; }
#pc-lang label, #pc-large label { white-space: nowrap; overflow-wrap: normal; }
#pc-large { flex: 0 1 auto !important; }
#pc-status:not(:has(.pc-status)) { display: none; }
#pc-summary { position: sticky; top: 0; z-index: 50; }
#pc-summary:not(:has(.pc-summary)) { display: none; }
.pc-summary { background: #ffffff; border: 2px solid #1f2937; border-radius: 10px; padding: 8px 10px;
              font-size: var(--text-md); font-weight: 800; color: #1f2937; box-shadow: 0 2px 6px rgba(0, 0, 0, .15); }
.pc-sum-danger { color: #991b1b; }
.pc-sum-confirm { color: #9a3412; }  /* no empty gap above the warnings */
.pc-demo { background: #fef3c7; color: #78350f; border: 2px solid #d97706; border-radius: 8px;
           padding: 8px 12px; font-weight: 700; font-size: var(--text-md); margin-bottom: 6px; }
.pc-disclaimer { color: var(--body-text-color-subdued); font-size: var(--text-md); }
.pc-status { padding: 6px 10px; border-radius: 8px; font-size: var(--text-md);
             background: var(--background-fill-secondary); }
.pc-status-error { background: #fee2e2; color: #7f1d1d; border: 1px solid #b91c1c; }
.pc-warnings h2 { font-size: var(--text-lg); margin: 4px 0 6px; }
.pc-warn { display: flex; gap: 10px; align-items: flex-start; padding: 10px 12px; margin: 6px 0;
           border-radius: 10px; border-left: 8px solid; font-size: var(--text-md); }
.pc-warn .pc-icon { font-size: 1.6em; line-height: 1; }
.pc-warn-head { font-weight: 800; font-size: 1.05em; }
.pc-warn-who { font-weight: 600; margin-top: 2px; }
.pc-warn-why { margin-top: 2px; font-size: 0.92em; }
.pc-warn-do { margin-top: 4px; font-weight: 700; }
.pc-critical { background: #fee2e2; color: #7f1d1d; border-color: #b91c1c; }
.pc-warning { background: #ffedd5; color: #7c2d12; border-color: #c2410c; }
.pc-cautions { margin: 6px 0; padding: 8px 12px; border: 1px solid #a16207; border-radius: 8px; color: #3f2a06; }
.pc-cautions summary { cursor: pointer; font-weight: 700; min-height: 44px; display: flex; align-items: center; }
.pc-cautions li { margin: 4px 0; }
.pc-caution { background: #fef9c3; color: #713f12; border-color: #a16207; }
.pc-info, .pc-ok { background: #dcfce7; color: #14532d; border-color: #15803d; }
.pc-possible-list { margin: 6px 0; padding: 8px 12px; border: 1px dashed #4b5563; border-radius: 8px; }
.pc-possible-list summary { cursor: pointer; font-weight: 700; min-height: 44px; display: flex; align-items: center; }
.pc-warn.pc-possible { border-style: dashed; background: #f9fafb; color: #1f2937; border-color: #4b5563; }
.pc-possible-settle { font-size: 0.92em; margin-bottom: 2px; }
.pc-possible-if { font-weight: 700; }
.pc-possible-note { font-size: 0.9em; margin: 2px 0 6px; }
.pc-unchecked { margin: 6px 0 0; padding-left: 1.2em; font-size: var(--text-sm); }
.pc-cards { display: grid; gap: 8px; font-size: var(--text-md); }
.pc-card { border: 2px solid; border-radius: 12px; padding: 8px 12px; background: var(--block-background-fill); }
.pc-card header { display: flex; align-items: center; gap: 8px; flex-wrap: wrap; margin-bottom: 4px; }
.pc-num { color: #fff; border-radius: 999px; min-width: 1.9em; padding: 0 6px; text-align: center; font-weight: 800; }
.pc-name { font-weight: 700; flex: 1 1 12em; }
.pc-badge { font-weight: 700; font-size: 0.9em; }
.pc-row { display: flex; justify-content: space-between; gap: 12px; border-top: 1px solid var(--border-color-primary);
          padding: 2px 0; }
.pc-row span { color: var(--body-text-color-subdued); flex: 0 0 auto; }
.pc-row b { text-align: right; font-weight: 600; }
.pc-recall b { color: #b00020; }
.pc-choices { margin-top: 4px; font-size: 0.95em; }
.pc-choices > span { display: block; font-weight: 700; margin-bottom: 4px; }
.pc-cand { display: flex; align-items: center; gap: 10px; width: 100%; min-height: 56px; margin: 4px 0;
           padding: 6px 10px; text-align: left; background: #ffffff; color: #111827; cursor: pointer;
           border: 2px solid #4b5563; border-radius: 10px; font: inherit; }
.pc-cand:active, .pc-cand:focus-visible { background: #dbeafe; border-color: #1d4ed8; }
.pc-cand img { width: 64px; height: 64px; object-fit: contain; flex: 0 0 64px; border-radius: 6px; background: #f3f4f6; }
.pc-cand-text { display: flex; flex-direction: column; min-width: 0; }
.pc-cand-text small { color: #374151; font-size: 0.9em; }
.pc-status-alert { background: #fee2e2; color: #7f1d1d; border: 2px solid #b91c1c; font-weight: 700; }
#pc-status { scroll-margin-top: 72px; }  /* below the sticky summary */
.pc-turn { margin: 6px 0 0; font-weight: 600; }
#pc-photo, #pc-result { min-width: 0 !important; }
""" + "html:root.pc-large, html.pc-large .dark {" + "".join(
    f" --text-{k}: {v}px;" for k, v in _LARGE.items()) + " }\n"
