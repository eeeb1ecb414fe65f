// The public /v1 API, with the deployment's key from sessionStorage. Every failure becomes an
// ApiError carrying the status and the server's `detail` (and its body, e.g. a 409's run_id).

const KEY = 'chorus.apiKey';
export const base = document.body.dataset.base || '';

let unauthorized = null;

export function onUnauthorized(handler) {
  unauthorized = handler;
}

export function getKey() {
  return sessionStorage.getItem(KEY);
}

export function setKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

export function page(path) {
  return `${base}/ui${path}`;
}

export class ApiError extends Error {
  constructor(status, detail, body = null) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.body = body;
  }
}

function headers(json, accept = 'application/json', extra = {}) {
  const out = { Accept: accept, ...extra };
  if (json) out['Content-Type'] = 'application/json';
  const key = getKey();
  if (key) out.Authorization = `Bearer ${key}`;
  return out;
}

async function send(method, path, body, { signal, accept, extraHeaders } = {}) {
  try {
    return await fetch(`${base}${path}`, {
      method,
      headers: headers(body !== undefined, accept, extraHeaders),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
    });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, `Cannot reach the server: ${err.message}`);
  }
}

export async function errorOf(response) {
  let detail = `${response.status} ${response.statusText || 'error'}`;
  let body = null;
  try {
    body = await response.json();
    if (typeof body?.detail === 'string') detail = body.detail;
    else if (body?.detail) detail = JSON.stringify(body.detail);
  } catch {
    // not JSON: keep the status line
  }
  const error = new ApiError(response.status, detail, body);
  if (response.status === 401 && unauthorized) unauthorized(error);
  return error;
}

export async function call(method, path, body, options) {
  const response = await send(method, path, body, options);
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

export const get = (path, options) => call('GET', path, undefined, options);
export const post = (path, body, options) => call('POST', path, body, options);

/** POST that answers Server-Sent Events: the open Response, or an ApiError before the first byte. */
export async function openStream(path, body, { signal, headers: extraHeaders } = {}) {
  const response = await send('POST', path, body, { signal, accept: 'text/event-stream', extraHeaders });
  if (!response.ok) throw await errorOf(response);
  return response;
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) search.set(name, String(value));
  }
  return search.toString();
}

export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}
