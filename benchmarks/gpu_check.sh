#!/usr/bin/env bash
# Issue 9's GPU figures in one go (about 5-6 minutes on one H100/H200), from the repository root:
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
#   cp -r $SP/hydra $SP/omegaconf $SP/antlr4 $SP/pycocoevalcap .gpu_deps/site/
#   rm -rf .gpu_deps/site/pycocoevalcap/{spice,meteor/data} .gpu_deps/site/pycocoevalcap/meteor/*.jar
#   jlink --add-modules java.base,java.xml,java.logging --strip-debug --no-man-pages --no-header-files \
#         --compress=2 --output .gpu_deps/jre                       # a 38 MB Java runtime
# and run (device tool): command "bash benchmarks/gpu_check.sh", carry [".gpu_deps"], timeout_s 560 (worst case: every step at its timeout).
set -u
OUT=${OUT:-/tmp/gpu_check_out}
mkdir -p "$OUT" /tmp/gpu_check_json
LOG=$OUT/gpu_check.log
PY=${PY:-python3}
export PYTHONPATH="$PWD:$PWD/.gpu_deps/site${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$PWD/.gpu_deps/jre/bin:$PATH"
export PYTHONUNBUFFERED=1 WANDB_MODE=offline TORCHINDUCTOR_COMPILE_THREADS=8
chmod +x .gpu_deps/jre/bin/* .gpu_deps/jre/lib/jspawnhelper 2>/dev/null
START=$SECONDS
# for a dry run on a CPU machine: TRAINER=cpu STEPS=3 EPOCH_ARGS="trainer=cpu data.num_train=100 ..."
TRAINER=${TRAINER:-gpu}
STEPS=${STEPS:-20}
EPOCH_ARGS=${EPOCH_ARGS:-}

nvidia-smi -L | tee -a "$LOG"
$PY -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)" | tee -a "$LOG"
java -version 2>&1 | head -1 | tee -a "$LOG"

bench() {  # bench NAME SECONDS ARGS...: one train_throughput run, its table to the log, figures to JSON
  local name=$1 limit=$2; shift 2
  echo "== $name ($((SECONDS - START))s in)" | tee -a "$LOG"
  timeout "$limit" $PY benchmarks/train_throughput.py --trainer "$TRAINER" --warmup 10 --steps "$STEPS" --rounds 10 \
      --json /tmp/gpu_check_json/"$name".json "$@" >>"$LOG" 2>&1 || echo "$name: failed or timed out (rc $?)" | tee -a "$LOG"
}

# precision at the release's batch, compile off (acceptance: 16-mixed >= 1.5x 32-true)
bench b64_32true 50 --batch-size 64 --precision 32-true
bench b64_16mixed 50 --batch-size 64 --precision 16-mixed
bench b64_bf16mixed 50 --batch-size 64 --precision bf16-mixed

# the Flickr8k-sized epoch with validation metrics, as train.py runs it
echo "== epoch ($((SECONDS - START))s in)" | tee -a "$LOG"
rm -rf /tmp/gpu_epoch
timeout 150 $PY train.py experiment=vlm_flickr8k data=shapes data.num_train=6000 data.num_val=1000 data.num_test=10 \
    trainer.max_epochs=1 test=false callbacks.progress_bar=null hydra.run.dir=/tmp/gpu_epoch $EPOCH_ARGS >>"$LOG" 2>&1 \
    || echo "epoch: failed or timed out (rc $?)" | tee -a "$LOG"
cp /tmp/gpu_epoch/time_accounting.json "$OUT/epoch_time_accounting.json" 2>/dev/null

# larger batch, then compile (Inductor compiles each loop's net up front: about a minute)
bench b256_32true 50 --batch-size 256 --precision 32-true
bench b256_16mixed 50 --batch-size 256 --precision 16-mixed
bench b64_16mixed_compile 130 --batch-size 64 --precision 16-mixed --compile

(cd /tmp/gpu_check_json && tar czf "$OUT/throughput_json.tgz" ./*.json 2>/dev/null)

echo "== summary ($((SECONDS - START))s in)"
$PY - <<'EOF'
import glob, json, os
rows = []
for path in sorted(glob.glob("/tmp/gpu_check_json/*.json")):
    r = json.load(open(path))
    a, b = list(r["rows"].values())
    rows.append((os.path.basename(path)[:-5], r))
    print(f"{os.path.basename(path)[:-5]:24s} {r['device'][:22]:22s} {r['precision']:10s} compile={'on ' if r['compile'] else 'off'} "
          f"batch={r['batch_size']:4d}  plain {a['samples_per_s']:8.0f}/s  supra {b['samples_per_s']:8.0f}/s "
          f"({b['step_ms']:.2f} ms/step, MFU {b['mfu']:.2%})  b/a {r['ratio_b_over_a']:.3f}  "
          f"epoch(30k pairs) {30000 / b['samples_per_s']:.1f}s  GFLOP/sample {r['flops_per_sample'] / 1e9:.3f} "
          f"peak {r['peak_flops'] / 1e12:.0f} TFLOP/s")
by = dict(rows)
if "b64_32true" in by and "b64_16mixed" in by:
    s32 = list(by["b64_32true"]["rows"].values())[1]["samples_per_s"]
    s16 = list(by["b64_16mixed"]["rows"].values())[1]["samples_per_s"]
    print(f"16-mixed / 32-true (Supra, batch 64): {s16 / s32:.2f}x")
try:
    t = json.load(open("/tmp/gpu_epoch/time_accounting.json"))
    s = t["seconds"]
    per_epoch = s["train_steps"] + s["train_batch_loading"] + s["val_steps"] + s["val_scoring"] + s["val_other"]
    fixed = t["wall_s"] - per_epoch
    print(f"epoch run: wall {t['wall_s']:.1f}s = " + ", ".join(f"{k} {v:.1f}s" for k, v in s.items()))
    print(f"epoch run: {t['counts']}; outside train/val steps {t['outside_train_val_steps']:.1%}")
    print(f"15-epoch recipe estimate on this GPU: {fixed:.0f}s fixed + 15 x {per_epoch:.1f}s = {fixed + 15 * per_epoch:.0f}s")
except (OSError, KeyError) as err:
    print("epoch run: no time accounting", err)
EOF
echo "total $((SECONDS - START))s"
