// DOM and formatting helpers. Text from the API only ever enters the page as text nodes
// (`append` of a string, `textContent`): nothing is parsed as HTML, so model output cannot
// inject markup or script.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') el.className = value;
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** The uuid's first block: enough to tell runs apart on screen; the full id is in the title. */
export function shortId(id) {
  if (!id) return '';
  const dash = id.indexOf('-');
  return dash < 0 ? id : id.slice(0, dash + 9);
}

export function fmtDuration(ns) {
  if (ns === null || ns === undefined) return '—';
  const ms = ns / 1e6;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

export function fmtTokens(n) {
  if (n === null || n === undefined) return '—';
  return n >= 10000 ? `${(n / 1000).toFixed(1)}k` : String(n);
}

export function fmtTime(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(undefined, {
    month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

export const ACTIVE = new Set(['created', 'running']);
export const FAILED_STOPS = new Set([
  'error', 'llm_api_error', 'invalid_llm_response', 'invalid_tool_call', 'no_tool_call', 'max_tokens_exceeded',
]);

export function stopClass(stop) {
  if (!stop) return 'stop';
  if (FAILED_STOPS.has(stop)) return 'stop bad';
  if (stop === 'cancelled') return 'stop warn';
  if (stop === 'requires_approval') return 'stop ask';
  return 'stop ok';
}

export function badge(status) {
  return h('span', { class: `badge ${status}`, dataset: { status } }, status);
}

/** Speakers get lanes (colours) by their place in the group's agent list, stable across pages. */
export class Palette {
  constructor(agentIds = [], size = 8) {
    this.size = size;
    this.index = new Map(agentIds.map((id, i) => [id, i % size]));
  }

  lane(senderId, name) {
    if (senderId && this.index.has(senderId)) return this.index.get(senderId);
    const key = senderId || name || '';
    let hash = 0;
    for (const ch of key) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
    const lane = hash % this.size;
    if (senderId) this.index.set(senderId, lane);
    return lane;
  }
}

export function notice(kind, ...children) {
  return h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, ...children);
}
