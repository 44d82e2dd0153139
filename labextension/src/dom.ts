/** Tiny DOM helpers shared by the panel's plain-DOM widgets. */

export type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number | boolean | undefined | ((ev: any) => void)> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) {
      continue;
    }
    if (typeof v === 'function') {
      node.addEventListener(k.replace(/^on/, '').toLowerCase(), v);
    } else if (k === 'class') {
      node.className = String(v);
    } else if (k === 'testid') {
      node.dataset.testid = String(v);
    } else if (k.startsWith('data-')) {
      node.setAttribute(k, String(v));
    } else if (v === true) {
      node.setAttribute(k, '');
    } else {
      node.setAttribute(k, String(v));
    }
  }
  append(node, ...children);
  return node;
}

export function append(node: Element, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) {
      continue;
    }
    node.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
  }
}

export function button(
  label: string,
  onClick: () => void,
  attrs: Record<string, string | number | boolean | undefined> = {}
): HTMLButtonElement {
  return h('button', { type: 'button', class: 'jp-train-button jp-mod-styled', onclick: onClick, ...attrs }, label);
}

/** A status badge: data-status and a class per status, for colour and tests. */
export function statusBadge(status: string): HTMLSpanElement {
  return h(
    'span',
    {
      class: `jp-train-status jp-train-status-${status.toLowerCase()}`,
      'data-status': status,
      title: status
    },
    h('span', { class: 'jp-train-status-dot', 'aria-hidden': 'true' }),
    status
  );
}

/** Save a blob as a file through the browser. */
export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: filename, style: 'display:none' });
  document.body.appendChild(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 10000);
}

const SVG = 'http://www.w3.org/2000/svg';

/** An SVG element with attributes, appended to ``parent`` when given (the charts' builder). */
export function el<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number> = {},
  parent?: Element
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    node.setAttribute(k, String(v));
  }
  parent?.appendChild(node);
  return node;
}
