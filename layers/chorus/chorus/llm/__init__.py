"""The `llm` port and its adapters."""
