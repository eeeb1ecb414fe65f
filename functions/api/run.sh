#!/bin/bash
# Entry point under the AWS Lambda Web Adapter: it proxies Function URL requests
# (response streaming) to this uvicorn, readiness-checked on /v1/health.
export PYTHONPATH="/opt/python:${LAMBDA_TASK_ROOT}:${PYTHONPATH}"
exec python -m uvicorn chorus.api:app --host 127.0.0.1 --port "${AWS_LWA_PORT:-8080}" --no-access-log
