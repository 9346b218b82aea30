#!/bin/bash
# kill -9 a federated run after round KILL_AT, --resume it, and compare its final model with an uninterrupted run.
#   benchmarks/fl_kill_resume.sh CONFIG.toml [WORKDIR] [KILL_AT]      (a config with one variant; checkpoint_every 1)
# Prints both models' SHA-1 and IDENTICAL or DIFFERENT (exit 1).
set -eu
cfg=$(realpath "$1"); work=${2:-runs/kill_resume}; kill_at=${3:-5}
mkdir -p "$work" && cd "$work"
rm -rf full killed full.jsonl killed.jsonl
edgelearn fl run "$cfg" --json full.jsonl --out-dir full --quiet
edgelearn fl run "$cfg" --json killed.jsonl --out-dir killed --quiet &
pid=$!
python - "$kill_at" <<'PY'
import pathlib, pickle, sys, time
kill_at = int(sys.argv[1])
while True:
    ck = sorted(pathlib.Path("killed").glob("*.ckpt"))
    try:
        if ck and pickle.loads(ck[0].read_bytes())["round"] >= kill_at:
            break
    except Exception:  # being replaced right now
        pass
    time.sleep(0.05)
PY
kill -9 $pid || true
wait $pid || true
python -c "import glob, pickle; print('killed after round', pickle.load(open(glob.glob('killed/*.ckpt')[0], 'rb'))['round'])"
edgelearn fl run "$cfg" --json killed.jsonl --out-dir killed --quiet --resume
python - <<'PY'
import json, sys
a = json.loads(open("full.jsonl").read().splitlines()[-1])["variants"]
b = json.loads(open("killed.jsonl").read().splitlines()[-1])["variants"]
(name, x), = a.items()
y = b[name]
print("uninterrupted ", x["model_sha1"], x["accuracy_final"])
print("killed+resumed", y["model_sha1"], y["accuracy_final"])
same = x["model_sha1"] == y["model_sha1"]
print("IDENTICAL" if same else "DIFFERENT")
sys.exit(0 if same else 1)
PY
