"""`edgelearn speech synth|train|eval`: the SILENCE speech privacy pipeline. Hook: register(sub, fmt)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

EXAMPLES_SYNTH = """examples:
  edgelearn speech synth                              24 speakers x 30 utterances into runs/speech/corpus
  edgelearn speech synth --per-speaker 120 --speakers 40 --out runs/speech/big
  edgelearn speech synth --json runs/speech/synth.json
  edgelearn speech synth --per-speaker 180 --extra-train 37 --out runs/speech/corpus180xg   (more training voices)
  edgelearn speech synth --fresh-test --per-speaker 180 --out runs/speech/fresh180   a test-only corpus of new speakers
  edgelearn speech synth --fresh-test 2 --per-speaker 180 --out runs/speech/fresh2_180   a second one, other speakers
  edgelearn speech synth --fresh-test 3 --per-speaker 180 --out runs/speech/fresh3_180   a third (4-6: more)
needs: apt-get install -y espeak-ng flite sox; pip install soundfile
"""
EXAMPLES_TRAIN = """examples:
  edgelearn speech train                              cloud SLU, mask generator (gamma 0.15), fine-tuning, int8 export
  edgelearn speech train --gamma 0.3 --epochs-mask 10 --models runs/speech/g03
  edgelearn speech train --keep-target 0.35 --block 3 --rounds 2 --cloud-from runs/speech/m90 --models runs/speech/k35
  edgelearn speech train --keep-target 0.45 --rounds 2 --epochs-ft 32 --lr-ft 3e-3 --ft-temp 4 --device-gates \\
      --cloud-from runs/speech/m90 --models runs/speech/k45      fine-tuning on sampled masks (docs/speech.md)
  edgelearn speech train --val-stratify --voice-aug --kl-cvar 0.25 --keep-target 0.40 --rounds 2 --epochs-ft 20 \\
      --lr-ft 3e-3 --ft-temp 4 --device-gates --models runs/speech/v40c   every voice family in validation,
                                                                          voice augmentation, worst-case KL
  edgelearn speech train --privacy 1.0 --cloud-from runs/speech/v40c ...   masker also hides words from an ASR proxy
"""
EXAMPLES_THRESHOLD = """examples:
  edgelearn speech threshold --corpus runs/speech/corpus180 --models runs/speech/s3/k38 --delta 3 \\
      --out runs/speech/s3/k38t3            keep fewer segments with the same masker and cloud model
  edgelearn speech eval --split validation --models runs/speech/s3/k38t3   then check it on validation
  edgelearn speech threshold --corpus runs/speech/corpus180xh --models runs/speech/s13/v60 --kept 0.315 \\
      --out runs/speech/s13/v60k315          the operating point where the device keeps 31.5% of the segments
"""
EXAMPLES_FINETUNE = """examples:
  edgelearn speech finetune --corpus runs/speech/corpus180 --models runs/speech/s3/k38t5 \\
      --out runs/speech/s4/k38t5e --parts masked      3 cloud copies fine-tuned at this operating point, ensembled
  edgelearn speech finetune --corpus runs/speech/corpus180 --models runs/speech/s4/k38t5e \\
      --out runs/speech/s4/k38t5er --parts random     then the random-mask baseline's ensemble
  edgelearn speech finetune --corpus runs/speech/corpus180 --models runs/speech/s4/k38t5e --warm --epochs 20 \\
      --out runs/speech/s4/k38t5ew --parts masked     continue those copies 20 more epochs
"""
EXAMPLES_SWEEP = """examples:
  edgelearn speech sweep --models runs/speech/s8/v50fx --deltas 0,0.5,1 --sets validation,test \\
      --json runs/speech/sweep.json --plot runs/speech/sweep.png     operating points on selection data
  edgelearn speech sweep --corpus runs/speech/corpus180xf --models runs/speech/s8/v50fx --deltas 0,1 \\
      --sets validation,test,runs/speech/fresh180 --warps 0.9,0.95,1,1.05,1.1 --n-asr 40 --n-asr-lm 40
  edgelearn speech sweep --models runs/speech/s8/v50fx --deltas 0 --n-asr 0 --n-asr-lm 0   intent only (fast)
then: speech threshold --delta D, speech finetune --warm at the chosen D, speech eval once on unused speakers
needs: pip install pocketsphinx (unless --n-asr 0 --n-asr-lm 0)
"""
EXAMPLES_EVAL = """examples:
  edgelearn speech eval --json runs/speech/eval.json --plot runs/speech/gates.png
  edgelearn speech eval --n-asr 100                   more utterances for the pocketsphinx attacker
  edgelearn speech eval --split validation --models runs/speech/k45   choose settings on validation speakers
  edgelearn speech eval --corpus runs/speech/corpus180x --test-corpus runs/speech/fresh180 --models runs/speech/s6/v50e
                                                      once, on new speakers (speech synth --fresh-test)
needs: pip install pocketsphinx
"""


def _write(path, obj):
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(obj, indent=2) + "\n")
    print(f"wrote {p}")


def _positive(name, v):
    if v is not None and v < 1:
        raise ValueError(f"--{name}: must be >= 1, got {v}")


def cmd_synth(args) -> int:
    from edgelearn.speech.synth import synthesize

    for n in ("speakers", "per_speaker", "test_speakers", "workers"):
        _positive(n.replace("_", "-"), getattr(args, n))
    m = synthesize(args.out, n_speakers=args.speakers, per_speaker=args.per_speaker,
                   n_test_speakers=args.test_speakers, seed=args.seed, workers=args.workers, force=args.force,
                   extra_train=args.extra_train, fresh_test=args.fresh_test)
    u = m["utterances"]
    summary = {"out": args.out, "utterances": len(u), "intents": len(m["intents"]), "speakers": len(m["speakers"]),
               "test_speakers": m["test_speakers"], "hours": sum(x["samples"] for x in u) / 16000 / 3600}
    print(json.dumps(summary, indent=2))
    if args.json:
        from edgelearn.cli import environment

        _write(args.json, {"environment": environment(), "results": [summary], "claims": []})
    return 0


def cmd_train(args) -> int:
    import torch

    from edgelearn.speech.train import train_all

    torch.set_num_threads(args.threads)
    out = train_all(args.corpus, args.models, epochs_cloud=args.epochs_cloud, epochs_mask=args.epochs_mask,
                    epochs_ft=args.epochs_ft, gamma=args.gamma, seed=args.seed, val_speakers=args.val_speakers,
                    augment=not args.no_augment, lr_cloud=args.lr, lr_ft=args.lr_ft, width=args.width,
                    mask_utts=args.mask_utts, lr_dual=args.lr_dual, cloud_from=args.cloud_from,
                    keep_target=args.keep_target, block=args.block, rounds=args.rounds, normalise=args.normalise,
                    ft_temp=args.ft_temp, device_gates=args.device_gates,
                    ft_distill=args.ft_distill, val_stratify=args.val_stratify, voice_aug=args.voice_aug,
                    kl_cvar=args.kl_cvar, kl_family_max=args.kl_family_max, privacy=args.privacy,
                    calibrate_kept=args.calibrate_kept, gate_param=args.gate_param,
                    anneal_masker=args.anneal_masker, masker_budget=args.masker_budget,
                    masker_teacher=args.masker_teacher, masker_seed=args.masker_seed,
                    proxy_epochs=args.proxy_epochs, privacy_cap=args.privacy_cap, log=lambda s: print(s, flush=True))
    if args.json:
        from edgelearn.cli import environment

        _write(args.json, {"environment": environment(), "results": [out], "claims": []})
    return 0


def cmd_sweep(args) -> int:
    import torch

    from edgelearn.speech.sweep import plot_sweep, sweep

    torch.set_num_threads(args.threads)
    deltas = _floats("--deltas", args.deltas)
    sets = [x for x in args.sets.split(",") if x]
    rep = sweep(args.corpus, args.models, deltas, sets=sets, warps=_floats("--warps", args.warps), n_asr=args.n_asr,
                n_asr_lm=args.n_asr_lm, seed=args.seed, log=lambda s: print(s, flush=True))
    if args.plot:
        plot_sweep(rep, args.plot)
        print(f"wrote {args.plot}")
    if args.json:
        from edgelearn.cli import environment

        _write(args.json, {"environment": environment(), "results": rep.results, "claims": []})
    return 0


def cmd_threshold(args) -> int:
    from edgelearn.speech.train import delta_for_kept, shift_threshold

    delta = args.delta
    if args.kept is not None:
        delta = delta_for_kept(args.models, args.corpus, args.kept)
        print(f"delta {delta:+.4g}: the device gates keep {args.kept:g} of the training segments")
    rec = shift_threshold(args.models, args.out, delta, args.corpus)
    print(f"wrote {args.out}: gates keep log_alpha > {rec['delta']:g} (masker of {rec['from']})")
    if args.json:
        _write(args.json, {"results": [rec], "claims": []})
    return 0


def cmd_finetune(args) -> int:
    import torch

    from edgelearn.speech.train import finetune_ensemble

    torch.set_num_threads(args.threads)
    try:
        seeds = [int(x) for x in args.seeds.split(",")]
    except ValueError:
        raise ValueError(f"--seeds: comma-separated integers, got {args.seeds!r}") from None
    rec = finetune_ensemble(args.corpus, args.models, args.out, seeds=seeds, epochs=args.epochs, lr=args.lr,
                            ft_temp=args.ft_temp, parts=[p for p in args.parts.split(",") if p],
                            augment=not args.no_augment, voice_aug=args.voice_aug, voice_warp=args.voice_warp,
                            warm=args.warm, log=lambda s: print(s, flush=True))
    if args.json:
        from edgelearn.cli import environment

        _write(args.json, {"environment": environment(), "results": [rec], "claims": []})
    return 0


def _floats(flag: str, text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise ValueError(f"{flag}: comma-separated numbers, got {text!r}") from None


def cmd_eval(args) -> int:
    import torch

    from edgelearn.speech.evaluate import evaluate

    torch.set_num_threads(args.threads)
    rep = evaluate(args.corpus, args.models, n_asr=args.n_asr, n_asr_lm=args.n_asr_lm, seed=args.seed,
                   plot=args.plot, split=args.split, test_corpus=args.test_corpus, warps=_floats("--warps", args.warps),
                   log=lambda s: print(s, flush=True))
    claims = [c.to_json() for c in rep.claims]
    print("\nclaims:")
    for c in claims:
        print(f"  [{'ok' if c['ok'] else 'FAIL'}] {c['name']}: {c['value']:.4g} (target {c['target']})")
    if args.plot:
        print(f"wrote {args.plot}")
    if args.json:
        from edgelearn.cli import environment

        _write(args.json, {"environment": environment(), "results": rep.results, "claims": claims})
    failed = [c for c in claims if not c["ok"]]
    print(f"{len(claims) - len(failed)}/{len(claims)} goals met")
    return 1 if failed else 0


def register(sub, fmt=argparse.RawDescriptionHelpFormatter) -> None:
    sp = sub.add_parser("speech", help="speech privacy masking (SILENCE): synth | train | threshold | sweep | finetune | "
                        "eval")
    ss = sp.add_subparsers(dest="speech_command", required=True)
    s = ss.add_parser("synth", help="synthesise the spoken-command corpus", epilog=EXAMPLES_SYNTH, formatter_class=fmt)
    s.add_argument("--out", default="runs/speech/corpus")
    s.add_argument("--speakers", type=int, default=24, help=">= 20 for the issue's corpus")
    s.add_argument("--per-speaker", type=int, default=30, help="utterances per speaker (bigger corpus: 120)")
    s.add_argument("--test-speakers", type=int, default=6, help="speakers held out for test")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--extra-train", type=int, default=0, metavar="N",
                   help="N extra training speakers, in this order: 13 of festival ked/slt-hts voices and flite awb/slt "
                        "pitch and F0 variants, then 24 more (espeak variants no test or validation speaker uses, "
                        "at wider pitch/rate; more flite and festival pitches), then 4 flite awb/slt at +-450 cents; "
                        "at most 41; festival: apt-get install "
                        "-y festival festvox-kdlpc16k festvox-us-slt-hts")
    s.add_argument("--fresh-test", type=int, nargs="?", const=1, default=0, metavar="SET",
                   help="a test-only corpus of 6 new speakers (speech eval --test-corpus), for an unbiased estimate "
                        "once the corpus's own test speakers have guided choices; SET 1 (default: spk90-95), 2 "
                        "(spk96-101, for when set 1 has been used), 3 (spk102-107, after set 2), 4 (spk108-113, after set 3), "
                        "5 (spk114-119, after set 4), 6 (spk120-125, after set 5), 7 (spk126-131, after set 6) "
                        "8 (spk132-137, after set 7) or 9 (spk138-143, after set 8)")
    s.add_argument("--workers", type=int, default=2, help="synthesis processes")
    s.add_argument("--force", action="store_true", help="re-synthesise even if the cache matches")
    s.add_argument("--json", metavar="PATH")
    s.set_defaults(fn=cmd_synth)
    for name, fn, ex, hlp in (("train", cmd_train, EXAMPLES_TRAIN, "train cloud model, mask generator, fine-tune"),
                              ("eval", cmd_eval, EXAMPLES_EVAL, "utility, privacy and cost goals as claims")):
        p = ss.add_parser(name, help=hlp, epilog=ex, formatter_class=fmt)
        p.add_argument("--corpus", default="runs/speech/corpus")
        p.add_argument("--models", default="runs/speech/models")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--json", metavar="PATH")
        p.set_defaults(fn=fn)
    t = ss.choices["train"]
    t.add_argument("--gamma", type=float, default=0.15, help="KL budget (SILENCE: 0.15)")
    t.add_argument("--epochs-cloud", type=int, default=20)
    t.add_argument("--epochs-mask", type=int, default=6)
    t.add_argument("--epochs-ft", type=int, default=4)
    t.add_argument("--val-speakers", type=int, default=3, help="training speakers held out for validation")
    t.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of the cloud model (one-cycle)")
    t.add_argument("--lr-ft", type=float, default=1e-3, help="peak learning rate of the fine-tuning on masked audio")
    t.add_argument("--no-augment", action="store_true", help="no SpecAugment")
    t.add_argument("--width", type=int, default=64, help="channels of the cloud model's convolutions")
    t.add_argument("--mask-utts", type=int, default=800, help="training utterances the mask generator sees")
    t.add_argument("--lr-dual", type=float, default=0.5, help="dual ascent step of the Lagrange multiplier")
    t.add_argument("--keep-target", type=float, help="kept budget in (0, 1): minimise the KL subject to E[kept] <= "
                   "this, instead of the KL budget --gamma")
    t.add_argument("--block", type=int, default=1, help="40 ms segments per gate (3 = 120 ms: whole syllables/words)")
    t.add_argument("--rounds", type=int, default=1, help="alternations of masker training and cloud fine-tuning")
    t.add_argument("--normalise", action="store_true", help="speaker-normalising mode: warp each utterance's median "
                   "pitch (and formants) to 140 Hz before masking; the cloud model is fine-tuned on it")
    t.add_argument("--ft-temp", type=float, metavar="T", help="mask augmentation in the fine-tuning: fresh gates "
                   "each batch, keep ~ Bernoulli(sigmoid(log_alpha / T)) (T = 4 flips ~10%% of the gates), and fresh "
                   "random masks for the baseline; default: one fixed binarised mask per utterance")
    t.add_argument("--device-gates", action="store_true", help="fine-tune on the gates the device computes (each "
                   "utterance's own frames; default: the masker's zero-padded batches, which drop the last 2-4 "
                   "segments of an utterance that the device keeps)")
    t.add_argument("--ft-distill", type=float, default=0.0, metavar="W", help="fine-tuning loss (1 - W) * cross-"
                   "entropy + W * KL(clean model on clean audio || model on masked audio) (default 0: labels only)")
    t.add_argument("--val-stratify", action="store_true", help="validation speakers drawn across voice families "
                   "(engine, pitch/rate variant) in turn, so validation holds every kind of voice")
    t.add_argument("--voice-aug", action="store_true", help="voice augmentation in every cloud training: mel-axis "
                   "warp (+-10%%) and time stretch (+-15%%) per utterance")
    t.add_argument("--kl-cvar", type=float, metavar="Q", help="masker's KL over the worst fraction Q of each batch "
                   "(CVaR; e.g. 0.25) instead of the mean, so hard voices keep the segments they need")
    t.add_argument("--calibrate-kept", action="store_true",
                   help="after each masker round, move the gate threshold so the hard gates keep --keep-target of the "
                        "training segments (a budget-trained masker can leave most log_alphas just below 0)")
    t.add_argument("--gate-param", choices=["clamp", "tanh", "inward"], default="clamp",
                   help="how the masker bounds its log_alphas to +-4 in training: clamp (straight-through), tanh "
                        "(4 tanh(raw / 4)), inward (clamp passing only gradients back inside the bound)")
    t.add_argument("--anneal-masker", action="store_true",
                   help="cosine decay of the masker's learning rate and multiplier step over each round, so its gates "
                        "settle rather than stop wherever the primal-dual oscillation is")
    t.add_argument("--masker-budget", choices=["lagrangian", "shift"], default="lagrangian",
                   help="how the masker holds --keep-target: lagrangian (a multiplier) or shift (each batch's "
                        "log_alphas shifted so its expected kept fraction is the budget; the masker minimises the KL "
                        "alone; needs --calibrate-kept)")
    t.add_argument("--masker-teacher", choices=["clean", "holes"], default="clean",
                   help="the model the first masker round's KL is measured against: the clean cloud model, or holes "
                        "(the random-mask baseline, fine-tuned first at --keep-target: it reads audio with holes, so "
                        "the KL scores what the gates remove, not the holes)")
    t.add_argument("--masker-seed", type=int, metavar="N", help="seed of the masker alone (default: --seed, which "
                   "also draws the validation speakers): another masker draw on the same split")
    t.add_argument("--kl-family-max", action="store_true", help="masker's KL is the worst voice family's in each "
                   "batch (group DRO; with --kl-cvar, the CVaR within each family)")
    t.add_argument("--privacy", type=float, default=0.0, metavar="W", help="weight of an ASR-proxy term in the "
                   "masker's loss: it also maximises a CTC character recogniser's loss on the masked audio (capped "
                   "per utterance), dropping what carries the words (e.g. 1.0; 0 = SILENCE's loss)")
    t.add_argument("--privacy-cap", type=float, default=3.0, metavar="NATS", help="per-character CTC loss past "
                   "which an utterance adds no privacy gradient (set it above the proxy's loss on masked audio)")
    t.add_argument("--proxy-epochs", type=int, default=12, help="training epochs of the ASR proxy (2,000 clean "
                   "training utterances)")
    t.add_argument("--cloud-from", metavar="DIR", help="reuse the clean cloud model of an earlier run (same corpus "
                   "and --val-speakers): skips stage 1")
    h = ss.add_parser("threshold", help="another operating point of a trained masker: keep log_alpha > DELTA",
                      epilog=EXAMPLES_THRESHOLD, formatter_class=fmt)
    h.add_argument("--corpus", default="runs/speech/corpus", help="the training corpus (int8 calibration audio)")
    h.add_argument("--models", default="runs/speech/models", help="trained models (speech train)")
    h.add_argument("--out", required=True, help="new model directory (the original is kept)")
    hx = h.add_mutually_exclusive_group(required=True)
    hx.add_argument("--delta", type=float, help="gate threshold on log_alpha (> 0 keeps fewer)")
    hx.add_argument("--kept", type=float, metavar="F", help="the threshold at which the device gates keep F of the "
                    "training segments (0 < F < 1)")
    h.add_argument("--json", metavar="PATH")
    h.set_defaults(fn=cmd_threshold)
    w = ss.add_parser("sweep", help="operating points of a masker on selection data: intent drop and attackers' "
                      "WER per gate threshold", epilog=EXAMPLES_SWEEP, formatter_class=fmt)
    w.add_argument("--corpus", default="runs/speech/corpus", help="the training corpus (its validation/test splits, "
                   "and the trigram attacker's transcripts)")
    w.add_argument("--models", default="runs/speech/models", help="trained models (speech train / finetune)")
    w.add_argument("--deltas", default="0", metavar="D,D,...", help="gate thresholds on log_alpha (> 0 keeps fewer)")
    w.add_argument("--sets", default="validation,test", metavar="S,S,...", help="selection data: validation, test "
                   "(--corpus's splits) and/or test-only corpus directories (speech synth --fresh-test)")
    w.add_argument("--warps", metavar="A,B,...", help="test-time voice averaging of the cloud models (speech eval)")
    w.add_argument("--n-asr", type=int, default=40, help="files per set for the JSGF attacker (0 = skip)")
    w.add_argument("--n-asr-lm", type=int, default=40, help="files per set for the trigram attacker (0 = skip)")
    w.add_argument("--plot", metavar="PNG", help="intent drop against each attacker's WER, one point per threshold")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--threads", type=int, default=2)
    w.add_argument("--json", metavar="PATH")
    w.set_defaults(fn=cmd_sweep)
    f = ss.add_parser("finetune", help="ensemble of cloud models fine-tuned at a masker's operating point",
                      epilog=EXAMPLES_FINETUNE, formatter_class=fmt)
    f.add_argument("--corpus", default="runs/speech/corpus", help="the training corpus")
    f.add_argument("--models", default="runs/speech/models", help="trained models (speech train / threshold)")
    f.add_argument("--out", required=True, help="new model directory (the original is kept)")
    f.add_argument("--seeds", default="0,1,2", help="one fine-tuned copy per seed (default 0,1,2)")
    f.add_argument("--epochs", type=int, default=20)
    f.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (one-cycle)")
    f.add_argument("--ft-temp", type=float, default=4.0, help="temperature of the sampled gates (speech train)")
    f.add_argument("--parts", default="masked,random", help="masked (the masker's gates), random (the baseline's)")
    f.add_argument("--no-augment", action="store_true", help="no SpecAugment")
    f.add_argument("--voice-aug", action="store_true", help="voice augmentation (speech train --voice-aug)")
    f.add_argument("--voice-warp", type=float, default=0.1, metavar="W",
                   help="with --voice-aug: mel-axis warp drawn from [1 - W, 1 + W] (default 0.1)")
    f.add_argument("--warm", action="store_true", help="continue each fine-tuned member of --models (one per seed) "
                   "instead of starting again from the clean model: more epochs, or a new threshold")
    f.add_argument("--threads", type=int, default=2)
    f.add_argument("--json", metavar="PATH")
    f.set_defaults(fn=cmd_finetune)
    e = ss.choices["eval"]
    e.add_argument("--n-asr", type=int, default=48, help="test utterances decoded by the JSGF-grammar ASR attacker")
    e.add_argument("--n-asr-lm", "--n-asr-unigram", dest="n_asr_lm", type=int, default=24,
                   help="test utterances decoded by the trigram-LM ASR attacker (0 = skip)")
    e.add_argument("--split", choices=("test", "validation"), default="test",
                   help="test speakers, or the training run's validation speakers (to choose settings)")
    e.add_argument("--warps", metavar="A,B,...", help="test-time voice averaging: every cloud model's "
                   "log-probabilities averaged over these mel-axis warps, e.g. 0.9,0.95,1,1.05,1.1")
    e.add_argument("--test-corpus", metavar="DIR",
                   help="evaluate on this test-only corpus (speech synth --fresh-test) instead of --corpus's test "
                        "speakers; --corpus still gives the attackers' training transcripts")
    e.add_argument("--plot", metavar="PNG", help="gates over waveform and spectrogram of one test utterance")


def main(argv=None) -> int:
    """Standalone entry (python -m edgelearn.speech.cli) until edgelearn's CLI registers it."""
    import sys

    p = argparse.ArgumentParser(prog="edgelearn")
    register(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, TypeError, FileNotFoundError, ImportError, RuntimeError) as e:
        print(f"edgelearn: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
