#!/usr/bin/env bash
# The speech masking system from nothing, in one run (docs/speech.md, fourteenth step): synthesise the training
# corpus (65 speakers) and one fresh test set, train the clean cloud model, train the masker against the random-mask
# model (a cloud that hears holes), move the gate threshold to the privacy operating point, fine-tune a 3-member
# cloud ensemble there (24 + 24 epochs), and evaluate once on the fresh speakers.
# About 2 hours on 2 cores. Needs `make setup` (and, as root, `make system` for the speech engines).
#
#   examples/speech_recipe.sh                 # everything under runs/speech/recipe, fresh set 8
#   OUT=runs/speech/r2 FRESH=6 examples/speech_recipe.sh
#   MASKER_SEED=3 DRAWS=1 examples/speech_recipe.sh       # one given masker draw, no redraw
#
# Every stage is skipped when its output exists, so an interrupted run continues where it stopped. The masker is the
# chanciest stage, so the recipe judges each draw (examples/masker_judge.py, ~1 min, selection audio only) before
# the long fine-tuning, and draws again (the next MASKER_SEED) while the judged accuracy is under JUDGE_MIN (0.85),
# at most DRAWS (3) times; the best draw goes on. In the fourteenth step three draws with the shift budget scored
# 86.1%, 87.5% and 91.3%; three with the multiplier 90.7%, 82.8% and 67.8%.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/speech/recipe}
FRESH=${FRESH:-8}
MASKER_SEED=${MASKER_SEED:-0}
DRAWS=${DRAWS:-3}
JUDGE_MIN=${JUDGE_MIN:-0.85}
CORPUS=${CORPUS:-runs/speech/corpus180xh}
THREADS=${THREADS:-2}
BIN=${BIN:-.venv/bin}
export OMP_NUM_THREADS=$THREADS HF_HUB_OFFLINE=1
el() { "$BIN/edgelearn" "$@"; }
mkdir -p "$OUT"

el speech synth --per-speaker 180 --extra-train 41 --out "$CORPUS" --json "$OUT/synth.json"   # cached; ~6 min
el speech synth --fresh-test "$FRESH" --per-speaker 180 --out "$OUT/fresh$FRESH"             # ~40 s

# the clean cloud model alone (one token masker round, discarded), ~5 min
[ -f "$OUT/c60/speech_models.pt" ] ||
  el speech train --corpus "$CORPUS" --models "$OUT/c60" --epochs-cloud 16 --width 96 --keep-target 0.40 \
      --kl-cvar 0.25 --block 1 --rounds 1 --epochs-mask 1 --epochs-ft 1 --lr-ft 3e-3 --lr-dual 0.5 --ft-temp 4 \
      --device-gates --mask-utts 1600 --val-stratify --voice-aug --threads "$THREADS" --json "$OUT/c60.json"
# the masker against the random-mask model (fine-tuned first, 8 epochs, in the same run), bounded log_alphas, the
# budget held by construction (no multiplier), gates calibrated to the kept budget (~8 min); then the privacy
# operating point (the device keeps 31.5% of the training segments) and the judge (~1 min, selection audio only).
# A draw whose judged accuracy is under JUDGE_MIN is set aside and the next seed drawn, at most DRAWS times; the
# best judged draw goes on to the long fine-tuning.
python_bin="$BIN/python"
best=""; best_acc=-1
for s in $(seq "$MASKER_SEED" $((MASKER_SEED + DRAWS - 1))); do
  [ -f "$OUT/m$s/speech_models.pt" ] ||
    el speech train --corpus "$CORPUS" --models "$OUT/m$s" --cloud-from "$OUT/c60" --keep-target 0.40 \
        --kl-cvar 0.25 --block 1 --rounds 1 --epochs-mask 6 --epochs-ft 8 --lr-ft 3e-3 --lr-dual 0.5 --ft-temp 4 \
        --device-gates --mask-utts 1600 --val-stratify --voice-aug --calibrate-kept --masker-teacher holes \
        --gate-param tanh --masker-budget shift --masker-seed "$s" --threads "$THREADS" --json "$OUT/m$s.json"
  [ -f "$OUT/mk$s/speech_models.pt" ] ||
    el speech threshold --corpus "$CORPUS" --models "$OUT/m$s" --kept 0.315 --out "$OUT/mk$s" --json "$OUT/mk$s.json"
  [ -f "$OUT/judge$s.json" ] ||
    "$python_bin" examples/masker_judge.py --corpus "$CORPUS" --cloud "$OUT/c60" --maskers "mk$s=$OUT/mk$s" \
        --threads "$THREADS" --json "$OUT/judge$s.json"
  acc=$("$python_bin" -c 'import json, sys; print(json.load(open(sys.argv[1]))["results"][0]["masked"])' \
        "$OUT/judge$s.json")
  echo "masker draw $s: judged accuracy $acc (JUDGE_MIN $JUDGE_MIN)"
  if "$python_bin" -c 'import sys; sys.exit(not float(sys.argv[1]) > float(sys.argv[2]))' "$acc" "$best_acc"; then
    best=$s; best_acc=$acc
  fi
  "$python_bin" -c 'import sys; sys.exit(not float(sys.argv[1]) >= float(sys.argv[2]))' "$acc" "$JUDGE_MIN" && break
done
echo "masker: draw $best (judged $best_acc)"
rm -f "$OUT/mk"; ln -s "mk$best" "$OUT/mk"
[ -f "$OUT/e/speech_models.pt" ] ||
  el speech finetune --corpus "$CORPUS" --models "$OUT/mk" --out "$OUT/e" --parts masked --voice-aug \
      --epochs 24 --threads "$THREADS" --json "$OUT/e.json"                                         # ~25 min
[ -f "$OUT/e2/speech_models.pt" ] ||
  el speech finetune --corpus "$CORPUS" --models "$OUT/e" --out "$OUT/e2" --parts masked --voice-aug \
      --epochs 24 --warm --threads "$THREADS" --json "$OUT/e2.json"                                 # ~25 min
el speech eval --corpus "$CORPUS" --test-corpus "$OUT/fresh$FRESH" --models "$OUT/e2" \
    --warps 0.9,0.95,1,1.05,1.1 --n-asr 60 --n-asr-lm 60 --threads "$THREADS" \
    --json "$OUT/eval_fresh$FRESH.json" --plot "$OUT/gates_fresh$FRESH.png"
