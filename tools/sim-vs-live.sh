#!/usr/bin/env bash
# The same configuration through ./mooncakej simulate and through ./mooncakej replay against a live
# simulated-engine cluster (docs/SCHEDULING.md, "Simulator against the live system"). For each
# policy (with early rejection) and each admission mode (with kvcache-centric), starts
# ./mooncakej up --engine simulated --prefill 2 --decode 2, replays the trace's first N requests, runs
# simulate with the same options, and prints one markdown row per configuration.
#   [SCALE=0.2] [ONLY=policy:admission] tools/sim-vs-live.sh [TRACE] [N]   (defaults: the conversation trace, 200)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TRACE="${1:-../shared/traces/conversation_trace.jsonl}"
N="${2:-200}"
SCALE="${SCALE:-0.2}" PORT=18600   # SCALE: the cluster's --sim-time-scale (1: real model time)
COMMON=(--trace "$TRACE" --requests "$N" --speed 0.3 --length-scale 0.0625 --max-input 1900 --json)
# the live cluster's geometry as simulate sees it: 32-token blocks (a hash id at this length scale),
# a prefill cache of 1024 such blocks, 8192 tokens of decode KV (2.68 GB of LLaMA3-70B KV)
SIM=(--prefill 2 --decode 2 --cache-blocks 1024 --decode-kv-gb 2.68)
MODEL="$ROOT/.cache/models/mooncakej-tiny.gguf"
[ -f "$MODEL" ] || ./mooncakej model generate --preset tiny --out "$MODEL" >/dev/null
export MOONCAKEJ_CLUSTER_SECRET="sim-vs-live-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
field() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d.get(sys.argv[2]))" "$1" "$2"; }
echo "| policy | admission | sim TTFT mean (s) | live TTFT mean (s) | gap | sim rejected | live rejected | sim hit | live hit | live TTFT error p50 |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
run() {
  local policy="$1" admission="$2" up_pid live sim
  ./mooncakej up --engine simulated --sim-time-scale "$SCALE" --prefill 2 --decode 2 --policy "$policy" \
    --admission "$admission" --port "$PORT" --model "$MODEL" > /tmp/sim-vs-live-up.log 2>&1 &
  up_pid=$!
  for _ in $(seq 1 120); do curl -fs "http://127.0.0.1:$PORT/v1/models" >/dev/null 2>&1 && break; sleep 1; done
  live=$(./mooncakej replay --target "http://127.0.0.1:$PORT" --time-scale "$SCALE" "${COMMON[@]}" 2>/dev/null | tail -1)
  kill "$up_pid" 2>/dev/null; wait "$up_pid" 2>/dev/null || true
  pkill -f "mooncakej-(prefill|decode)-worker.jar|mooncakej-conductor-exec.jar" 2>/dev/null || true
  sleep 2
  sim=$(./mooncakej simulate --policy "$policy" --admission "$admission" "${SIM[@]}" "${COMMON[@]}" 2>/dev/null | tail -1)
  python3 - "$policy" "$admission" "$sim" "$live" <<'PY'
import json, sys
p, a, s, l = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
gap = (l["ttft_mean_s"] - s["ttft_mean_s"]) / s["ttft_mean_s"] if s["ttft_mean_s"] else float("nan")
err = l.get("estimators", {}).get("ttft_error", {}).get("p50")
print(f"| {p} | {a} | {s['ttft_mean_s']:.3f} | {l['ttft_mean_s']:.3f} | {gap:+.0%} | {s['rejected']} | {l['rejected']} "
      f"| {s['prefix_hit_ratio_tokens']:.3f} | {l['prefix_hit_ratio_tokens']:.3f} | {err if err is None else round(err, 2)} |")
PY
}
if [ -n "${ONLY:-}" ]; then run "${ONLY%%:*}" "${ONLY#*:}"; exit 0; fi   # ONLY=policy:admission, one row
for policy in random round-robin least-loaded longest-prefix cache-aware kvcache-centric; do run "$policy" early-rejection; done
for admission in none predictive-early-rejection; do run kvcache-centric "$admission"; done
