// Entry point: picks the page from the URL, asks for the API key when the server wants one.

import { ApiError, base, getKey, onUnauthorized, setKey } from './api.js';
import { h, notice, replace } from './dom.js';
import { groupPage } from './group.js';
import { homePage } from './home.js';
import { runPage } from './run.js';

const main = document.getElementById('main');
const crumbs = document.getElementById('crumbs');

// Several requests of one page can be refused at once (and polls go on being refused), so the
// form is drawn once and later refusals only update its message: what the user is typing stays.
function keyForm(message) {
  const shown = main.querySelector('.key-form');
  if (shown) {
    shown.querySelector('.key-message').textContent = message;
    return;
  }
  const input = h('input', { type: 'password', id: 'api-key', autocomplete: 'off', required: true,
    placeholder: 'API key', 'aria-label': 'API key' });
  const form = h('form', { class: 'key-form', onsubmit: (event) => {
    event.preventDefault();
    setKey(input.value.trim());
    window.location.reload();
  } },
  h('h1', {}, 'API key'),
  h('p', { class: 'key-message' }, message),
  h('p', { class: 'muted' }, 'It is sent as "Authorization: Bearer <key>" to this server only and kept in this '
    + "tab's session storage, which the browser clears when the tab closes."),
  input, ' ', h('button', { type: 'submit' }, 'Use key'));
  replace(main, form);
  input.focus();
}

function keyStatus() {
  const el = document.getElementById('key-status');
  if (!getKey()) return;
  replace(el, 'key set · ', h('button', { type: 'button', class: 'link', onclick: () => {
    setKey(null);
    window.location.reload();
  } }, 'forget'));
}

function showError(err) {
  if (err instanceof ApiError && err.status === 401) {
    keyForm(getKey() ? `The key was refused: ${err.detail}` : 'This deployment needs an API key.');
    return;
  }
  const label = err instanceof ApiError ? { 404: 'Not found', 422: 'Invalid address', 0: 'Offline' }[err.status]
    ?? `Error ${err.status}` : 'Error';
  replace(main, notice('error', h('strong', {}, `${label}: `), err.detail ?? String(err)),
    h('p', {}, h('a', { href: `${base}/ui` }, 'Back to the runs')));
}

async function route() {
  const path = window.location.pathname.slice(base.length).replace(/\/+$/, '');
  let match;
  if (path === '/ui') {
    replace(crumbs);
    return homePage(main);
  }
  if ((match = path.match(/^\/ui\/groups\/([^/]+)$/))) {
    replace(crumbs, '/ group');
    return groupPage(main, match[1]);
  }
  if ((match = path.match(/^\/ui\/runs\/([^/]+)$/))) {
    replace(crumbs, '/ run');
    return runPage(main, match[1]);
  }
  throw new ApiError(404, `No page at ${path}.`);
}

onUnauthorized((err) => showError(err));
keyStatus();
route().catch(showError);
