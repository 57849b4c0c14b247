"""`helm test`'s check (charts/transfer-operator/templates/tests/): the operator answers on its
health endpoint and serves every metric family it defines. Runs in the operator image, and in
the e2e tests against an operator process; exit 1 with the reason when a check fails.

    python -m transfer_operator.chartcheck --health URL --metrics URL [--timeout-seconds N]
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request

from transfer_operator.metrics import operator_metrics


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return int(error.code), ""
    except (urllib.error.URLError, OSError) as error:
        return 0, str(error)


def missing_families(exposition: str) -> list[str]:
    """Metric families defined in metrics.py without a `# TYPE` line in the exposition."""
    typed = {line.split()[2] for line in exposition.splitlines() if line.startswith("# TYPE ")}
    return [name for name, _, _, _ in operator_metrics() if name not in typed]


def check(health_url: str, metrics_url: str) -> list[str]:
    problems = []
    code, body = fetch(health_url)
    if code != 200:
        problems.append(f"{health_url}: HTTP {code or 'unreachable'} {body[:200]}".strip())
    code, body = fetch(metrics_url)
    if code != 200:
        problems.append(f"{metrics_url}: HTTP {code or 'unreachable'} {body[:200]}".strip())
    else:
        missing = missing_families(body)
        if missing:
            problems.append(f"{metrics_url}: no {', '.join(missing)}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check the operator's health and metrics endpoints.")
    parser.add_argument("--health", required=True)
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--timeout-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.timeout_seconds
    while True:
        problems = check(args.health, args.metrics)
        if not problems:
            print(f"ok: {args.health} and {args.metrics} ({len(operator_metrics())} metric families)")
            return 0
        if time.monotonic() > deadline:
            for problem in problems:
                print(problem, file=sys.stderr)
            return 1
        time.sleep(2)


if __name__ == "__main__":
    sys.exit(main())
