"""Pydantic v2 wire models of the Letta-compatible API. No I/O.

Every model here (and every store record, `chorus.store.records`) is declared
with `defer_build=True`: pydantic builds its validator and serializer on first
use instead of at import, so a cold start (a Lambda invocation serves one
route) pays only for the models it touches. FastAPI's adapters of a route's
body and response model follow the model (they are deferred too); the OpenAPI
document is the same either way.
"""
