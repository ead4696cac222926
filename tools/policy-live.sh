#!/usr/bin/env bash
# The live proof of the prefill policies (issue 24, item 8; docs/SCHEDULING.md, "Policies live"):
# replays N consecutive requests of the conversation trace against ./mooncakej up --engine simulated
# --prefill 4 --decode 2, RUNS times per policy (a fresh cluster each run), and the same window
# through ./mooncakej simulate with the same geometry and the live request-path hop; prints one
# markdown row per policy: live mean TTFT (mean and spread over the runs), simulated mean TTFT, the
# gap, prefill utilisation and prefix hits. Raw JSON per run goes to .cache/policy-live/.
#   [SCALE=1] [SPEED=6] [OFFSET=0] [RUNS=3] [POLICIES="random least-loaded cache-aware kvcache-centric"]
#   tools/policy-live.sh [TRACE] [N]      (defaults: ../shared/traces/conversation_trace.jsonl, 1000)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TRACE="${1:-../shared/traces/conversation_trace.jsonl}"
N="${2:-1000}"
SCALE="${SCALE:-1}" SPEED="${SPEED:-6}" OFFSET="${OFFSET:-0}" RUNS="${RUNS:-3}" PORT="${PORT:-18700}"
POLICIES="${POLICIES:-random least-loaded cache-aware kvcache-centric}"
[ -r "$TRACE" ] || { echo "policy-live: no trace at $TRACE (expected ../shared/traces/conversation_trace.jsonl)" >&2; exit 2; }
OUT="$ROOT/.cache/policy-live"; mkdir -p "$OUT"
# a hash id of the trace is 512 x 0.0625 = 32 tokens: one KV block of the live cluster
COMMON=(--trace "$TRACE" --requests "$N" --offset "$OFFSET" --speed "$SPEED" --length-scale 0.0625 --json)
# the live cluster's geometry as simulate sees it: 32-token blocks, 256-token prefill chunks, a prefix
# cache of one modelled context (4096 blocks) per prefill worker, 4096 x 32 tokens of decode KV per
# decode worker (42.9 GB of LLaMA3-70B KV), early rejection off (admission none)
# (simulate scales the trace's 512-token hash ids by --length-scale itself: 32-token blocks)
SIM=(--prefill 4 --decode 2 --chunk-tokens 256 --cache-blocks 4096 --decode-kv-gb 42.95)
MODEL="$ROOT/.cache/models/mooncakej-tiny.gguf"
[ -f "$MODEL" ] || ./mooncakej model generate --preset tiny --out "$MODEL" >/dev/null
export MOONCAKEJ_CLUSTER_SECRET="policy-live-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
stop() { pkill -f "mooncakej-(prefill|decode)-worker.jar|mooncakej-conductor-exec.jar" 2>/dev/null || true; }
trap stop EXIT
live_run() { # policy run -> the replay's JSON in $OUT/live-<policy>-<run>.json
  local policy="$1" run="$2" up_pid
  ./mooncakej up --engine simulated --sim-time-scale "$SCALE" --prefill 4 --decode 2 --policy "$policy" \
    --kv-transports shm,tcp --port "$PORT" --model "$MODEL" > "$OUT/up-$policy-$run.log" 2>&1 &
  up_pid=$!
  for _ in $(seq 1 240); do grep -q "Mooncake-J is up" "$OUT/up-$policy-$run.log" && break; sleep 1; done
  grep -q "Mooncake-J is up" "$OUT/up-$policy-$run.log" || { echo "policy-live: the cluster did not come up (see $OUT/up-$policy-$run.log)" >&2; exit 1; }
  echo "policy-live: $policy run $run: replaying $N requests from $OFFSET at speed $SPEED" >&2
  ./mooncakej replay --target "http://127.0.0.1:$PORT" --time-scale "$SCALE" "${COMMON[@]}" 2>/dev/null | tail -1 \
    > "$OUT/live-$policy-$run.json"
  kill "$up_pid" 2>/dev/null; wait "$up_pid" 2>/dev/null || true
  stop; sleep 2
}
for policy in $POLICIES; do
  for run in $(seq 1 "$RUNS"); do live_run "$policy" "$run"; done
  # the live hop (wall seconds) in model seconds: divided by the time scale
  hop=$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(round(d.get('estimators',{}).get('ttft_overhead_seconds',0)*1000/float(sys.argv[2]),1))" "$OUT/live-$policy-1.json" "$SCALE" 2>/dev/null || echo 0)
  ./mooncakej simulate --policy "$policy" --admission none --hop "${hop}ms" "${SIM[@]}" "${COMMON[@]}" 2>/dev/null \
    | tail -1 > "$OUT/sim-$policy.json"
done
python3 - "$OUT" "$RUNS" $POLICIES <<'PY'
import json, statistics, sys
out, runs, policies = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
print("| policy | live TTFT mean (s), runs | live mean | spread (max-min) | simulated | live/sim | live prefill util | live hit | sim hit | live rejected |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for p in policies:
    live = [json.load(open(f"{out}/live-{p}-{r}.json")) for r in range(1, runs + 1)]
    sim = json.load(open(f"{out}/sim-{p}.json"))
    t = [l["ttft_mean_s"] for l in live]
    m = statistics.mean(t)
    util = statistics.mean(l.get("prefill_utilisation") or 0 for l in live)
    hit = statistics.mean(l["prefix_hit_ratio_tokens"] for l in live)
    rej = sum(l["rejected"] for l in live)
    print(f"| {p} | {', '.join(f'{x:.3f}' for x in t)} | {m:.3f} | {max(t) - min(t):.3f} | {sim['ttft_mean_s']:.3f} "
          f"| {m / sim['ttft_mean_s']:.2f} | {util:.2f} | {hit:.3f} | {sim['prefix_hit_ratio_tokens']:.3f} | {rej} |")
PY
