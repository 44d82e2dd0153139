"""Readability of charts in the browser: every number on a chart inside its chart, not
overlapping another, at least 10 px and at 3:1 contrast (WCAG) against what is behind it; and
switching JupyterLab's theme to check the same in the dark. Used by the chart, panel and compare
tests."""

from __future__ import annotations

import re

# Every text element of every chart (and compare's parallel coordinates) under `root`: inside its SVG,
# not overlapping another, at least 10 px and 3:1 contrast against its background. Returns {count, problems}.
READABLE_JS = """(root) => {
  const rgba = (c) => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return [0, 0, 0, 0];
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const over = (fg, bg) => [0, 1, 2].map(i => fg[i] * fg[3] + bg[i] * (1 - fg[3])).concat([1]);
  const background = (el) => { const layers = [];
    for (let e = el; e; e = e.parentElement) { const c = rgba(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) { layers.push(c); if (c[3] >= 1) break; } }
    let bg = [255, 255, 255, 1]; for (const c of layers.reverse()) bg = over(c, bg); return bg; };
  const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  const problems = []; let count = 0;
  for (const fig of root.querySelectorAll('[data-testid=jp-train-chart], [data-testid=jp-train-compare-parallel]')) {
    const svg = fig.querySelector('svg'); if (!svg) continue;
    const box = svg.getBoundingClientRect();
    const scale = box.width / svg.viewBox.baseVal.width;
    const bg = background(fig);
    const texts = Array.from(svg.querySelectorAll('text'));
    for (const axis of ['x', 'y']) {
      const labels = texts.filter(t => t.dataset.axis === axis && t.classList.contains('jp-train-chart-tick')).map(t => t.textContent);
      if (new Set(labels).size !== labels.length) problems.push(`${fig.dataset.metric}: ${axis} ticks repeat: ${labels}`);
    }
    const rects = texts.map(t => t.getBoundingClientRect());
    texts.forEach((t, i) => {
      count++;
      const r = rects[i], cs = getComputedStyle(t), name = `${fig.dataset.metric}: "${t.textContent}"`;
      if (r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5)
        problems.push(`${name} sticks out of its chart`);
      for (let j = i + 1; j < texts.length; j++) {
        const q = rects[j];
        const w = Math.min(r.right, q.right) - Math.max(r.left, q.left), h = Math.min(r.bottom, q.bottom) - Math.max(r.top, q.top);
        if (w > 1 && h > 1) problems.push(`${name} overlaps "${texts[j].textContent}"`);
      }
      const size = parseFloat(cs.fontSize) * scale;
      if (size < 10) problems.push(`${name} is ${size.toFixed(1)} px`);
      const fg = over(rgba(cs.fill), bg);
      const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
      const ratio = (a + 0.05) / (b + 0.05);
      if (ratio < 3) problems.push(`${name} has contrast ${ratio.toFixed(2)} (${cs.fill} on rgb(${bg.slice(0, 3)}))`);
    });
  }
  return { count, problems };
}"""


def check_readable(page, root_selector, what):
    result = page.locator(root_selector).first.evaluate(READABLE_JS)
    assert result["count"] > 10, f"{what}: only {result['count']} labels"
    assert not result["problems"], f"{what}: " + "; ".join(result["problems"][:12])
    return result["count"]


def switch_theme(page, name, light):
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Theme$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{name}$")).click()
    page.wait_for_function(f"document.body.dataset.jpThemeLight === '{'true' if light else 'false'}'", timeout=15_000)
    page.wait_for_timeout(300)


def element_shot(locator, path, tries=3):
    """A screenshot of one element. A chart group redraws its sections in place (a stream's
    points, a view's reload), so the element can be replaced while Playwright waits for it to be
    stable: the locator is resolved again then, a few times."""
    from playwright.sync_api import Error

    for attempt in range(tries):
        try:
            return locator.screenshot(path=str(path))
        except Error as e:
            if "not attached" not in str(e) or attempt == tries - 1:
                raise
