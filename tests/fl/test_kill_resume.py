"""kill -9 in the middle of `fl run`, then `--resume`: the same final model as an uninterrupted run."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest

from fl_tiny import tiny_toml

FWD = 'name = "fwdllm"\nlr = 1.0\nK = 8\nbatch = 16\ncandidate_ratio = 2.0\nmin_K = 4\nmax_K = 16'


def _cmd(cfg, out, *extra):
    return [sys.executable, "-m", "edgelearn.fl.cli", "fl", "run", str(cfg), "--json", str(out), "--quiet", *extra]


def _sha(out):
    return json.loads(out.read_text().splitlines()[-1])["variants"]["fwdllm"]["model_sha1"]


@pytest.mark.slow
def test_kill_9_then_resume_equals_uninterrupted(tmp_path, corpus):
    cfg = tmp_path / "k.toml"
    cfg.write_text(tiny_toml(corpus, FWD, rounds=10).replace("eval_every = 2", "eval_every = 2\ncheckpoint_every = 1"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full = tmp_path / "full.jsonl"
    subprocess.run(_cmd(cfg, full, "--out-dir", str(tmp_path / "ck_full")), check=True, env=env, timeout=600)
    out, ck = tmp_path / "killed.jsonl", tmp_path / "ck"
    p = subprocess.Popen(_cmd(cfg, out, "--out-dir", str(ck)), env=env)
    t0 = time.time()
    while time.time() - t0 < 300:
        f = ck / "fwdllm.ckpt"
        if f.is_file():
            try:
                if pickle.loads(f.read_bytes())["round"] >= 4:
                    break
            except Exception:  # being replaced right now
                pass
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert pickle.loads((ck / "fwdllm.ckpt").read_bytes())["round"] < 10, "run finished before the kill"
    subprocess.run(_cmd(cfg, out, "--out-dir", str(ck), "--resume"), check=True, env=env, timeout=600)
    assert _sha(out) == _sha(full)
    rounds = [json.loads(x)["round"] for x in out.read_text().splitlines()[:-1]]
    assert rounds == list(range(11))
