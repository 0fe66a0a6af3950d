#!/usr/bin/env bash
# The real-recordings benchmark (docs/real-corpus.md): pinned Debian packages -> 10 s clips -> benchmark.
#
#   bash recipes/real/run.sh                   # stages 0 and 1
#   bash recipes/real/run.sh --stage 1         # rebuild the benchmark from the downloaded corpus
#   MIRROR=http://<debian mirror> bash recipes/real/run.sh   # no apt-get: fetch the .debs over HTTP
#   bash recipes/real/run.sh --stage 2 --stop-stage 3 --ship   # retrain, ship, run every model on the real test split
#
# Stages: 0 download (lassbench download packaged: ~1.0 GB of .debs, pinned by SHA-256; a changed package is
# refused; then every file is checked against recipes/real/corpus.sha256), 1 build (lassbench protocol, val + test +
# test-unseen, one item per source clip, seed 0; and $DATA-scenes: the same as soundscapes, --scenes), 2 train: the
# three tiny models fine-tuned from their synth-only checkpoints (recipes/real/init/, what recipes/synth stage 2
# made) on the synth benchmark + the real train split together (each example from one of them, equal odds; the
# real corpus is viewed at the models' 16 kHz by a val-only build in
# $TRAIN_VIEW, whose val split is the validation; the test split is never read), 3 run every model on the real
# benchmark's test and test-unseen splits, and oracle-irm and lassnet on the scenes (the synth figures:
# recipes/synth/run.sh --stage 3).
# --ship copies the trained weights (float16) to lassbench/checkpoints/ and their logs to recipes/real/logs/.
# Training crops each example around the target's sound (--crop active: real clips are mostly silence) and minimises
# the thresholded negative SNR (--loss snr), chosen over L1 on the real val split (docs/real-corpus.md).
# CORPUS, DATA, RUNS, RESULTS, STEPS, LR, SEED, LOSS, CROP, THREADS, SPLITS may be set in the environment; the wall
# time of each stage is printed. SPLITS (default "test test-unseen") picks the splits stage 3 scores.
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=0; stop_stage=1; ship=0; models="lassnet tag-queried class-conditioned"; trained_here=0
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --ship) ship=1; shift ;;
    --models) models=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
CORPUS=${CORPUS:-data/real}; DATA=${DATA:-data/real-benchmark}; MIRROR=${MIRROR:-}
TRAIN_VIEW=${TRAIN_VIEW:-$DATA-16k}; RUNS=${RUNS:-runs/real}; RESULTS=${RESULTS:-leaderboards/results}
STEPS=${STEPS:-3000}; LR=${LR:-1e-3}; SEED=${SEED:-0}; LOSS=${LOSS:-snr}; CROP=${CROP:-active}
THREADS=${THREADS:-1}  # torch threads per model (three train side by side; 2 for one model alone on 2 cores)
SPLITS=${SPLITS:-"test test-unseen"}
timed() { local t0=$SECONDS; "$@"; echo "[$(date -u +%H:%M:%S)] '$*' took $((SECONDS - t0)) s"; }

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  timed lassbench download packaged --out "$CORPUS" ${MIRROR:+--mirror "$MIRROR" --no-apt}
  # bit-exact: every file (the .debs aside) must hash as in the committed listing of the reference build
  (cd "$CORPUS" && sha256sum --quiet -c "$OLDPWD/recipes/real/corpus.sha256") && echo "corpus matches recipes/real/corpus.sha256"
fi
if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  timed lassbench build-dataset --sources "$CORPUS" --out "$DATA" --protocol lassbench --splits val,test,test-unseen \
    --seed 0
  # the same clips as soundscapes over real ambiences (docs/real-corpus.md, "Scenes"); scored by stage 3 too
  timed lassbench build-dataset --sources "$CORPUS" --out "$DATA-scenes" --protocol lassbench \
    --splits test,test-unseen --scenes --seed 0
fi
train_one() {  # model: fine-tune its synth-only checkpoint on synth + real
  local model=$1 resume=""
  [ -f "$RUNS/$model/last.pt" ] && resume="--resume"
  timed lassbench train "$model" --data "$SYNTH" --data "$TRAIN_VIEW" --init "recipes/real/init/$model-tiny-synth.pt" \
    --out "$RUNS/$model" --steps "$STEPS" --lr "$LR" --loss "$LOSS" --crop "$CROP" --batch-size 8 --threads "$THREADS" --seed "$SEED" --val-every 500 \
    --checkpoint-every 250 $resume
  if [ "$ship" = 1 ]; then
    python -c "import sys; from lassbench.models.registry import half_precision_copy as h; h(sys.argv[1], sys.argv[2])" \
      "$RUNS/$model/model.pt" "lassbench/checkpoints/$model-tiny.pt"
    mkdir -p recipes/real/logs && cp "$RUNS/$model/log.csv" "recipes/real/logs/$model.csv"
    echo "shipped $RUNS/$model/model.pt as lassbench/checkpoints/$model-tiny.pt"
  fi
}

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  t0=$SECONDS
  timed lassbench build-dataset --splits val,test  # the synth benchmark (cached after the first use)
  SYNTH=$(python -c "from lassbench.ready import default_benchmark; print(default_benchmark())")
  timed lassbench build-dataset --sources "$CORPUS" --out "$TRAIN_VIEW" --protocol lassbench --splits val \
    --sample-rate 16000 --seed 0
  mkdir -p "$RUNS"
  pids=(); failed=""
  for model in $models; do train_one "$model" > "$RUNS/$model.log" 2>&1 & pids+=($!); done
  i=0
  for model in $models; do wait "${pids[$i]}" || failed="$failed $RUNS/$model.log"; i=$((i + 1)); done
  if [ -n "$failed" ]; then echo "stage 2: training failed, see$failed" >&2; exit 1; fi
  trained_here=1
  echo "stage 2 (train: $models) took $((SECONDS - t0)) s"
fi

checkpoint_of() {  # what stage 2 just trained and did not ship; else (--ship, or stage 3 alone) the shipped one
  case " $models " in *" $1 "*) ;; *) return 0 ;; esac
  if [ "$trained_here" = 1 ] && [ "$ship" = 0 ] && [ -f "$RUNS/$1/model.pt" ]; then echo "--checkpoint $RUNS/$1/model.pt"; fi
}

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  for split in $SPLITS; do  # seen classes, then classes no training split has
    for model in mixture oracle-irm tag-queried; do
      timed lassbench run "$model" --data "$DATA" --split "$split" --out "$RESULTS" $(checkpoint_of "$model")
    done
    timed lassbench run oracle-irm --data "$DATA-scenes" --split "$split" --out "$RESULTS"
    timed lassbench run lassnet --data "$DATA-scenes" --split "$split" --out "$RESULTS" $(checkpoint_of lassnet)
    timed lassbench run lassnet --data "$DATA" --split "$split" --out "$RESULTS" --queries all $(checkpoint_of lassnet)
    # class-conditioned: one line and go on where it cannot run (a synth-only checkpoint; any unseen class)
    timed lassbench run class-conditioned --data "$DATA" --split "$split" --out "$RESULTS" \
      $(checkpoint_of class-conditioned) || echo "class-conditioned: not run on $split (see the line above)" >&2
  done
fi
