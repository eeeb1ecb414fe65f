// Renders a run model (model.js) as a chat: one lane per speaker, reasoning and tool traffic
// collapsed, an approval card for a pending tool call, and a footer with the stop reason,
// usage and duration. Updates touch only the element of the item that changed.

import { page } from './api.js';
import { Palette, fmtDuration, fmtTokens, h, replace, shortId, stopClass } from './dom.js';
import { pendingCalls } from './model.js';

function pretty(json) {
  try {
    return JSON.stringify(JSON.parse(json), null, 2);
  } catch {
    return json; // still streaming, or not JSON: show it as it is
  }
}

export class RunView {
  /**
   * @param run the model (model.js newRun), rendered as it is now
   * @param options.palette the group's lanes
   * @param options.actions {cancel(view), answer(view, answers), canAnswer(view), answerHref, info}
   */
  constructor(run, { palette = new Palette(), actions = {} } = {}) {
    this.run = run;
    this.palette = palette;
    this.actions = actions;
    this.els = new Map();
    this.cards = new Set();
    this.connection = null;
    this.info = actions.info ?? null;
    this.list = h('div', { class: 'items' });
    this.errors = h('div', { class: 'run-errors' });
    this.footer = h('footer', { class: 'run-footer' });
    this.el = h('section', { class: 'run' }, this.list, this.errors, this.footer);
    for (const item of run.items) this.renderItem(item);
    this.refresh();
  }

  /** Show what `apply` (model.js) changed. */
  update(change) {
    if (this.el.dataset.runId !== (this.run.runId ?? '')) this.refresh(); // the first event names the run
    if (change.what === 'item') this.renderItem(change.item);
    else if (change.what === 'dropped') {
      for (const key of change.keys) {
        this.els.get(key)?.el.remove();
        this.els.delete(key);
      }
    } else if (change.what === 'footer') this.refresh();
    this.el.dataset.lastSeq = String(this.run.lastSeq);
  }

  /** Live status of the connection: 'live', 'reconnecting', 'polling', or null when finished. */
  setConnection(state, message = null) {
    this.connection = state ? { state, message } : null;
    this.refresh();
  }

  setInfo(info) {
    this.info = info;
    this.refresh();
  }

  renderItem(item) {
    let entry = this.els.get(item.key);
    if (!entry) {
      entry = this.build(item);
      this.els.set(item.key, entry);
      this.list.append(entry.el);
    }
    entry.show(item);
  }

  build(item) {
    const lane = item.kind === 'user' ? null : this.palette.lane(item.senderId, item.name);
    const who = item.kind === 'user' ? 'You' : item.name ?? 'system';
    const attrs = (extra) => ({
      class: `msg ${item.kind}${lane === null ? '' : ` lane-${lane}`} ${extra}`.trim(),
      dataset: { key: item.key, messageId: item.id, kind: item.kind, speaker: who },
    });
    const body = h('div', { class: 'body' });
    switch (item.kind) {
      case 'user':
      case 'assistant':
      case 'system': {
        const el = h('article', attrs(''), h('div', { class: 'who' }, who), body);
        return { el, show: (it) => { body.textContent = it.text; } };
      }
      case 'reasoning':
      case 'hidden_reasoning': {
        const label = item.kind === 'reasoning' ? 'reasoning' : 'hidden reasoning';
        const el = h('details', attrs('trace'), h('summary', {}, h('span', { class: 'who' }, who), ` · ${label}`),
          h('pre', {}, body));
        return { el, show: (it) => { body.textContent = it.text; } };
      }
      case 'tool_call': {
        const name = h('code', {});
        const el = h('details', attrs('trace'), h('summary', {}, h('span', { class: 'who' }, who), ' · called ', name),
          h('pre', {}, body));
        return { el, show: (it) => { name.textContent = it.tool ?? '…'; body.textContent = pretty(it.args); } };
      }
      case 'tool_return': {
        const status = h('span', {});
        const el = h('details', attrs('trace'), h('summary', {}, h('span', { class: 'who' }, who), ' · tool returned ',
          status), h('pre', {}, body));
        return {
          el,
          show: (it) => {
            status.textContent = it.status ?? '';
            status.className = it.status === 'error' ? 'bad' : 'ok';
            body.textContent = it.text;
          },
        };
      }
      case 'approval_response': {
        const el = h('article', attrs('small'), body);
        return {
          el,
          show: (it) => {
            const verdict = it.approve === false ? 'Denied' : 'Approved';
            body.textContent = `${verdict} ${it.toolCallId ?? ''}${it.reason ? ` — reason: ${it.reason}` : ''}`;
          },
        };
      }
      case 'approval_request':
        return this.approvalCard(item, attrs('approval'), who);
      default: {
        const el = h('article', attrs(''), body);
        return { el, show: (it) => { body.textContent = it.text; } };
      }
    }
  }

  approvalCard(item, attrs, who) {
    const calls = h('div', { class: 'calls' });
    const actions = h('div', { class: 'approval-actions' });
    const el = h('article', attrs, h('div', { class: 'who' }, who, ' asks to run a tool'), calls, actions);
    const card = {
      el,
      item,
      answers: new Map(),
      show: (it) => {
        card.item = it;
        replace(calls, pendingCalls(it).map((c) => h('div', { class: 'call' }, h('code', {}, c.name ?? '…'),
          h('pre', {}, pretty(c.args ?? '')))));
        this.showApprovalActions(card, actions);
      },
    };
    this.cards.add(card);
    return card;
  }

  showApprovalActions(card, actions) {
    const canAnswer = this.actions.canAnswer?.(this) ?? false;
    if (!canAnswer) {
      const waiting = this.run.stop === 'requires_approval' && this.actions.answerHref;
      replace(actions, waiting ? h('a', { href: this.actions.answerHref }, 'Answer on the group page') : null);
      return;
    }
    const rows = pendingCalls(card.item).map((call) => {
      const reason = h('input', { type: 'text', class: 'reason', placeholder: 'reason (optional, sent to the agent)',
        'aria-label': `reason for ${call.name}` });
      const answer = (approve) => (event) => {
        event.preventDefault();
        card.answers.set(call.id, { tool_call_id: call.id, approve, reason: reason.value.trim() || null });
        event.target.closest('.approval-row').dataset.answer = approve ? 'approve' : 'deny';
        if (card.answers.size === pendingCalls(card.item).length) this.actions.answer(this, [...card.answers.values()]);
      };
      return h('div', { class: 'approval-row', dataset: { toolCallId: call.id ?? '' } },
        h('button', { type: 'button', class: 'approve', onclick: answer(true) }, 'Approve'),
        h('button', { type: 'button', class: 'deny', onclick: answer(false) }, 'Deny'), reason);
    });
    replace(actions, rows);
  }

  refresh() {
    const { run } = this;
    this.el.dataset.runId = run.runId ?? '';
    this.el.dataset.lastSeq = String(run.lastSeq);
    this.el.dataset.done = String(run.done);
    replace(this.errors, run.errors.map((e) => h('div', { class: 'notice error', role: 'alert' },
      h('strong', {}, `Model failure (${e.type}): `), e.message, e.detail ? ` [${e.detail}]` : '')));
    const parts = [];
    if (run.stop) parts.push(h('span', { class: stopClass(run.stop), dataset: { stop: run.stop } }, run.stop));
    else if (this.connection && this.connection.state !== 'error') {
      parts.push(h('span', { class: `live ${this.connection.state}` }, this.connection.message ?? this.connection.state));
    }
    if (run.usage) {
      const u = run.usage;
      parts.push(h('span', { class: 'usage' }, `${fmtTokens(u.total_tokens)} tokens (${fmtTokens(u.prompt_tokens)} in, `
        + `${fmtTokens(u.completion_tokens)} out)${u.step_count !== null ? ` · ${u.step_count} steps` : ''}`));
    }
    if (this.info?.total_duration_ns) parts.push(h('span', {}, fmtDuration(this.info.total_duration_ns)));
    if (this.info) parts.push(h('span', { class: 'tag' }, this.info.background ? 'background' : 'foreground'));
    if (run.runId) {
      parts.push(h('a', { class: 'run-link', href: page(`/runs/${run.runId}`), title: run.runId }, shortId(run.runId)));
    }
    if (!run.done && run.runId && this.actions.cancel) {
      parts.push(h('button', { type: 'button', class: 'cancel', onclick: () => this.actions.cancel(this) }, 'Cancel'));
    }
    if (this.connection?.state === 'error') {
      parts.push(h('span', { class: 'notice error inline', role: 'alert' }, this.connection.message));
    }
    replace(this.footer, parts);
    for (const card of this.cards) card.show(card.item);
  }
}
