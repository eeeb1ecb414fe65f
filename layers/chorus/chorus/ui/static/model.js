// A run as the page shows it: a pure fold over the run's events (no DOM here).
//
// Streamed chunks of one message share its id and are concatenated; an item is keyed by
// (message_type, id). `lastSeq` is the seq_id of the last event folded in: an event at or
// below it is ignored (never shown twice) and one beyond lastSeq + 1 is a gap the caller must
// refill before folding on (never missing). The model is plain JSON, so it can be kept in
// sessionStorage and a reloaded page resumes from exactly what it had rendered.

const KINDS = {
  user_message: 'user',
  assistant_message: 'assistant',
  reasoning_message: 'reasoning',
  hidden_reasoning_message: 'hidden_reasoning',
  tool_call_message: 'tool_call',
  tool_return_message: 'tool_return',
  approval_request_message: 'approval_request',
  approval_response_message: 'approval_response',
  system_message: 'system',
};

export function newRun(runId = null) {
  return { runId, lastSeq: 0, items: [], stop: null, usage: null, errors: [], done: false };
}

export function textOf(content) {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content.map((part) => (part?.type === 'text' ? part.text ?? '' : `[${part?.type ?? 'part'}]`)).join('');
}

export function keyOf(message) {
  return `${message.message_type}:${message.id}`;
}

/** Is this stream payload one that carries a seq_id in the run's log (all but keep-alive pings)? */
export function isLogged(payload) {
  return payload.message_type !== 'ping' || Boolean(payload.abandoned);
}

/**
 * Fold one payload into the run. `whole` marks a complete message (from history): stream
 * chunks of a message already shown whole are dropped. Returns what changed for the view.
 */
export function apply(run, payload, { whole = false } = {}) {
  if (!run.runId && payload.run_id) run.runId = payload.run_id;
  switch (payload.message_type) {
    case 'stop_reason':
      run.stop = payload.stop_reason;
      return { what: 'footer' };
    case 'usage_statistics':
      run.usage = {
        total_tokens: payload.total_tokens ?? 0,
        prompt_tokens: payload.prompt_tokens ?? 0,
        completion_tokens: payload.completion_tokens ?? 0,
        step_count: payload.step_count ?? null,
      };
      return { what: 'footer' };
    case 'error_message':
      run.errors.push({ type: payload.error_type, message: payload.message, detail: payload.detail ?? null });
      return { what: 'footer' };
    case 'ping': {
      if (!payload.abandoned) return { what: 'none' };
      const ids = new Set(payload.abandoned.message_ids ?? []);
      const dropped = run.items.filter((item) => ids.has(item.id)).map((item) => item.key);
      run.items = run.items.filter((item) => !ids.has(item.id));
      return { what: 'dropped', keys: dropped };
    }
    default:
      break;
  }
  const kind = KINDS[payload.message_type];
  if (!kind) return { what: 'none' };
  const key = keyOf(payload);
  let item = findItem(run, key);
  if (item?.whole) return { what: 'none' };
  if (!item) {
    item = {
      key, id: payload.id, kind, whole, name: payload.name ?? null, senderId: payload.sender_id ?? null,
      text: '', tool: null, args: '', calls: [], toolCallId: null, status: null, approve: null, reason: null,
    };
    run.items.push(item);
  }
  fill(item, kind, payload);
  return { what: 'item', item };
}

function findItem(run, key) {
  for (let i = run.items.length - 1; i >= 0; i -= 1) if (run.items[i].key === key) return run.items[i];
  return null;
}

function fill(item, kind, payload) {
  switch (kind) {
    case 'user':
    case 'assistant':
    case 'system':
      item.text += textOf(payload.content);
      break;
    case 'reasoning':
      item.text += payload.reasoning ?? '';
      break;
    case 'hidden_reasoning':
      item.text = payload.hidden_reasoning ?? `(${payload.state ?? 'hidden'})`;
      break;
    case 'tool_call':
    case 'approval_request': {
      const call = payload.tool_call ?? {};
      if (call.name && !item.tool) item.tool = call.name;
      if (call.tool_call_id && !item.toolCallId) item.toolCallId = call.tool_call_id;
      item.args += call.arguments ?? '';
      const calls = payload.tool_calls ?? [];
      if (calls.length > 1) item.calls = calls.map((c) => ({ name: c.name, args: c.arguments, id: c.tool_call_id }));
      break;
    }
    case 'tool_return':
      item.text += payload.tool_return ?? '';
      item.status = payload.status ?? item.status;
      item.toolCallId = payload.tool_call_id ?? item.toolCallId;
      break;
    case 'approval_response': {
      const first = payload.approvals?.[0] ?? {};
      item.approve = payload.approve ?? first.approve ?? null;
      item.reason = payload.reason ?? first.reason ?? null;
      item.toolCallId = payload.approval_request_id ?? first.tool_call_id ?? null;
      break;
    }
    default:
      break;
  }
}

/** The tool calls an approval request waits on (one, or each of a parallel request). */
export function pendingCalls(item) {
  if (item.calls.length) return item.calls;
  return [{ name: item.tool, args: item.args, id: item.toolCallId }];
}

// Kept in sessionStorage while a run is followed: the model as rendered, so a reload resumes
// after its lastSeq instead of replaying the log.

const PREFIX = 'chorus.run.';

export function saveRun(run) {
  if (!run.runId) return;
  try {
    sessionStorage.setItem(PREFIX + run.runId, JSON.stringify(run));
  } catch {
    // storage full or disabled: a reload then replays the log from the start, which is as correct
  }
}

export function loadRun(runId) {
  try {
    const raw = sessionStorage.getItem(PREFIX + runId);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

export function forgetRun(runId) {
  sessionStorage.removeItem(PREFIX + runId);
}
