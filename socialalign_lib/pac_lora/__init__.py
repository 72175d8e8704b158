"""PAC-LoRA (Personalized Analyze-Compose LoRA) on stock transformers + peft, no forked modeling files.

    from socialalign_lib.pac_lora import PacLoraConfig, get_pac_model, load_pac_model, gate_weights

    model = get_pac_model(base, PacLoraConfig())                  # n=3, r=8, alpha=16, 7 projections
    out = model(input_ids, attention_mask=mask, labels=labels, pac_spans=spans)   # spans [b, 2, 2]
    new = model.generate(input_ids, attention_mask=mask, pac_spans=spans, max_new_tokens=64)
    gates = gate_weights(model)                                   # {layer: (gA [b, n], gB [b, n])}
    model.save_pretrained("adapter/"); model = load_pac_model(base, "adapter/")

Importing this package registers the `PAC_LORA` PEFT type, so `PeftModel.from_pretrained` also
works afterwards (then add `"pac_spans"` to `special_peft_forward_args`, or use `load_pac_model`).
Files: `config.py` (knobs), `layer.py` (math on one layer), `model.py` (injection, registration,
public helpers), `spans.py` (how spans reach the layers).
"""

from .config import DEFAULT_TARGET_MODULES, GATE_MODES, PAC_LORA_PEFT_TYPE, ROUTINGS, PacLoraConfig
from .gating import is_pac_model, mean_gates, use_gate_mode
from .layer import GateCache, PacLoraLayer, PacLoraMergeError
from .model import (
    PacLoraModel,
    gate_weights,
    get_pac_model,
    load_pac_model,
    pac_tuner,
    register_pac_lora,
    set_gate_mode,
    use_spans,
)
from .spans import NEWS, SPANS_KWARG, USER, MissingSpansError, PacSpanError, leading_pad_counts, place_spans

__all__ = [
    "DEFAULT_TARGET_MODULES",
    "GATE_MODES",
    "NEWS",
    "PAC_LORA_PEFT_TYPE",
    "ROUTINGS",
    "SPANS_KWARG",
    "USER",
    "GateCache",
    "MissingSpansError",
    "PacLoraConfig",
    "PacLoraLayer",
    "PacLoraMergeError",
    "PacLoraModel",
    "PacSpanError",
    "gate_weights",
    "get_pac_model",
    "is_pac_model",
    "leading_pad_counts",
    "load_pac_model",
    "mean_gates",
    "pac_tuner",
    "place_spans",
    "register_pac_lora",
    "set_gate_mode",
    "use_gate_mode",
    "use_spans",
]
