#!/usr/bin/env bash
# Issue 9's GPU figures in one go, from the repository root: 191 s measured on one H200 (README, Speed);
# the steps' timeouts add up to 530 s, so the call's timeout_s is 560, under the device's 600 s a call:
#   1. benchmarks/train_throughput.py: plain loop vs Supra, 32-true / 16-mixed / bf16-mixed, compile off/on,
#      batch 64 (the release's) and 256 (16-mixed + compile at 64 only: each compile costs a minute);
#   2. a Flickr8k-sized epoch end to end through train.py: shapes data at Flickr8k's size (6,000 train
#      images x 5 captions, 1,000 val images), experiment=vlm_flickr8k's trainer (gpu, 16-mixed), 1 epoch,
#      validation with caption metrics; its time_accounting.json splits the wall time.
# A summary table of everything comes last. One GPU only: 2-device scaling is not measured here.
#
# The device image has torch and lightning but not hydra/omegaconf/pycocoevalcap or Java (the caption
# metrics' tokenizer is Java). Build them once here, into an ignored folder the run carries:
#   echo /.gpu_deps/ >> .git/info/exclude
#   SP=$(python -c 'import site; print(site.getsitepackages()[0])'); mkdir -p .gpu_deps/site
#   cp -r $SP/hydra $SP/omegaconf $SP/antlr4 $SP/pycocoevalcap $SP/webdataset $SP/braceexpand $SP/simplejpeg .gpu_deps/site/
#   rm -rf .gpu_deps/site/pycocoevalcap/{spice,meteor/data} .gpu_deps/site/pycocoevalcap/meteor/*.jar   # no METEOR there
#   # simplejpeg is compiled: add its build for the device's Python (3.12 in the image of 2026-12-04)
#   pip download simplejpeg --no-deps --only-binary=:all: --python-version 3.12 -d /tmp/wh
#   python -m zipfile -e /tmp/wh/simplejpeg-*cp312*.whl /tmp/whx && cp /tmp/whx/simplejpeg/_jpeg*.so .gpu_deps/site/simplejpeg/
#   jlink --add-modules java.base,java.xml,java.logging --strip-debug --no-man-pages --no-header-files \
#         --compress=2 --output .gpu_deps/jre                       # a 38 MB Java runtime
# and run (device tool): command "bash benchmarks/gpu_check.sh", carry [".gpu_deps"], timeout_s 560 (worst case: every step at its timeout).
# Exit status 1 without a CUDA GPU (at once) or when a step failed (each said with its reason, at the end).
usage="usage: bash benchmarks/gpu_check.sh (no arguments; on the GPU machine, from the repository root)"
case "${1:-}" in
  "") ;;
  -h | --help) echo "$usage"; exit 0 ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
JSON_DIR=/tmp/gpu_check_json EPOCH_DIR=/tmp/gpu_check_epoch
source benchmarks/gpu_env.sh

# precision at the release's batch, compile off (acceptance: 16-mixed >= 1.5x 32-true)
bench b64_32true 50 --batch-size 64 --precision 32-true
bench b64_16mixed 50 --batch-size 64 --precision 16-mixed
bench b64_bf16mixed 50 --batch-size 64 --precision bf16-mixed

# the Flickr8k-sized epoch with validation metrics, as train.py runs it
echo "== epoch ($((SECONDS - START))s in)" | tee -a "$LOG"
rm -rf "$EPOCH_DIR"
timeout 150 $PY train.py experiment=vlm_flickr8k data=shapes data.num_train=6000 data.num_val=1000 data.num_test=10 \
    trainer.max_epochs=1 test=false callbacks.progress_bar=null hydra.run.dir="$EPOCH_DIR" $EPOCH_ARGS >>"$LOG" 2>&1 \
    || failed epoch $?
cp "$EPOCH_DIR/time_accounting.json" "$OUT/epoch_time_accounting.json" 2>/dev/null

# larger batch, then compile (Inductor compiles each loop's net up front: about a minute)
bench b256_32true 50 --batch-size 256 --precision 32-true
bench b256_16mixed 50 --batch-size 256 --precision 16-mixed
bench b64_16mixed_compile 130 --batch-size 64 --precision 16-mixed --compile

(cd "$JSON_DIR" && tar czf "$OUT/throughput_json.tgz" ./*.json 2>/dev/null)

echo "== summary ($((SECONDS - START))s in)"
summary "$EPOCH_DIR"
finish
