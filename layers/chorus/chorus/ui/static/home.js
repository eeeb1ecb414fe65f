// The start page: groups, and recent runs newest first with their status kept live by polling
// (plain GETs, so it works the same behind a Function URL).

import { get, page, query } from './api.js';
import { ACTIVE, Palette, badge, fmtDuration, fmtTime, fmtTokens, h, replace, shortId, stopClass } from './dom.js';
import { speakerChips, speakers } from './group.js';

const POLL_MS = 2000;
const RUNS_LIMIT = 30;

function table(headings, body) {
  return h('table', {}, h('thead', {}, h('tr', {}, headings.map((t) => h('th', {}, t)))), body);
}

class HomePage {
  constructor(main) {
    this.groupsBody = h('tbody', {});
    this.runsBody = h('tbody', { id: 'runs' });
    this.rows = new Map();
    this.usage = new Map();
    this.groups = new Map();
    this.status = h('span', { class: 'muted' });
    replace(main,
      h('section', {}, h('h1', {}, 'Groups'), table(['Group', 'Manager', 'Agents', 'Id'], this.groupsBody)),
      h('section', {}, h('h1', {}, 'Recent runs ', this.status),
        table(['Run', 'Group', 'Status', 'Stop reason', 'Started', 'Duration', 'Tokens', 'Mode'], this.runsBody)));
  }

  async loadGroups() {
    const [groups, agents] = await Promise.all([get('/v1/groups?limit=100'), get('/v1/agents?limit=1000')]);
    this.groups = new Map(groups.map((g) => [g.id, g]));
    if (!groups.length) {
      replace(this.groupsBody, h('tr', {}, h('td', { colspan: 4, class: 'muted' },
        'No groups yet. Create agents and a group with the API, or run `.venv/bin/chorus demo`.')));
      return;
    }
    replace(this.groupsBody, groups.map((g) => {
      const list = speakers(g, agents);
      return h('tr', { dataset: { groupId: g.id } },
        h('td', {}, h('a', { href: page(`/groups/${g.id}`) }, g.description || `Group ${shortId(g.id)}`)),
        h('td', {}, g.manager_type),
        h('td', {}, speakerChips(list, new Palette(list.map((s) => s.id)))),
        h('td', {}, h('code', { class: 'muted' }, g.id)));
    }));
  }

  async loadRuns() {
    const runs = await get(`/v1/runs?${query({ limit: RUNS_LIMIT })}`);
    await Promise.all(runs.map((run) => this.loadUsage(run)));
    const rows = runs.map((run) => this.row(run));
    if (!rows.length) rows.push(h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'No runs yet.')));
    replace(this.runsBody, rows);
    const active = runs.filter((r) => ACTIVE.has(r.status)).length;
    this.status.textContent = active ? `· ${active} active` : '';
  }

  async loadUsage(run) {
    if (this.usage.has(run.id) && !ACTIVE.has(run.status)) return; // a finished run's usage never changes
    try {
      this.usage.set(run.id, await get(`/v1/runs/${run.id}/usage`));
    } catch {
      this.usage.delete(run.id);
    }
  }

  row(run) {
    let row = this.rows.get(run.id);
    if (!row) {
      row = h('tr', { dataset: { runId: run.id } });
      this.rows.set(run.id, row);
    }
    row.dataset.status = run.status;
    const group = run.group_id ? this.groups.get(run.group_id) : null;
    const tokens = this.usage.get(run.id)?.total_tokens;
    const kind = run.metadata?.run_type?.startsWith('sleeptime') ? ' (sleeptime)' : '';
    replace(row,
      h('td', {}, h('a', { href: page(`/runs/${run.id}`), title: run.id }, shortId(run.id))),
      h('td', {}, run.group_id
        ? h('a', { href: page(`/groups/${run.group_id}`), title: run.group_id },
          group?.description || shortId(run.group_id))
        : '—'),
      h('td', {}, badge(run.status)),
      h('td', {}, run.stop_reason ? h('span', { class: stopClass(run.stop_reason) }, run.stop_reason) : '—'),
      h('td', {}, fmtTime(run.created_at)),
      h('td', {}, fmtDuration(run.total_duration_ns)),
      h('td', { class: 'num' }, fmtTokens(tokens)),
      h('td', {}, `${run.background ? 'background' : 'foreground'}${kind}`));
    return row;
  }

  async poll() {
    if (document.visibilityState === 'visible') {
      try {
        await this.loadRuns();
        this.status.classList.remove('stale');
      } catch {
        this.status.textContent = '· cannot refresh, retrying';
        this.status.classList.add('stale');
      }
    }
    setTimeout(() => this.poll(), POLL_MS);
  }
}

export async function homePage(main) {
  const home = new HomePage(main);
  await home.loadGroups();
  await home.loadRuns();
  setTimeout(() => home.poll(), POLL_MS);
  return home;
}
