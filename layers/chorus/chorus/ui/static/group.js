// The group page: the conversation (history grouped by run, the active run followed live),
// the composer, cancel and approvals.

import { ApiError, get, newKey, openStream, page, post, query } from './api.js';
import { ACTIVE, Palette, h, notice, replace, shortId } from './dom.js';
import { Follower } from './live.js';
import { apply, forgetRun, loadRun, newRun } from './model.js';
import { RunView } from './view.js';

const HISTORY_LIMIT = 200;
const POLL_MS = 1500;

export function speakers(group, agents) {
  const ids = [...group.agent_ids];
  if (group.manager_agent_id && !ids.includes(group.manager_agent_id)) ids.push(group.manager_agent_id);
  const names = new Map(agents.map((a) => [a.id, a.name]));
  return ids.map((id) => ({ id, name: names.get(id) ?? shortId(id) }));
}

export function speakerChips(list, palette) {
  return h('span', { class: 'chips' }, list.map((s) => h('span', { class: `chip lane-${palette.lane(s.id, s.name)}`,
    title: s.id }, s.name)));
}

/** A finished (or foreground) run from its committed messages and its run record. */
export function staticRun(run, messages) {
  const model = newRun(run.id);
  for (const message of messages) apply(model, message, { whole: true });
  model.stop = run.stop_reason ?? null;
  model.done = !ACTIVE.has(run.status);
  return model;
}

export async function loadUsage(view) {
  try {
    const usage = await get(`/v1/runs/${view.run.runId}/usage`);
    view.run.usage = { ...usage, step_count: null };
    view.refresh();
  } catch {
    // usage is a nicety: the run is shown without it
  }
}

class GroupPage {
  constructor(main, group, agents) {
    this.group = group;
    this.list = speakers(group, agents);
    this.palette = new Palette(this.list.map((s) => s.id));
    this.views = [];
    this.followers = [];
    this.timer = null;
    this.conversation = h('div', { class: 'conversation', id: 'conversation' });
    this.notices = h('div', { class: 'notices', id: 'notices' });
    this.composer = this.buildComposer();
    const title = group.description || `Group ${shortId(group.id)}`;
    replace(main,
      h('div', { class: 'page-head' }, h('h1', {}, title),
        h('p', { class: 'meta' }, h('span', { class: 'tag' }, group.manager_type), ' ',
          speakerChips(this.list, this.palette), ' ', h('code', { class: 'muted' }, group.id))),
      this.conversation, this.notices, this.composer);
  }

  buildComposer() {
    this.input = h('textarea', { id: 'message', rows: 3, placeholder: 'Message the group… (Ctrl+Enter sends)',
      'aria-label': 'message' });
    this.tokens = h('input', { type: 'checkbox', id: 'opt-stream-tokens', checked: true });
    this.background = h('input', { type: 'checkbox', id: 'opt-background', checked: true });
    this.maxSteps = h('input', { type: 'number', id: 'opt-max-steps', min: 1, max: 10000, value: 50 });
    this.sendButton = h('button', { type: 'submit', id: 'send' }, 'Send');
    this.input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        this.submit();
      }
    });
    return h('form', { class: 'composer', onsubmit: (event) => { event.preventDefault(); this.submit(); } },
      this.input,
      h('div', { class: 'options' },
        h('label', { title: 'Show tokens as the model produces them' }, this.tokens, ' stream tokens'),
        h('label', { title: 'The run goes on if this page closes, and the page can resume it' }, this.background,
          ' background'),
        h('label', { title: 'Model steps per agent turn' }, 'max steps ', this.maxSteps),
        this.sendButton));
  }

  options() {
    const body = { stream_tokens: this.tokens.checked, background: this.background.checked };
    if (this.maxSteps.value !== '') body.max_steps = Number(this.maxSteps.value);
    return body;
  }

  async load() {
    this.stopAll();
    const [messages, runs] = await Promise.all([
      get(`/v1/groups/${this.group.id}/messages?${query({ order: 'desc', limit: HISTORY_LIMIT })}`),
      get(`/v1/runs?${query({ group_id: this.group.id, limit: 100 })}`),
    ]);
    const byId = new Map(runs.map((r) => [r.id, r]));
    const segments = [];
    for (const message of messages.reverse()) {
      const last = segments.at(-1);
      if (last && last.runId === message.run_id) last.messages.push(message);
      else segments.push({ runId: message.run_id, messages: [message] });
    }
    for (const run of runs.filter((r) => ACTIVE.has(r.status)).reverse()) {
      if (!segments.some((s) => s.runId === run.id)) segments.push({ runId: run.id, messages: [] });
    }
    replace(this.conversation);
    this.views = [];
    if (!segments.length) this.conversation.append(h('p', { class: 'muted empty' }, 'No messages yet.'));
    for (const segment of segments) this.showSegment(segment, byId.get(segment.runId));
  }

  showSegment(segment, run) {
    if (!run) {
      this.add(staticRun({ id: segment.runId, status: 'completed' }, segment.messages), null);
      return;
    }
    if (!ACTIVE.has(run.status)) {
      forgetRun(run.id);
      const view = this.add(staticRun(run, segment.messages), run);
      loadUsage(view);
      return;
    }
    if (run.background) {
      // Resume from what this tab rendered before a reload, else replay the log from the start.
      const model = loadRun(run.id) ?? staticRun(run, segment.messages.filter((m) => m.message_type === 'user_message'));
      model.done = false;
      this.followView(this.add(model, run));
      return;
    }
    const view = this.add(staticRun(run, segment.messages), run);
    view.setConnection('polling', 'running (its stream belongs to the client that started it)');
    this.poll(run.id);
  }

  add(model, info) {
    this.conversation.querySelector('.empty')?.remove();
    const view = new RunView(model, {
      palette: this.palette,
      actions: {
        info,
        cancel: (v) => this.cancel(v),
        canAnswer: (v) => v === this.views.at(-1) && v.run.done && v.run.stop === 'requires_approval',
        answer: (v, answers) => this.answer(answers),
      },
    });
    this.views.push(view);
    for (const earlier of this.views) earlier.refresh(); // only the newest run's approval card is live
    this.conversation.append(view.el);
    view.el.scrollIntoView({ block: 'end' });
    return view;
  }

  followView(view, options = {}) {
    const follower = new Follower(view, { ...options, onDone: () => view.el.scrollIntoView({ block: 'end' }) });
    this.followers.push(follower);
    follower.follow();
    return follower;
  }

  poll(runId) {
    clearTimeout(this.timer);
    this.timer = setTimeout(async () => {
      try {
        const run = await get(`/v1/runs/${runId}`);
        if (!ACTIVE.has(run.status)) {
          await this.load();
          return;
        }
      } catch {
        // keep polling: a blip is not the end of the run
      }
      this.poll(runId);
    }, POLL_MS);
  }

  stopAll() {
    clearTimeout(this.timer);
    for (const follower of this.followers) follower.stop();
    this.followers = [];
  }

  async submit() {
    const text = this.input.value.trim();
    if (!text) {
      this.show(notice('error', 'Type a message first.'));
      return;
    }
    if (await this.send({ input: text }, text)) this.input.value = '';
  }

  answer(answers) {
    return this.send({ messages: [{ type: 'approval', approvals: answers.map((a) => ({ type: 'approval', ...a })) }] });
  }

  /** Start a run and follow it; errors before the first byte are shown, nothing is added. */
  async send(payload, text = null) {
    replace(this.notices);
    const body = { ...payload, ...this.options() };
    const key = newKey();
    const path = `/v1/groups/${this.group.id}/messages/stream`;
    const open = (signal) => openStream(path, body, { signal, headers: { 'Idempotency-Key': key } });
    this.sendButton.disabled = true;
    const controller = new AbortController();
    let response;
    try {
      response = await open(controller.signal);
    } catch (err) {
      this.showError(err);
      return false;
    } finally {
      this.sendButton.disabled = false;
    }
    const model = newRun();
    if (text !== null) apply(model, { message_type: 'user_message', id: `local-${key}`, content: text }, { whole: true });
    const view = this.add(model, { background: body.background });
    this.followView(view, { response, controller, resend: open });
    return true;
  }

  async cancel(view) {
    try {
      await post(`/v1/groups/${this.group.id}/messages/cancel`, { run_ids: [view.run.runId] });
    } catch (err) {
      this.showError(err);
    }
  }

  showError(err) {
    if (!(err instanceof ApiError)) {
      this.show(notice('error', String(err)));
      return;
    }
    const runId = err.body?.run_id;
    const label = { 400: 'Bad request', 404: 'Not found', 409: 'Busy', 422: 'Invalid input' }[err.status] ?? `Error ${err.status}`;
    this.show(notice('error', h('strong', {}, `${label}: `), err.detail,
      runId ? [' ', h('a', { href: page(`/runs/${runId}`), class: 'active-run' }, `Open run ${shortId(runId)}`)] : null));
  }

  show(element) {
    replace(this.notices, element);
    element.scrollIntoView({ block: 'nearest' });
  }
}

export async function groupPage(main, groupId) {
  const [group, agents] = await Promise.all([get(`/v1/groups/${groupId}`), get('/v1/agents?limit=1000')]);
  const view = new GroupPage(main, group, agents);
  await view.load();
  return view;
}
