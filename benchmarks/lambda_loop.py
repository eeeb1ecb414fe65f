"""One Lambda execution environment of a Python function, for `memory_workflow.py` to measure.

The Python runtime imports the function's `handler` module from its code
directory (init), then hands it one event at a time in the same process,
setting `_X_AMZN_TRACE_ID` for each. This loop does that with events read as
JSON lines from standard input: it answers `{"ready": true}` once the module
is imported, then `{"result": ...}` or `{"error": <class>, "message": ...}`
per event on the process's original standard output. File descriptor 1 is
pointed at /dev/null first, so the handler's own log lines (Powertools
prints JSON to stdout) cannot mix with the answers.

Usage: `python lambda_loop.py functions/plan` (the function's code directory).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import uuid
from types import SimpleNamespace
from typing import Any


def main() -> None:
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    code = os.path.abspath(sys.argv[1])
    sys.path.insert(0, code)
    handler = importlib.import_module("handler").handler
    name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "function")

    def answer(reply: dict[str, Any]) -> None:
        answers.write(json.dumps(reply) + "\n")
        answers.flush()

    answer({"ready": True})
    for line in sys.stdin:
        request_id = str(uuid.uuid4())
        trace = uuid.uuid4().hex
        os.environ["_X_AMZN_TRACE_ID"] = f"Root=1-{trace[:8]}-{trace[8:]};Parent={uuid.uuid4().hex[:16]};Sampled=1"
        context = SimpleNamespace(aws_request_id=request_id, function_name=name)
        try:
            answer({"result": handler(json.loads(line), context)})
        except Exception as exc:
            answer({"error": type(exc).__name__, "message": str(exc)[:2000]})


if __name__ == "__main__":
    main()
