#!/usr/bin/env bash
# The speech masking system from nothing, in one run (docs/speech.md, thirteenth step): synthesise the training
# corpus (65 speakers) and one fresh test set, train the cloud model and the masker, move the gate threshold to the
# privacy operating point, fine-tune a 3-member cloud ensemble there, and evaluate once on the fresh speakers.
# About 2 hours on 2 cores. Needs `make setup` (and, as root, `make system` for the speech engines).
#
#   examples/speech_recipe.sh                 # everything under runs/speech/recipe, fresh set 6
#   OUT=runs/speech/r2 FRESH=5 examples/speech_recipe.sh
#
# Every stage is skipped when its output exists, so an interrupted run continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/speech/recipe}
FRESH=${FRESH:-6}
CORPUS=${CORPUS:-runs/speech/corpus180xh}
THREADS=${THREADS:-2}
BIN=${BIN:-.venv/bin}
export OMP_NUM_THREADS=$THREADS HF_HUB_OFFLINE=1
el() { "$BIN/edgelearn" "$@"; }
mkdir -p "$OUT"

el speech synth --per-speaker 180 --extra-train 41 --out "$CORPUS" --json "$OUT/synth.json"   # cached; ~6 min
el speech synth --fresh-test "$FRESH" --per-speaker 180 --out "$OUT/fresh$FRESH"             # ~15 s

# the clean cloud model alone (one token masker round, discarded), then the masker with the gates calibrated to the
# kept budget after each round (--calibrate-kept), ~5 + ~10 min
[ -f "$OUT/c60/speech_models.pt" ] ||
  el speech train --corpus "$CORPUS" --models "$OUT/c60" --epochs-cloud 16 --width 96 --keep-target 0.40 \
      --kl-cvar 0.25 --block 1 --rounds 1 --epochs-mask 1 --epochs-ft 1 --lr-ft 3e-3 --lr-dual 0.5 --ft-temp 4 \
      --device-gates --mask-utts 1600 --val-stratify --voice-aug --threads "$THREADS" --json "$OUT/c60.json"
[ -f "$OUT/v60/speech_models.pt" ] ||
  el speech train --corpus "$CORPUS" --models "$OUT/v60" --cloud-from "$OUT/c60" --keep-target 0.40 \
      --kl-cvar 0.25 --block 1 --rounds 2 --epochs-mask 6 --epochs-ft 8 --lr-ft 3e-3 --lr-dual 0.5 --ft-temp 4 \
      --device-gates --mask-utts 1600 --val-stratify --voice-aug --calibrate-kept --threads "$THREADS" \
      --json "$OUT/v60.json"
# the privacy operating point: the device keeps 31.5% of the training segments
[ -f "$OUT/v60k/speech_models.pt" ] ||
  el speech threshold --corpus "$CORPUS" --models "$OUT/v60" --kept 0.315 --out "$OUT/v60k" --json "$OUT/v60k.json"
[ -f "$OUT/v60e/speech_models.pt" ] ||
  el speech finetune --corpus "$CORPUS" --models "$OUT/v60k" --out "$OUT/v60e" --parts masked --voice-aug \
      --epochs 24 --threads "$THREADS" --json "$OUT/v60e.json"
el speech eval --corpus "$CORPUS" --test-corpus "$OUT/fresh$FRESH" --models "$OUT/v60e" \
    --warps 0.9,0.95,1,1.05,1.1 --n-asr 60 --n-asr-lm 60 --threads "$THREADS" \
    --json "$OUT/eval_fresh$FRESH.json" --plot "$OUT/gates_fresh$FRESH.png"
