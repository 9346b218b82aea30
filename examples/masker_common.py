"""What examples/masker_trials.py and examples/masker_judge.py share: a trained run's corpus split and models, and
the JSON record they write."""
import json

from edgelearn.speech.train import load_corpus, load_models, validation_split


def load_run(corpus_dir, run_dir):
    """(corpus, fit, val, models) of a speech train run: its validation split from its own settings."""
    run = load_models(run_dir)
    full = load_corpus(corpus_dir)
    fit, val = validation_split(full, run["state"])
    return full, fit, val, run


def write_record(path, args, rows) -> None:
    """{"settings": the command's arguments, "results": rows} to path (nothing when path is None)."""
    if path:
        with open(path, "w") as f:
            json.dump({"settings": vars(args), "results": rows}, f, indent=1)
