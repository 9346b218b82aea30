"""Speech privacy masking (SILENCE, Cai et al., NeurIPS 2024): keep the intent, hide the words.

- ``synth``: a SLURP-like corpus of spoken commands with private slot values, from espeak-ng and flite, varied with sox.
- ``audio`` / ``features``: reading and checking 16 kHz mono int16 audio; the log-mel front-end (30 ms window, 20 ms
  hop, 40 mel bands), pluggable so that the C++ kernels replace the torch version in one line.
- ``models``: the cloud SLU model, the hard-concrete gates and the on-device gate network.
- ``train``: cloud model on clean audio, the mask generator trained with a KL constraint and a Lagrange multiplier,
  the cloud model fine-tuned on masked audio, int8 export.
- ``attacks``: pocketsphinx ASR with a grammar built from the corpus (WER, entity error), a speaker-ID attacker.
- ``cost``: operation counts and memory of front-end + gate network (and a VAE-style encoder) on an STM32H743.
- ``evaluate``: all of the above as claims, and the gates-over-waveform plot.
"""
