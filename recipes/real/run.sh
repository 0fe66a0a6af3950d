#!/usr/bin/env bash
# The real-recordings benchmark (docs/real-corpus.md): pinned Debian packages -> 10 s clips -> benchmark.
#
#   bash recipes/real/run.sh                   # stages 0 and 1
#   bash recipes/real/run.sh --stage 1         # rebuild the benchmark from the downloaded corpus
#   MIRROR=http://<debian mirror> bash recipes/real/run.sh   # no apt-get: fetch the .debs over HTTP
#
# Stages: 0 download (lassbench download packaged: ~420 MB of .debs, pinned by SHA-256; a changed package is
# refused; then every file is checked against recipes/real/corpus.sha256), 1 build (lassbench protocol, val + test, one item per source clip, seed 0).
# Stage 2 (train on synth + the real train split) is documented in docs/real-corpus.md and not run here yet.
# CORPUS and DATA may be set in the environment; the wall time of each stage is printed.
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=0; stop_stage=1
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
CORPUS=${CORPUS:-data/real}; DATA=${DATA:-data/real-benchmark}; MIRROR=${MIRROR:-}
timed() { local t0=$SECONDS; "$@"; echo "[$(date -u +%H:%M:%S)] '$*' took $((SECONDS - t0)) s"; }

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  timed lassbench download packaged --out "$CORPUS" ${MIRROR:+--mirror "$MIRROR" --no-apt}
  # bit-exact: every file (the .debs aside) must hash as in the committed listing of the reference build
  (cd "$CORPUS" && sha256sum --quiet -c "$OLDPWD/recipes/real/corpus.sha256") && echo "corpus matches recipes/real/corpus.sha256"
fi
if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  timed lassbench build-dataset --sources "$CORPUS" --out "$DATA" --protocol lassbench --splits val,test --seed 0
fi
if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  echo "stage 2 (training on synth + the real train split) is not part of this recipe yet: see docs/real-corpus.md" >&2
  exit 2
fi
