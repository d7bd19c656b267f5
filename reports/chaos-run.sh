#!/usr/bin/env bash
# One cell of the nightly chaos matrix, the same in CI and on a laptop:
#   reports/chaos-run.sh WORKLOAD SEED [DURATION] [STORE]
# Runs the workload with that seed, writes the run's report.html and results.xml (even when the
# run contradicts its expectation), refreshes STORE/index.html, and exits with the workload's
# code: 0 the result matches the workload's expectation, 1 it does not, 2 the run failed.
# KCHAOS is the binary to use (default: target/release/kchaos).
set -uo pipefail

workload=${1:?usage: chaos-run.sh WORKLOAD SEED [DURATION] [STORE]}
seed=${2:?usage: chaos-run.sh WORKLOAD SEED [DURATION] [STORE]}
duration=${3:-2m}
store=${4:-store}
kchaos=${KCHAOS:-target/release/kchaos}

if [[ ! -x $kchaos ]]; then
  echo "chaos-run: $kchaos is not built (cargo build --release, or set KCHAOS)" >&2
  exit 2
fi

echo "chaos-run: $workload seed $seed for $duration into $store"
"$kchaos" workload "$workload" --seed "$seed" --duration "$duration" --store "$store" --no-progress
status=$?

# The newest run of this workload (store/latest may belong to a run started in parallel).
run_dir=$(ls -1d "$store/$workload"/*/ 2>/dev/null | sort | tail -n 1)
if [[ -n $run_dir ]]; then
  "$kchaos" report "$run_dir" || echo "chaos-run: no report for $run_dir" >&2
  "$kchaos" report --index "$store" >/dev/null || echo "chaos-run: no index" >&2
fi

case $status in
  0) echo "chaos-run: $workload seed $seed: as expected" ;;
  1) echo "chaos-run: $workload seed $seed: CONTRADICTS its expectation (see ${run_dir}report.html)" ;;
  *) echo "chaos-run: $workload seed $seed: the run could not be carried out (exit $status)" ;;
esac
exit "$status"
