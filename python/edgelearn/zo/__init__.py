"""Backpropagation-free (forward-gradient / zeroth-order) fine-tuning of torch models on the zo kernels.

    model = load_minilm_classifier(num_labels=4)
    add_lora(model, targets=("query", "value"), layers=[4, 5], r=8, alpha=16)
    trainer = ZOTrainer(model, lr=Schedule(1e-3), eps=1e-3, K=16, mode="central")
    result = trainer.step(input_ids, attention_mask, labels)   # result.pairs(): the seed-only upload

Modules: lora (LoRALinear, ZOLinear, add_lora, streams), bert (compact BERT/MiniLM with stream-aware forward),
trainer (PerturbedForward, ZOTrainer, apply_pairs, Schedule), finetune (the AG News job).
"""

from .bert import (BertConfig, BertEncoder, SentenceClassifier, load_minilm_classifier, load_minilm_encoder,
                   load_tokenizer, minilm_dir)
from .lora import (LoRALinear, Streams, ZOLinear, add_lora, assign_layer_ids, perturbing, set_perturbation_scale,
                   trainable_tensors)
from .trainer import (PerturbedForward, Schedule, StackedModel, StepResult, ZOTrainer, apply_pairs, evaluate,
                      projected_gradients)

__all__ = [
    "BertConfig", "BertEncoder", "SentenceClassifier", "load_minilm_classifier", "load_minilm_encoder",
    "load_tokenizer", "minilm_dir", "LoRALinear", "Streams", "ZOLinear", "add_lora", "assign_layer_ids",
    "perturbing", "set_perturbation_scale", "trainable_tensors", "PerturbedForward", "Schedule", "StackedModel", "StepResult", "ZOTrainer", "apply_pairs",
    "evaluate", "projected_gradients",
]
