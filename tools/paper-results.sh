#!/usr/bin/env bash
# The paper's results on the honest simulator (docs/SCHEDULING.md): FAST Fig. 5 (mean TTFT by prefill
# policy), TR Table 3 (rejections by admission mode) with its sensitivity rows, and FAST Fig. 1
# (effective request capacity, P/D against each colocated variant, at TBT SLOs of 100, 200, 300 ms).
# Prints markdown; writes the capacity chart into docs/img/capacity/.
#   tools/paper-results.sh [TRACE]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TRACE="${1:-../shared/traces/conversation_trace.jsonl}"
sim() { ./mooncakej simulate --trace "$TRACE" --json "$@" 2>/dev/null | tail -1; }
get() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d[sys.argv[2]])" "$1" "$2"; }

echo "### Prefill policies (16P+16D, 2x speed)"
echo "| policy | TTFT mean (s) | TTFT p90 (s) | prefix hit (tokens) | prefill busy (s) |"
echo "| --- | --- | --- | --- | --- |"
for p in random round-robin least-loaded longest-prefix cache-aware kvcache-centric; do
  r=$(sim --prefill 16 --decode 16 --speed 2 --policy "$p")
  echo "| $p | $(get "$r" ttft_mean_s) | $(get "$r" ttft_p90_s) | $(get "$r" prefix_hit_ratio_tokens) | $(get "$r" prefill_busy_seconds) |"
done

echo
./mooncakej simulate --trace "$TRACE" --prefill 16 --decode 16 --speed 2 --all-policies --plot docs/img/policies \
  --json >/dev/null 2>&1   # the bar chart of the table above

echo
echo "### Admission (8P+8D): rejected (after prefill), wasted prefill s, goodput"
echo "| speed | KV per decode | TTFT SLO | none | early-rejection | predictive | totals vs none (early / predictive) |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for row in "1 10 30s" "1.2 10 30s" "1 15 30s" "1 10 10s" "1 10 60s" "1.5 10 30s" "2 25 30s" "2 60 30s"; do
  read -r speed kv slo <<< "$row"
  cells=() totals=()
  for a in none early-rejection predictive-early-rejection; do
    r=$(sim --prefill 8 --decode 8 --speed "$speed" --decode-kv-gb "$kv" --ttft-slo "$slo" --admission "$a")
    cells+=("$(get "$r" rejected) ($(get "$r" rejected_after_prefill)), $(get "$r" wasted_prefill_seconds) s, $(get "$r" goodput)")
    totals+=("$(get "$r" rejected)")
  done
  ratio=$(python3 -c "import sys; n,e,p=map(float,sys.argv[1:]); print(f'{e/n:.2f} / {p/n:.2f}')" "${totals[@]}")
  echo "| ${speed}x | $kv GB | $slo | ${cells[0]} | ${cells[1]} | ${cells[2]} | $ratio |"
done

echo
echo "### Effective request capacity (8P+8D against 16 colocated instances, 90% meeting both SLOs)"
./mooncakej simulate --trace "$TRACE" --prefill 8 --decode 8 --capacity 0.25,0.5,0.75,1,1.25,1.5,1.75,2,2.5,3 \
  --attainment 0.9 --plot docs/img/capacity --json 2>/dev/null | tail -1 | python3 -c "
import json, sys
d = json.load(sys.stdin)
print('| system | TBT SLO 100 ms | 200 ms | 300 ms |')
print('| --- | --- | --- | --- |')
for k, v in d.items():
    print('| ' + k + ' | ' + ' | '.join(str(v[s]['capacity_speed']) + 'x' for s in ('100ms', '200ms', '300ms')) + ' |')
"
