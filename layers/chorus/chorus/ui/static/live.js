// Following a run's event stream, with resume. Each event is folded into the model only if its
// seq_id is exactly lastSeq + 1: an event already rendered is skipped and a gap makes the
// follower reconnect from lastSeq. When the connection drops (network, server, a reload) it
// resumes with `POST /v1/runs/{id}/stream {starting_after: lastSeq}`; a send whose run id is
// not known yet is re-sent with the same Idempotency-Key, which returns the same run.

import { ApiError, get, openStream } from './api.js';
import { apply, forgetRun, isLogged, saveRun } from './model.js';
import { readEvents } from './sse.js';

const RETRY_MS = [0, 250, 500, 1000, 2000, 4000];
const SAVE_EVERY_MS = 200;
const followers = new Set();

class StreamGap extends Error {}

// Every open follower saves its model when the page goes away (reload, navigation, tab close).
window.addEventListener('pagehide', () => {
  for (const follower of followers) follower.save(true);
});

// Cut every live connection as a network failure would: the followers resume on their own.
window.chorusViewer = Object.freeze({
  dropConnections() {
    for (const follower of followers) follower.drop();
  },
});

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

function retryable(err) {
  if (!(err instanceof ApiError)) return true; // network failure, abort, gap, broken frame
  return err.status === 0 || err.status === 408 || err.status === 429 || err.status >= 500;
}

export class Follower {
  /**
   * @param view the RunView showing `view.run`
   * @param options.response an already open stream (a send's answer) read first
   * @param options.controller the AbortController that response was opened with
   * @param options.resend re-send the original request (same Idempotency-Key), for a lost first answer
   * @param options.onDone called once the run's log ended ([DONE])
   */
  constructor(view, { response = null, controller = null, resend = null, onDone = null } = {}) {
    this.view = view;
    this.run = view.run;
    this.response = response;
    this.firstController = controller;
    this.resend = resend;
    this.onDone = onDone;
    this.controller = null;
    this.stopped = false;
    this.savedAt = 0;
  }

  save(force = false) {
    if (this.run.done || !this.run.runId) return;
    const now = Date.now();
    if (!force && now - this.savedAt < SAVE_EVERY_MS) return;
    this.savedAt = now;
    saveRun(this.run);
  }

  drop() {
    this.controller?.abort();
  }

  stop() {
    this.stopped = true;
    this.controller?.abort();
    followers.delete(this);
  }

  async open(signal) {
    if (this.response) {
      const first = this.response;
      this.response = null;
      return first;
    }
    if (this.run.runId) {
      return openStream(`/v1/runs/${this.run.runId}/stream`, { starting_after: this.run.lastSeq }, { signal });
    }
    if (this.resend) return this.resend(signal);
    throw new ApiError(400, 'The connection was lost before the run started.');
  }

  /** Read until the run's log ends; resolves when it did, or when the run cannot be followed. */
  async follow() {
    followers.add(this);
    let failures = 0;
    while (!this.run.done && !this.stopped) {
      this.controller = this.firstController ?? new AbortController();
      this.firstController = null;
      this.view.setConnection(failures ? 'reconnecting' : 'live', failures ? 'reconnecting…' : 'streaming…');
      let progressed = false;
      try {
        const response = await this.open(this.controller.signal);
        for await (const frame of readEvents(response)) {
          progressed = this.take(frame) || progressed;
          if (this.run.done) break;
        }
      } catch (err) {
        if (this.stopped) return;
        if (!retryable(err)) {
          this.fail(err);
          return;
        }
      }
      if (this.run.done || this.stopped) break;
      failures = progressed ? 1 : failures + 1;
      this.save(true);
      await sleep(RETRY_MS[Math.min(failures, RETRY_MS.length - 1)]);
    }
    followers.delete(this);
    if (this.run.done) await this.finish();
  }

  /** Fold one SSE frame in; true when it was new. */
  take(frame) {
    if (frame.data === '[DONE]') {
      this.run.done = true;
      return true;
    }
    const payload = JSON.parse(frame.data);
    if (!isLogged(payload)) return false; // keep-alive pings carry no seq_id and change nothing
    const seq = payload.seq_id ?? Number(frame.id);
    if (!Number.isInteger(seq) || seq <= this.run.lastSeq) return false;
    if (seq !== this.run.lastSeq + 1) throw new StreamGap(`expected seq ${this.run.lastSeq + 1}, got ${seq}`);
    const change = apply(this.run, payload);
    this.run.lastSeq = seq;
    this.view.update(change);
    this.save();
    return true;
  }

  fail(err) {
    followers.delete(this);
    const why = this.run.runId && err.status === 400
      ? `Connection lost and the run cannot be resumed: ${err.detail}`
      : err.detail ?? String(err);
    this.view.setConnection('error', why);
  }

  async finish() {
    forgetRun(this.run.runId);
    this.view.setConnection(null);
    try {
      this.view.setInfo(await get(`/v1/runs/${this.run.runId}`));
    } catch {
      // the footer keeps what the stream said; the duration is a nicety
    }
    this.onDone?.(this.view);
  }
}
