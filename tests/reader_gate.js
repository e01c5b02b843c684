async () => {
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
  // 6. Figure text no smaller than the caption's: the book's PNGs record the height of
  // their smallest text in pixels (vislearn.figures.TEXT_SIZE_KEY), scaled here by the
  // size the page shows the image at.
  const smallestText = async (src) => {
    const bytes = new Uint8Array(await (await fetch(src)).arrayBuffer());
    const view = new DataView(bytes.buffer);
    for (let at = 8; at + 8 <= bytes.length; ) {
      const length = view.getUint32(at);
      const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
      if (type === "tEXt") {
        const data = bytes.subarray(at + 8, at + 8 + length);
        const zero = data.indexOf(0);
        if (String.fromCharCode(...data.subarray(0, zero)) === "Smallest-text-px") {
          return parseFloat(String.fromCharCode(...data.subarray(zero + 1)));
        }
      }
      if (type === "IEND") break;
      at += 12 + length;
    }
    return null;
  };
  for (const img of article.querySelectorAll(".cell_output img")) {
    if (!img.complete || img.naturalWidth === 0 || !visible(img)) continue;
    const recorded = await smallestText(img.src);
    const figure = img.closest("figure");
    const caption = figure?.querySelector(".caption-text") || figure?.querySelector("figcaption")
      || img.closest(".cell_output");
    const captionPx = parseFloat(getComputedStyle(caption).fontSize);
    if (recorded === null) {
      report(img, "figure without a record of its text size", img.getAttribute("alt") || img.src);
    } else if (recorded > 0) {
      const shown = (recorded * img.getBoundingClientRect().width) / img.naturalWidth;
      if (shown < captionPx - 0.25) {
        report(img, `figure text ${shown.toFixed(1)}px, smaller than the caption's ${captionPx}px`,
               img.getAttribute("alt") || img.src);
      }
    }
  }
  // 7. Legible at page width: no code cell or printed output scrolls sideways. Folded
  // cells (a closed <details>) are measured as they look when the reader unfolds them.
  const folded = [...article.querySelectorAll("details:not([open])")];
  folded.forEach((d) => { d.open = true; });
  for (const box of article.querySelectorAll(".cell_input pre, .cell_output pre")) {
    const overflow = box.scrollWidth - box.clientWidth;
    if (box.clientWidth > 0 && overflow > 1) {
      const where = box.closest(".cell_output") ? "cell output" : "code cell";
      const longest = box.textContent.split("\n").reduce((a, b) => (b.length > a.length ? b : a), "");
      report(box, `${where} ${overflow}px wider than its box`, longest);
    }
  }
  folded.forEach((d) => { d.open = false; });
  return found;
}
