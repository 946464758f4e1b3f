#!/usr/bin/env bash
# Where 16-mixed pays on one GPU: Supra vs the plain loop at 32-true and 16-mixed for batches of 64 to
# 2,048 (compile off), then with channels_last encoder convolutions at 256 and 2,048. At the release's
# batch of 64 a step is ~10 ms of kernel launches on an H100/H200, so half-precision arithmetic saves
# nothing; the ratios show from which batch the arithmetic dominates.
# Same set-up as gpu_check.sh (.gpu_deps carried); about 6 minutes:
#   device tool: command "bash benchmarks/gpu_precision_by_batch.sh", carry [".gpu_deps"], timeout_s 560
source benchmarks/gpu_env.sh

for batch in 64 512 1024 2048; do
  for precision in 32-true 16-mixed; do
    bench "b${batch}_${precision/-/}" 75 --batch-size "$batch" --precision "$precision"
  done
done
for batch in 256 2048; do
  for precision in 32-true 16-mixed; do
    bench "cl_b${batch}_${precision/-/}" 75 --batch-size "$batch" --precision "$precision" model.net.channels_last=true
  done
done
(cd /tmp/gpu_check_json && tar czf "$OUT/throughput_json.tgz" ./*.json 2>/dev/null)
echo "== summary ($((SECONDS - START))s in)"
summary
echo "total $((SECONDS - START))s"
