"""Pure orchestration: agent turns, context, managers. No I/O."""
