"""AWS list prices the cost model multiplies its measured counts by: us-east-1, arm64, on-demand.

Read on 2026-12-06 from the public pricing pages:
- Lambda: https://aws.amazon.com/lambda/pricing/ — $0.20 per million requests,
  $0.0000133334 per GB-second on arm64 (first pricing tier), billed per 1 ms;
  response streaming: the first 6 MB of each response free, then $0.008 per GB.
- Step Functions: https://aws.amazon.com/step-functions/pricing/ — Standard
  $0.025 per 1,000 state transitions; Express $1.00 per million requests and
  $0.00001667 per GB-second, billed per 100 ms, memory in 64 MB steps (the
  execution's state; a run's state is ids and counters, so 64 MB).
- DynamoDB: https://aws.amazon.com/dynamodb/pricing/on-demand/ — on-demand
  $0.625 per million write request units, $0.125 per million read request units.
- Data transfer out to the internet: https://aws.amazon.com/ec2/pricing/on-demand/
  (Data Transfer section) — $0.09 per GB past the free 100 GB a month; what a
  client that reads the stream from outside AWS adds, shown apart.

Free tiers are ignored: the model prices the marginal run of a busy account.
Change the figures here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

PRICES_DATE = "2026-12-06"
REGION = "us-east-1"
ARCHITECTURE = "arm64"


@dataclass(frozen=True, slots=True)
class Prices:
    lambda_request: float = 0.20 / 1e6
    lambda_gb_second: float = 0.0000133334
    lambda_stream_free_bytes: int = 6 * 1024 * 1024
    lambda_stream_gb: float = 0.008
    sfn_standard_transition: float = 0.025 / 1000
    sfn_express_request: float = 1.00 / 1e6
    sfn_express_gb_second: float = 0.00001667
    sfn_express_memory_mb: int = 64
    sfn_express_billing_ms: int = 100
    dynamodb_write_unit: float = 0.625 / 1e6
    dynamodb_read_unit: float = 0.125 / 1e6
    transfer_out_gb: float = 0.09


PRICES = Prices()
