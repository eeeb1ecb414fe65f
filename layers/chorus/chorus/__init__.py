"""Chorus: a serverless multi-agent orchestrator that speaks the Letta groups API."""

__version__ = "0.1.0"

__all__ = ["__version__"]
