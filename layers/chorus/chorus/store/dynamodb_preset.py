"""The preset dictionary DynamoDB item bodies are compressed with (`zd` attribute): frozen, never edited.

A record's JSON is mostly its field names and a few fixed values (`"status":"completed"`,
`"message_type":"assistant_message"`, the request config every run carries); a body of a
kilobyte or two is too short for zlib to learn them before it ends, so it spelled them out
nearly whole in every item. Given beforehand as a dictionary, they cost a back-reference of a
few bits each: a finished run's body shrinks from ~610 bytes to ~230, a message's by ~200, and
a write costs a unit per KB in the table and again in each index the item is in.

Every item written with it needs these exact bytes to be read, so they never change (a test
pins their checksum). A better dictionary is a new constant under a new attribute name, read
beside this one. The skeletons are the records' JSON with ids cut to their prefixes; what is
most common (run and message bodies) comes last, where matches are nearest.
"""

from __future__ import annotations

from typing import Final

_PARTS: Final = (
    # agents, groups, blocks and tools: written rarely, but listed and read on every send
    '{"tenant_id":"","id":"agent-","created_at":"","name":"","system":"","model":"","agent_type":"letta_v1_agent",'
    '"reasoning":false,"description":null,"tags":[],"metadata":{},"block_ids":[],"tool_ids":[],"tool_rules":[],'
    '"approval_overrides":{},"context_window":32000,"updated_at":""}',
    '{"tenant_id":"","id":"group-","created_at":"","agent_ids":["agent-"],"pending_approval":null,"turns_counter":0,'
    '"last_processed_message_id":null,"description":null,"manager_config":{"manager_type":"round_robin",'
    '"max_turns":null},"shared_block_ids":[],"hidden":null,"project_id":null,"updated_at":"","solo_agent_id":null}',
    '{"tenant_id":"","id":"block-","created_at":"","label":"","value":"","limit":20000,"description":null,'
    '"read_only":false,"metadata":null,"updated_at":"","version":0,"applied_calls":[]}',
    # message bodies of every kind but the two most common
    '{"message_type":"reasoning_message","source":"non_reasoner_model","reasoning":"","signature":null}',
    '{"message_type":"tool_call_message","tool_call":{"name":"","arguments":"{}","tool_call_id":""},"tool_calls":null}',
    '{"message_type":"tool_return_message","tool_return":"","status":"success","tool_call_id":"",'
    '"stdout":null,"stderr":null}',
    '{"message_type":"approval_request_message","approval_response_message","approvals":null,"approve":null,'
    '"approval_request_id":null,"reason":null}',
    '{"message_type":"summary","summary":"","compaction":{"first_message_id":"message-","last_message_id":"message-",'
    '"messages":0,"tokens_before":0}}',
    '"type":"text","text":"","role":"assistant","system_message","stop_reason":"tool_use","requires_approval"',
    # steps, then runs and messages (written on every run)
    '{"tenant_id":"","id":"step-","created_at":"","run_id":"run-","step_key":"00000","agent_id":null,'
    '"stop_reason":"end_turn","text":"","usage":{},"log_seq":0,"round":0,"call":0,"calls":1,"step":0,"final":true,'
    '"purpose":"speak","pending":null,"reply_to":null,"error":null}',
    '{"tenant_id":"","id":"run-","created_at":"","agent_id":"agent-","group_id":"group-","status":"created",'
    '"status":"running","status":"failed","status":"cancelled","status":"completed","completed_at":null,'
    '"background":false,"background":true,"metadata":{"run_type":"send_message_streaming","run_type":"send_message",'
    '"group_id":"group-"},"request_config":{"use_assistant_message":true,"assistant_message_tool_name":"send_message",'
    '"assistant_message_tool_kwarg":"message","include_return_message_types":null},"stop_reason":"end_turn",'
    '"ttft_ns":null,"total_duration_ns":null,"usage":{"message_type":"usage_statistics","completion_tokens":0,'
    '"prompt_tokens":0,"total_tokens":0,"step_count":0,"run_ids":["run-"],"cached_input_tokens":0,'
    '"cache_write_tokens":0,"reasoning_tokens":0},"expires_at":null,"version":0,"cancel_requested":false,'
    '"lease_owner":"worker-","lease_expires_at":0.0,"incarnation":1,"idempotency_key":null,'
    '"inputs":[{"type":"message","role":"user","content":"","name":null,"otid":null,"sender_id":null,'
    '"batch_item_id":null,"group_id":null}],"options":{"stream_tokens":true,"stream_tokens":false,"max_steps":50,'
    '"include_return_message_types":null},"traceparent":null}',
    '{"tenant_id":"","id":"message-","created_at":"","group_id":"group-","agent_id":null,"agent_id":"agent-",'
    '"run_id":"run-","step_key":"00000","step_key":"00001.0000.001","index":0,"position":"0179:run-:00000:0000",'
    '"message":{"id":"message-","date":"+00:00","name":null,"message_type":"user_message","otid":"",'
    '"sender_id":null,"step_id":"step-","is_err":null,"seq_id":null,"run_id":"run-","content":""}}',
    '{"id":"message-","date":"+00:00","name":"","message_type":"assistant_message","otid":"","sender_id":"agent-",'
    '"step_id":"step-","is_err":null,"seq_id":null,"run_id":"run-","content":""}}',
)

PRESET: Final = "".join(_PARTS).encode()
"""The dictionary: the skeletons above, concatenated (zlib uses at most the last 32 KB of one)."""
