#!/usr/bin/env bash
# Instruction counts for one scenario: stable comparisons on a noisy machine.
#   tools/callgrind.sh S3a [records]
# Runs twice under callgrind, with and without the query (same data generation), and reports the
# difference per input record plus the query run's top functions. Raw profile: callgrind.<scenario>.out
set -euo pipefail
scenario=${1:?usage: tools/callgrind.sh SCENARIO [records]}
records=${2:-200000}
root=$(cd "$(dirname "$0")/.." && pwd)
py=$(python3 -c 'import sys; print(sys.executable)')
script=$(mktemp --suffix .py)
trap 'rm -f "$script" callgrind.base.out' EXIT
cat > "$script" <<PY
import sys
sys.path.insert(0, "$root")
import velostream as vs
from velostream.datagen import SCENARIOS, scenario_input
name, n, run = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
src, batches = scenario_input(name, n)
vs.query(SCENARIOS[name][1], {src: batches[:1]})  # imports and first-call costs in both runs
if run:
    vs.query(SCENARIOS[name][1], {src: batches})
PY
count() { callgrind_annotate "$1" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'; }
valgrind --tool=callgrind --callgrind-out-file=callgrind.base.out "$py" "$script" "$scenario" "$records" 0 >/dev/null 2>&1
valgrind --tool=callgrind --callgrind-out-file="callgrind.$scenario.out" "$py" "$script" "$scenario" "$records" 1 >/dev/null 2>&1
base=$(count callgrind.base.out)
full=$(count "callgrind.$scenario.out")
echo "$scenario: $records records, $((full - base)) instructions in the query, $(((full - base) / records)) per record"
callgrind_annotate "callgrind.$scenario.out" | sed -n '/file:function/,$p' | head -25 | cut -c1-160
