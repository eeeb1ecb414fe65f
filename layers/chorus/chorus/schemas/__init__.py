"""Pydantic v2 wire models of the Letta-compatible API. No I/O."""
