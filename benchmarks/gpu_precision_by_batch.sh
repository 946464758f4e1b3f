#!/usr/bin/env bash
# Where 16-mixed pays on one GPU: Supra vs the plain loop at 32-true and 16-mixed for batches of 64 to
# 2,048 (compile off), then with channels_last encoder convolutions at 256 and 2,048. At the release's
# batch of 64 a step is ~10 ms of kernel launches on an H100/H200, so half-precision arithmetic saves
# nothing; the ratios show from which batch the arithmetic dominates.
# Same set-up as gpu_check.sh (.gpu_deps carried). Twelve runs of up to 75 s each (900 s at worst) do not fit
# the device's 600 s a call, so the script runs in halves of six (450 s at worst), one call each on the same
# warm machine; the second half's summary also lists the first's figures (the JSON stays on the machine):
#   device tool: command "bash benchmarks/gpu_precision_by_batch.sh 1", carry [".gpu_deps"], timeout_s 560
#   device tool: command "bash benchmarks/gpu_precision_by_batch.sh 2", carry [".gpu_deps"], timeout_s 560
# (half 1: batches 64, 512, 1,024; half 2: batch 2,048 and the channels_last runs; "all": the twelve in turn,
# where calls may be longer). The figures measured in the README were taken as two calls of 237 s and 118 s.
# Exit status 1 without a CUDA GPU (at once) or when a run failed (each said with its reason, at the end).
part=${1:-}
usage="usage: bash benchmarks/gpu_precision_by_batch.sh 1|2|all (half 1, half 2, or both in one call)"
case "$part" in
  1 | 2 | all) ;;
  -h | --help) echo "$usage"; exit 0 ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
JSON_DIR=/tmp/gpu_precision_json  # its own: gpu_check.sh's runs on a warm machine stay out of this summary
source benchmarks/gpu_env.sh

by_batch() {  # by_batch BATCH...: 32-true and 16-mixed at each batch (names pb_: gpu_check.sh has b64_...)
  for batch in "$@"; do
    for precision in 32-true 16-mixed; do
      bench "pb_b${batch}_${precision/-/}" 75 --batch-size "$batch" --precision "$precision"
    done
  done
}
channels_last() {
  for batch in 256 2048; do
    for precision in 32-true 16-mixed; do
      bench "pb_cl_b${batch}_${precision/-/}" 75 --batch-size "$batch" --precision "$precision" model.net.channels_last=true
    done
  done
}
case "$part" in
  1) by_batch 64 512 1024 ;;
  2) by_batch 2048; channels_last ;;
  all) by_batch 64 512 1024 2048; channels_last ;;
esac
(cd "$JSON_DIR" && tar czf "$OUT/throughput_json.tgz" ./*.json 2>/dev/null)
echo "== summary ($((SECONDS - START))s in)"
summary
finish
