"""Pydantic v2 wire models of the Letta-compatible API. No I/O.

Request bodies and the parts only they use (`BodyModel`), like the store
records (`chorus.store.records`), are declared with `defer_build=True`:
pydantic builds their validators on first use instead of at import, so a cold
start (a Lambda invocation serves one route) pays only for the bodies it
receives. FastAPI's adapter of a route's body follows its model (deferred
too). Response shapes stay built at import: FastAPI builds the adapter of a
listed response (`list[AgentState]`, `list[LettaMessage]`) when the route is
declared, whatever the model says, and a deferred model would be built again,
inline, in each such adapter and once more on its own first use. The OpenAPI
document is the same either way.
"""
