"""Run inside a `sam build` output, as `sam local invoke` would: feed every `api-*.json` event
to the built API function's buffered handler and write what came back, as JSON, to the file
named by the first argument (stdout is the function's log, as on Lambda).

Started by `test_sam_build.py` with the build's Python (3.12) and nothing on the path but the
function's directory (Lambda's `/var/task`), the layer's `python/` (`/opt/python`) and the
tests' `support/lambda_events.py` (its directory, not the `support` package), so an import the
build lacks fails here as it would on Lambda.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pydantic_core
from lambda_events import invoke_all, load_api_handler, seed  # type: ignore[import-not-found]  # on the path here

import chorus
from chorus.store.sqlite import SQLiteStore


def main() -> None:
    asyncio.run(seed(SQLiteStore(Path(os.environ["CHORUS_DB_PATH"]))))
    handler = load_api_handler(Path.cwd() / "handler.py")
    results = invoke_all(handler)
    handler.close()
    where = {"chorus": chorus.__file__, "pydantic_core": pydantic_core.__file__, "python": sys.version}
    Path(sys.argv[1]).write_text(json.dumps({"loaded_from": where, "results": results}))


if __name__ == "__main__":
    main()
