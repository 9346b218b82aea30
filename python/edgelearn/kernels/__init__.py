"""Public kernel API: each function validates its arguments, then calls the compiled kernel of the same name.

``edgelearn.kernels.reference`` holds the NumPy twins that define them; ``edgelearn.kernels.registry`` pairs
the two for the parity tests and the benchmarks.
"""

from .rng import rng_fill_f32, rng_philox_u32, zo_noise
from .zo import num_streams, zo_attention_packed_f32, zo_perturbed_linear_f32, zo_replay_seeds_f32
from .quant import QWeightS8, qadapter_update_s8, qgemm_pack_s8, qgemm_s8, qlinear_lora_s8

__all__ = [
    "rng_philox_u32",
    "rng_fill_f32",
    "zo_noise",
    "num_streams",
    "zo_perturbed_linear_f32",
    "zo_replay_seeds_f32",
    "zo_attention_packed_f32",
    "QWeightS8",
    "qgemm_pack_s8",
    "qgemm_s8",
    "qlinear_lora_s8",
    "qadapter_update_s8",
    "speech_logmel_f32",
    "speech_logmel_q15",
    "LogMelStream",
    "speech_mask_segments_s16",
    "MaskStream",
    "speech_gate_net_s8",
]
