#!/usr/bin/env bash
# Sourced by the GPU benchmark scripts (gpu_check.sh, gpu_precision_by_batch.sh): the environment the
# device image lacks (.gpu_deps, see gpu_check.sh's header), `bench` (one train_throughput run),
# `summary` (one table over every bench's JSON in $JSON_DIR) and `finish` (the exit status: 1 if a step
# failed). Each script sets its own JSON_DIR before sourcing this, so that a warm machine's leftovers of
# the other script never enter its summary. Without a CUDA GPU (and TRAINER=gpu) it stops at once, status 1.
set -u
OUT=${OUT:-/tmp/gpu_check_out}
JSON_DIR=${JSON_DIR:-/tmp/gpu_check_json}
mkdir -p "$OUT" "$JSON_DIR"
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
FAILED=()  # the steps that failed or timed out, named by finish

# every step would fail after a minute of start-up each (the reason only in the log), so stop here
if [ "$TRAINER" = gpu ] && ! $PY -c "import sys, torch; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
  echo "error: no CUDA GPU here (torch sees none): run this on the GPU machine (see gpu_check.sh's header), or" \
       "dry-run it on a CPU with TRAINER=cpu" >&2
  exit 1
fi
if [ "$TRAINER" = gpu ]; then nvidia-smi -L | tee -a "$LOG"; fi
$PY -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)" | tee -a "$LOG"
java -version 2>&1 | head -1 | tee -a "$LOG"

bench() {  # bench NAME SECONDS ARGS...: one train_throughput run, its table to the log, figures to JSON
  local name=$1 limit=$2; shift 2
  echo "== $name ($((SECONDS - START))s in)" | tee -a "$LOG"
  rm -f "$JSON_DIR/$name.json"  # a failed run leaves no figures of an earlier one behind
  timeout "$limit" $PY benchmarks/train_throughput.py --trainer "$TRAINER" --warmup 10 --steps "$STEPS" --rounds 10 \
      --json "$JSON_DIR/$name.json" "$@" >>"$LOG" 2>&1 || failed "$name" $?
}

failed() {  # failed NAME RC: say it with the step's last line of output (124: timed out), remember it for finish
  local why
  why=$(tail -n 1 "$LOG")
  [ "$2" = 124 ] && why="timed out"
  echo "$1: failed (rc $2): $why" | tee -a "$LOG"
  FAILED+=("$1")
}

finish() {  # finish: the total time, and exit status 1 naming the steps that failed (their reasons in $LOG)
  echo "total $((SECONDS - START))s"
  if [ ${#FAILED[@]} -gt 0 ]; then
    local steps=steps
    [ ${#FAILED[@]} -eq 1 ] && steps=step  # "1 step failed", "2 steps failed"
    echo "error: ${#FAILED[@]} $steps failed: ${FAILED[*]} (see $LOG)" >&2
    exit 1
  fi
}

summary() {  # summary [EPOCH_DIR]: one line per bench JSON (its figures and machine load), the 16-mixed / 32-true
            # ratios, the epoch run's accounting
JSON_DIR="$JSON_DIR" EPOCH_DIR="${1:-}" $PY - <<'EOF'
import glob, json, os
def machine_load(r):  # the loads the run printed at its start and end, which the summary left out
    m = r.get("machine_load")  # none in the figures of a train_throughput.py from before it was written
    if not m:
        return "load not recorded"
    busy = " (busy: not comparable with an idle machine's)" if m["busy"] else ""
    return f"load {m['at_start']:.1f} -> {m['at_end']:.1f} for {m['cores']} cores{busy}"
rows = []
for path in sorted(glob.glob(os.path.join(os.environ["JSON_DIR"], "*.json"))):
    r = json.load(open(path))
    a, b = list(r["rows"].values())
    rows.append((os.path.basename(path)[:-5], r))
    print(f"{os.path.basename(path)[:-5]:24s} {r['device'][:22]:22s} {r['precision']:10s} compile={'on ' if r['compile'] else 'off'} "
          f"batch={r['batch_size']:4d}  plain {a['samples_per_s']:8.0f}/s  supra {b['samples_per_s']:8.0f}/s "
          f"({b['step_ms']:.2f} ms/step, MFU {b['mfu']:.2%})  b/a {r['ratio_b_over_a']:.3f}  "
          f"epoch(30k pairs) {30000 / b['samples_per_s']:.1f}s  GFLOP/sample {r['flops_per_sample'] / 1e9:.3f} "
          f"peak {r['peak_flops'] / 1e12:.0f} TFLOP/s  {machine_load(r)}")
supra = {(r["batch_size"], r["precision"], r["compile"], " ".join(r.get("overrides", []))):
         list(r["rows"].values())[1]["samples_per_s"] for _, r in rows}
for (batch, precision, compiled, extra), s16 in sorted(supra.items()):
    s32 = supra.get((batch, "32-true", compiled, extra))
    if precision == "16-mixed" and s32:
        print(f"16-mixed / 32-true (Supra, batch {batch}, compile {'on' if compiled else 'off'} {extra}): {s16 / s32:.2f}x")
epoch_dir = os.environ["EPOCH_DIR"]  # only gpu_check.sh runs an epoch and names its folder
if epoch_dir:
    try:
        t = json.load(open(os.path.join(epoch_dir, "time_accounting.json")))
        s = t["seconds"]
        per_epoch = s["train_steps"] + s["train_batch_loading"] + s["val_steps"] + s["val_scoring"] + s["val_other"]
        fixed = t["wall_s"] - per_epoch
        print(f"epoch run: wall {t['wall_s']:.1f}s = " + ", ".join(f"{k} {v:.1f}s" for k, v in s.items()))
        print(f"epoch run: {t['counts']}; outside train/val steps {t['outside_train_val_steps']:.1%}")
        print(f"15-epoch recipe estimate on this GPU: {fixed:.0f}s fixed + 15 x {per_epoch:.1f}s = {fixed + 15 * per_epoch:.0f}s")
    except (OSError, KeyError, ValueError) as err:
        print("epoch run: no time accounting", err)
EOF
}
