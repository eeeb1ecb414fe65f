// A run by URL: replayed from its event log and followed live while it runs (background runs),
// or shown from its committed messages (foreground runs, or once its log has expired).

import { ApiError, get, page, post } from './api.js';
import { ACTIVE, Palette, badge, fmtTime, h, notice, replace, shortId } from './dom.js';
import { loadUsage, speakerChips, speakers, staticRun } from './group.js';
import { Follower } from './live.js';
import { loadRun } from './model.js';
import { RunView } from './view.js';

const POLL_MS = 1500;

export async function runPage(main, runId) {
  const run = await get(`/v1/runs/${runId}`);
  const group = run.group_id ? await get(`/v1/groups/${run.group_id}`).catch(() => null) : null;
  const agents = group ? await get('/v1/agents?limit=1000') : [];
  const list = group ? speakers(group, agents) : [];
  const palette = new Palette(list.map((s) => s.id));
  const status = h('span', {}, badge(run.status));
  const notices = h('div', { class: 'notices', id: 'notices' });
  const body = h('div', { class: 'conversation', id: 'conversation' });
  replace(main,
    h('div', { class: 'page-head' },
      h('h1', {}, 'Run ', h('code', { title: run.id }, shortId(run.id)), ' ', status),
      h('p', { class: 'meta' },
        group ? [h('a', { href: page(`/groups/${group.id}`) }, group.description || `Group ${shortId(group.id)}`), ' ',
          speakerChips(list, palette), ' · '] : null,
        `started ${fmtTime(run.created_at)} · ${run.background ? 'background' : 'foreground'}`)),
    body, notices);

  const messages = await get(`/v1/runs/${run.id}/messages?limit=1000`);
  const actions = {
    info: run,
    answerHref: group ? page(`/groups/${group.id}`) : null,
    cancel: async () => {
      try {
        // a run with no group is an agent's own (its direct conversation, or a sleeptime agent's run)
        const owner = run.group_id ? `/v1/groups/${run.group_id}` : `/v1/agents/${run.agent_id}`;
        await post(`${owner}/messages/cancel`, { run_ids: [run.id] });
      } catch (err) {
        replace(notices, notice('error', err.detail ?? String(err)));
      }
    },
  };
  const showStatic = (record, committed) => {
    const view = new RunView(staticRun(record, committed), { palette, actions: { ...actions, info: record } });
    replace(body, view.el);
    loadUsage(view);
    return view;
  };

  if (!run.background) {
    const view = showStatic(run, messages);
    if (ACTIVE.has(run.status)) {
      view.setConnection('polling', 'running (a foreground run: its stream belongs to the client that started it)');
      pollUntilDone(run.id, status, async (done) => showStatic(done, await get(`/v1/runs/${run.id}/messages?limit=1000`)));
    }
    return;
  }
  const model = loadRun(run.id) ?? staticRun({ ...run, stop_reason: null, status: 'running' },
    messages.filter((m) => m.message_type === 'user_message'));
  model.done = false;
  const view = new RunView(model, { palette, actions: ACTIVE.has(run.status) ? actions : { ...actions, cancel: null } });
  replace(body, view.el);
  const follower = new Follower(view, { onDone: (v) => replace(status, badge(v.info?.status ?? 'completed')) });
  await follower.follow();
  if (!view.run.done && view.connection?.state === 'error') {
    // the log is gone (expired) or cannot be read: show what the run committed instead
    const reason = view.connection.message;
    showStatic(run, messages);
    replace(notices, notice('info', `Replay unavailable (${reason}); showing the run's committed messages.`));
  }
}

function pollUntilDone(runId, status, onDone) {
  setTimeout(async () => {
    try {
      const run = await get(`/v1/runs/${runId}`);
      if (!ACTIVE.has(run.status)) {
        replace(status, badge(run.status));
        await onDone(run);
        return;
      }
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return;
    }
    pollUntilDone(runId, status, onDone);
  }, POLL_MS);
}
