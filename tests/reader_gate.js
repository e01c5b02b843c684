() => {
  // Problems a reader would see on this page, each as [section, kind, text].
  const found = [];
  const article = document.querySelector("article") || document.querySelector("[role=main]") || document.body;
  const clip = (text) => text.replace(/\s+/g, " ").trim().slice(0, 120);
  const heading = (section) => {
    const h = section.querySelector(":scope > h1, :scope > h2, :scope > h3, :scope > h4");
    if (!h) return null;
    const copy = h.cloneNode(true);
    copy.querySelectorAll(".headerlink").forEach((a) => a.remove());
    return clip(copy.textContent);
  };
  const sectionOf = (node) => {
    for (let el = node.nodeType === 1 ? node : node.parentElement; el; el = el.parentElement) {
      if (el.tagName === "SECTION" && heading(el)) return heading(el);
    }
    return "(top of page)";
  };
  const report = (node, kind, text) => found.push([sectionOf(node), kind, clip(text)]);
  const visible = (el) => el.checkVisibility ? el.checkVisibility() : el.offsetParent !== null;

  // 1. Raw TeX or MyST syntax in the prose (code, outputs and typeset maths are not prose).
  const notProse = "pre, code, script, style, mjx-container, .highlight, .cell_input, .cell_output, .math";
  const rawTex = /\\[a-zA-Z]+|\\[()[\]{}]|\$/;
  const roles = /\{(?:cite|cite:[a-z]+|eq|numref|ref|doc|math|term)\}`?/;
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest(notProse) || !visible(parent)) continue;
    const text = node.textContent;
    const match = text.match(rawTex) || text.match(roles) || text.match(/\?\?|\[#[^\]]*\]/);
    if (match) {
      const block = parent.closest("p, li, dd, dt, td, th, figcaption, h1, h2, h3, h4") || parent;
      const at = block.textContent.indexOf(text) + match.index;
      const excerpt = block.textContent.slice(Math.max(0, at - 50), at + 70);
      report(parent, `raw source text ${JSON.stringify(match[0])}`, excerpt);
    }
  }
  // 2. Maths: every formula typeset, none with a MathJax error.
  for (const el of article.querySelectorAll(".math")) {
    if (!el.querySelector("mjx-container")) report(el, "maths not typeset", el.textContent);
  }
  for (const el of article.querySelectorAll("mjx-merror, [data-mjx-error]")) {
    report(el, "MathJax error", el.getAttribute("data-mjx-error") || el.textContent);
  }
  // 3. References and citations that did not resolve.
  for (const el of article.querySelectorAll(".problematic, .system-message, span.xref:not(a span.xref)")) {
    report(el, "unresolved reference", el.textContent);
  }
  // 4. Images: loaded, and not shown at zero size.
  for (const img of article.querySelectorAll("img")) {
    const box = img.getBoundingClientRect();
    if (!img.complete || img.naturalWidth === 0) report(img, "image not loaded", img.getAttribute("src"));
    else if (visible(img) && box.width * box.height === 0) report(img, "image of zero size", img.getAttribute("src"));
  }
  // 5. Cell outputs: no traceback, no warning, no NaN where a number belongs.
  for (const out of article.querySelectorAll(".cell_output")) {
    const text = out.textContent;
    const problem =
      /Traceback \(most recent call last\)|^\s*\w*Error: /m.exec(text) ||
      /\b\w*Warning\b[:(]|^\s*warnings\.warn/m.exec(text) ||
      // a cell tagged nan-expected shows a NaN on purpose (an overflow, say)
      (!out.closest(".tag_nan-expected") && /(?<![\w.-])[-+]?nan(?![\w.-])/i.exec(text));
    if (problem) {
      const line = text.split("\n").find((l) => l.includes(problem[0].trim())) || problem[0];
      report(out, `cell output shows ${JSON.stringify(problem[0].trim())}`, line);
    }
    for (const err of out.querySelectorAll(".stderr, .traceback")) report(err, "cell output on stderr", err.textContent);
  }
  return found;
}
