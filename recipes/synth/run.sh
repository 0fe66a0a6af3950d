#!/usr/bin/env bash
# The synth benchmark, end to end, on CPU: build -> train -> run -> leaderboard.
#
#   bash recipes/synth/run.sh                     # all stages
#   bash recipes/synth/run.sh --stage 3           # from stage 3 on (e.g. after training)
#   bash recipes/synth/run.sh --stage 2 --stop-stage 2 --models lassnet
#   bash recipes/synth/run.sh --stage 2 --ship   # train, then replace the shipped checkpoints and their logs
#
# Stages: 0 data (synth corpus + benchmark, val/test), 1 (reserved: build is part of 0 for synth),
# 2 train (tiny models) into $RUNS, 3 run (every model + references, query study), 4 leaderboard.
# Stage 2 never touches lassbench/checkpoints/ unless --ship is given: without it, a stage 3 in the same invocation
# runs the checkpoints stage 2 just trained in $RUNS; a stage 3 on its own runs the shipped checkpoints.
# STEPS, BATCH, THREADS, SEED and PARALLEL (1: train the models side by side) may be set in the environment. The wall time of each stage is printed; the
# shipped checkpoints were made with the defaults below (see docs/performance.md for the measured times).
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=0; stop_stage=4; models="lassnet tag-queried class-conditioned"; ship=0; trained_here=0
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --models) models=$2; shift 2 ;;
    --ship) ship=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
STEPS=${STEPS:-6000}; BATCH=${BATCH:-8}; THREADS=${THREADS:-2}; SEED=${SEED:-0}; PARALLEL=${PARALLEL:-1}
RUNS=${RUNS:-runs/synth}; RESULTS=${RESULTS:-leaderboards/results}
mkdir -p "$RUNS"
timed() { local t0=$SECONDS; "$@"; echo "[$(date -u +%H:%M:%S)] '$*' took $((SECONDS - t0)) s"; }

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  timed lassbench build-dataset --splits val,test
fi
DATA=$(python -c "from lassbench.ready import default_benchmark; print(default_benchmark())")

ship_checkpoint() {  # float16 weights: half the bytes, and the figures below are measured with exactly these
  python -c "import sys; from lassbench.models.registry import half_precision_copy as h; h(sys.argv[1], sys.argv[2])" "$1" "$2"
}

train_one() {  # model threads
  local model=$1 resume=""
  [ -f "$RUNS/$model/last.pt" ] && resume="--resume"
  timed lassbench train "$model" --data "$DATA" --out "$RUNS/$model" --steps "$STEPS" --batch-size "$BATCH" \
    --threads "$2" --seed "$SEED" --val-every 500 --checkpoint-every 250 $resume
  if [ "$ship" = 1 ]; then
    ship_checkpoint "$RUNS/$model/model.pt" "lassbench/checkpoints/$model-tiny.pt"
    mkdir -p recipes/synth/logs && cp "$RUNS/$model/log.csv" "recipes/synth/logs/$model.csv"
    echo "shipped $RUNS/$model/model.pt as lassbench/checkpoints/$model-tiny.pt"
  else
    echo "trained $RUNS/$model/model.pt (lassbench/checkpoints/ untouched; --ship replaces the shipped one)"
  fi
}

checkpoint_of() {  # the checkpoint stage 3 runs: the one stage 2 just trained and did not ship, else the shipped one
  case " $models " in *" $1 "*) ;; *) return 0 ;; esac
  if [ "$trained_here" = 1 ] && [ "$ship" = 0 ] && [ -f "$RUNS/$1/model.pt" ]; then
    echo "--checkpoint $RUNS/$1/model.pt"
  fi
}

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  t0=$SECONDS
  if [ "$PARALLEL" = 1 ]; then  # one single-threaded process per model: better use of 2 cores than 2 threads each
    pids=()
    for model in $models; do train_one "$model" 1 > "$RUNS/$model.log" 2>&1 & pids+=($!); done
    for pid in "${pids[@]}"; do wait "$pid"; done
  else
    for model in $models; do train_one "$model" "$THREADS"; done
  fi
  trained_here=1
  echo "stage 2 (train: $models) took $((SECONDS - t0)) s"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  timed lassbench run lassnet --data "$DATA" --out "$RESULTS" --queries all --control absent,interferer \
    $(checkpoint_of lassnet)
  for model in tag-queried class-conditioned mixture oracle-irm oracle-ibm; do
    timed lassbench run "$model" --data "$DATA" --out "$RESULTS" $(checkpoint_of "$model")
  done
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  timed lassbench leaderboard --results "$RESULTS" --out leaderboards --markdown docs/leaderboard.md
  python recipes/synth/quality_bars.py --results "$RESULTS" > docs/quality-bars.md.tmp  # a failure keeps the old page
  mv docs/quality-bars.md.tmp docs/quality-bars.md
fi
