"""Reading and switching a trained model's gates from outside: is it PAC-LoRA, what did its gates say, and a
block with the gates switched.

Why here: generation, gate maps and notebooks ask these questions of a whole model; answering them needs the
router's latest prefill (its placed spans), which only this package should reach into.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .layer import PacLoraLayer
from .model import gate_weights, pac_tuner, set_gate_mode
from .spans import NEWS, USER, pooling_weights

__all__ = ["is_pac_model", "mean_gates", "use_gate_mode"]


def is_pac_model(model: nn.Module) -> bool:
    """True when ``model`` carries PAC-LoRA layers (then it needs spans and reports gates)."""
    return any(isinstance(m, PacLoraLayer) for m in model.modules())


def mean_gates(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Gates of the latest prefill averaged over the adapted layers: ``(gate_a, gate_b)``, each ``[batch, n]``
    float32 on the CPU; each row sums to 1.

    Token routing gives ``[batch, seq, n]`` per layer: those are first averaged over their span's tokens (gate A
    over the news span, gate B over the user span) with the same masked-mean weights the gates pool with
    (:func:`~socialalign_lib.pac_lora.spans.pooling_weights`).

    Raises:
        PacSpanError: no routed forward has run yet.
    """
    per_layer = gate_weights(model)
    gate_a = [a for a, _ in per_layer.values()]
    gate_b = [b for _, b in per_layer.values()]
    if gate_a[0].dim() == 3:
        prefill = pac_tuner(model).router.prefill
        weights = pooling_weights(prefill.spans, prefill.seq)  # [batch, 2, seq]
        gate_a = [torch.einsum("bs,bsn->bn", weights[:, NEWS].to(a), a) for a in gate_a]
        gate_b = [torch.einsum("bs,bsn->bn", weights[:, USER].to(b), b) for b in gate_b]
    return torch.stack(gate_a).float().mean(0).cpu(), torch.stack(gate_b).float().mean(0).cpu()


@contextmanager
def use_gate_mode(model: nn.Module, mode: str | None) -> Iterator[None]:
    """Run a block with PAC-LoRA gates switched to ``mode`` (``"uniform"``, ``"uniform_a"``, ``"uniform_b"``,
    ``"learned"``), restoring each layer's previous mode afterwards: the "uniform gates" ablation of a trained
    adapter at evaluation time. ``None`` changes nothing.

    Raises:
        ValueError: a mode other than None / ``"learned"`` on a model without PAC-LoRA layers.
    """
    if mode is None:
        yield
        return
    layers = [m for m in model.modules() if isinstance(m, PacLoraLayer)]
    if not layers:
        if mode == "learned":
            yield
            return
        raise ValueError(
            f"gate_mode={mode!r} needs a PAC-LoRA model, got {type(model).__name__} without PAC-LoRA layers"
        )
    previous = [dict(layer.gate_mode) for layer in layers]
    set_gate_mode(model, mode)
    try:
        yield
    finally:
        for layer, modes in zip(layers, previous):
            layer.gate_mode.update(modes)
