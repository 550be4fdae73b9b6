#!/usr/bin/env bash
# The README's measurement matrix: each configuration REPEAT times (default 3),
# each run a fresh process under `timeout`. JSON lines go to $OUT
# (default bench/cloudify/results.jsonl, not tracked), then a min-of-runs table.
# Usage: bash bench/cloudify/run_all.sh   (run setup.sh first)
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${HERE}/../.venv-cloudify/bin/python"
REPEAT="${REPEAT:-3}"
TIMEOUT="${TIMEOUT:-300}"
OUT="${OUT:-${HERE}/results.jsonl}"
: > "${OUT}"

bench() {  # args: run_cloudify.py arguments
    for _ in $(seq "${REPEAT}"); do
        if ! timeout "${TIMEOUT}" "${PY}" "${HERE}/run_cloudify.py" --json "$@" >> "${OUT}"; then
            echo "FAILED or timed out (${TIMEOUT}s): $*" >&2
        fi
    done
}

for n in 100 1000; do
    bench --shape flat --nodes "${n}" --mode plan
    bench --shape chain --nodes "${n}" --mode plan
done
bench --shape flat --nodes 1000 --mode install --concurrency 8
bench --shape chain --nodes 200 --mode install --concurrency 8
bench --shape flat --nodes 100 --mode sleep --sleep-ms 50 --concurrency 50

"${PY}" - "${OUT}" <<'PY'
import json, sys
from collections import defaultdict

runs = defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs[(r["mode"], r["shape"], r["nodes"], r["concurrency"])].append(r)

def best(rs, key):
    vals = [r[key] for r in rs if r[key] is not None]
    return f"{min(vals):.3f}" if vals else "-"

print("| mode | shape | nodes | pool | runs | plan_s | install_s | uninstall_s | per_op_us | cpu_s | peak_rss_mb |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for (mode, shape, nodes, pool), rs in runs.items():
    cells = [best(rs, k) for k in ("plan_s", "install_s", "uninstall_s", "per_op_us", "cpu_s")]
    rss = max(r["peak_rss_mb"] for r in rs)
    print(f"| {mode} | {shape} | {nodes} | {pool} | {len(rs)} | " + " | ".join(cells) + f" | {rss:.0f} |")
PY
