"""int8 export of the trained GateNet through the kernel's own quantiser and packer
(edgelearn.kernels.speech.gate_net_quantize / gate_net_pack): the blob that ``speech_gate_net_s8`` runs and the
firmware embeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgelearn.speech.models import FRAMES_PER_SEG


def quantize_gatenet(gatenet, calibration_audio: list[np.ndarray]) -> dict:
    from edgelearn.kernels import speech as ks

    calib = [ks.speech_logmel_q15(x) for x in calibration_audio]
    return ks.gate_net_quantize(gatenet.mean.numpy().astype(np.float64), gatenet.std.numpy().astype(np.float64),
                                gatenet.layers(), calib, FRAMES_PER_SEG)


def export_gatenet_s8(gatenet, calibration_audio: list[np.ndarray], path) -> np.ndarray:
    from edgelearn.kernels import speech as ks

    blob = ks.gate_net_pack(quantize_gatenet(gatenet, calibration_audio))
    Path(path).write_bytes(blob.tobytes())
    return blob


def gates_s8(blob, x: np.ndarray, block: int = 1) -> np.ndarray:
    """On-device gates of int16 audio x: q15 front-end + int8 gate network (uint8 [S], 1 = keep). block > 1:
    blocks of `block` segments keep together when the sum of their int32 logits is > 0 (the float path's mean
    of log_alpha > 0, ``models.pool_gates``), summed inside the kernel (speech_gate_net_s8's block argument)."""
    from edgelearn.kernels import speech as ks

    return ks.speech_gate_net_s8(ks.speech_logmel_q15(x), blob, block)[1]
