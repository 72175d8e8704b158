"""Injection of PAC-LoRA into a stock transformers model, as a new PEFT type.

Route chosen: a new PEFT type `PAC_LORA` (config + `BaseTuner` + layer), registered with
`peft.utils.register_peft_method` after adding the member to peft's `PeftType` enum. Why not the
other route (a LoRA "custom module"): that mapping is not saved, so `adapter_config.json` would say
`LORA`, a naive `PeftModel.from_pretrained` fails for n>1 and silently becomes plain LoRA at n=1,
and LoRA-only code paths (merge, weighted adapters, DoRA, mixed batches) assume an ungated sum.
With the new type, `save_pretrained` writes our config and only adapter + gate tensors in
safetensors, `PeftModel.from_pretrained` rebuilds the same layers under any adapter name, and
merging refuses loudly.

Spans: `PacLoraModel` owns one `SpanRouter`, shared by its layers, and a forward pre-hook on the
backbone. Spans arrive through peft's `_enable_peft_forward_hooks` (so `pac_spans=` works on the
PeftModel's `forward` and `generate` once `"pac_spans"` is in its `special_peft_forward_args`,
which `get_pac_model` / `load_pac_model` set), through `use_spans(model, spans)`, or as a
`pac_spans=` keyword of the transformers model itself (popped by the pre-hook).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from peft import PeftModel, get_peft_model
from peft.mapping import PEFT_TYPE_TO_TUNER_MAPPING
from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer
from peft.utils import register_peft_method
from torch import nn

from .config import PAC_LORA_PEFT_TYPE, PacLoraConfig, ensure_pac_lora_peft_type
from .layer import MERGE_MESSAGE, Linear, PacLoraLayer, PacLoraMergeError
from .spans import SPANS_KWARG, PacSpanError, SpanRouter, refuse_chunked_prefill


class PacLoraModel(BaseTuner):
    """peft tuner that wraps the target linear layers in PAC-LoRA layers sharing one `SpanRouter`."""

    prefix: str = "pac_"
    tuner_layer_cls = PacLoraLayer
    target_module_mapping: dict[str, list[str]] = {}

    @property
    def router(self) -> SpanRouter:
        """The routing state shared by this model's PAC-LoRA layers (created on first use)."""
        router = self.__dict__.get("_pac_router")
        if router is None:
            router = SpanRouter()
            self.__dict__["_pac_router"] = router
        return router

    def _create_and_replace(
        self,
        peft_config: PacLoraConfig,
        adapter_name: str,
        target: nn.Module,
        target_name: str,
        parent: nn.Module,
        current_key: str,
        parameter_name: str | None = None,
    ) -> None:
        if parameter_name is not None:
            raise NotImplementedError("PAC-LoRA does not target nn.Parameter")
        if isinstance(target, PacLoraLayer):
            target.update_layer(adapter_name, peft_config)
            return
        base = target.get_base_layer() if isinstance(target, BaseTunerLayer) else target
        if not isinstance(base, nn.Linear):
            raise TypeError(
                f"PAC-LoRA target {current_key} is {type(base).__name__}; only Linear layers are supported"
            )
        new_module = Linear(target, adapter_name, peft_config, self.router)
        if adapter_name not in self.active_adapters:
            new_module.requires_grad_(False)
        self._replace_module(parent, target_name, new_module, target)

    def _post_injection_hook(self, model: nn.Module, config: PacLoraConfig, adapter_name: str) -> None:
        """Install the routing pre-hook on the backbone once (it pops `pac_spans` and classifies calls)."""
        if self.__dict__.get("_pac_hook") is None:
            backbone = _backbone(model)
            self.__dict__["_pac_hook"] = backbone.register_forward_pre_hook(
                self.router.backbone_pre_hook, with_kwargs=True
            )

    @contextmanager
    def _enable_peft_forward_hooks(self, *args: Any, **kwargs: Any) -> Iterator[None]:
        spans = kwargs.get(SPANS_KWARG)
        with self.router.spans_given(spans) if spans is not None else nullcontext():
            yield

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        """`generate` of the wrapped model, with span expansion for beams/`num_return_sequences`."""
        refuse_chunked_prefill(self.model, kwargs)
        spans = kwargs.pop(SPANS_KWARG, None)
        with self.router.generating(), self.router.spans_given(spans) if spans is not None else nullcontext():
            return self.model.generate(*args, **kwargs)

    def _check_merge_allowed(self) -> None:
        raise PacLoraMergeError(MERGE_MESSAGE)

    def _unload_and_optionally_merge(self, merge: bool = True, **kwargs: Any) -> nn.Module:
        if merge:
            raise PacLoraMergeError(MERGE_MESSAGE)
        hook = self.__dict__.pop("_pac_hook", None)
        if hook is not None:
            hook.remove()
        return super()._unload_and_optionally_merge(merge=False, **kwargs)


def _backbone(model: nn.Module) -> nn.Module:
    """The module every forward path goes through: `model.model` for Qwen2/Llama, `transformer` for GPT-2."""
    backbone = getattr(model, "base_model", None)
    return backbone if isinstance(backbone, nn.Module) else model


def register_pac_lora() -> None:
    """Register `PAC_LORA` with peft (idempotent); runs when `socialalign_lib.pac_lora` is imported."""
    peft_type = ensure_pac_lora_peft_type()
    if peft_type not in PEFT_TYPE_TO_TUNER_MAPPING:
        register_peft_method(
            name=PAC_LORA_PEFT_TYPE.lower(),
            config_cls=PacLoraConfig,
            model_cls=PacLoraModel,
            prefix=PacLoraModel.prefix,
        )


register_pac_lora()


def _enable_span_kwarg(model: PeftModel) -> PeftModel:
    """Let `pac_spans=` through PeftModel.forward/generate (peft filters names in this instance set)."""
    model.special_peft_forward_args = set(model.special_peft_forward_args) | {SPANS_KWARG}
    return model


def get_pac_model(model: nn.Module, config: PacLoraConfig, adapter_name: str = "default") -> PeftModel:
    """Wrap a transformers causal LM in PAC-LoRA; returns a `PeftModel` that accepts `pac_spans=`.

    Args:
        model: e.g. `Qwen2ForCausalLM` (fp32, bf16 or bitsandbytes 4-bit).
        config: `PacLoraConfig`.
        adapter_name: name of the new adapter.
    """
    return _enable_span_kwarg(get_peft_model(model, config, adapter_name=adapter_name))


def load_pac_model(
    base_model: nn.Module, path: str, adapter_name: str = "default", is_trainable: bool = False
) -> PeftModel:
    """Load a PAC-LoRA adapter saved by `save_pretrained` onto `base_model` (any adapter name)."""
    return _enable_span_kwarg(
        PeftModel.from_pretrained(base_model, path, adapter_name=adapter_name, is_trainable=is_trainable)
    )


def pac_tuner(model: nn.Module) -> PacLoraModel:
    """The `PacLoraModel` inside a PeftModel (or the tuner itself)."""
    if isinstance(model, PacLoraModel):
        return model
    tuner = getattr(model, "base_model", None)
    if isinstance(tuner, PacLoraModel):
        return tuner
    raise TypeError(f"expected a PAC-LoRA PeftModel, got {type(model).__name__}")


def _routed_model(model: nn.Module) -> tuple[nn.Module, SpanRouter]:
    """The transformers model that holds the PAC-LoRA layers, and their router.

    Accepts a PeftModel, the tuner, or a transformers model that got PAC-LoRA layers another way
    (transformers' `model.load_adapter(path)` works once this package is imported).
    """
    try:
        tuner = pac_tuner(model)
        return tuner.model, tuner.router
    except TypeError:
        pass
    for module in model.modules():
        if isinstance(module, PacLoraLayer):
            return model, module._router
    raise TypeError(f"{type(model).__name__} has no PAC-LoRA layers")


@contextmanager
def use_spans(model: nn.Module, spans: torch.Tensor) -> Iterator[None]:
    """Give `spans` (`[batch, 2, 2]`, (user, news) x (start, end)) to every call inside the block.

    For call paths that cannot pass `pac_spans=` (a library's training loop, transformers'
    `generate` on the bare model): `with use_spans(model, spans): model.get_base_model().generate(ids)`.
    Beams / `num_return_sequences` need the PeftModel's `generate` (which expands the spans).
    """
    with _routed_model(model)[1].spans_given(spans):
        yield


def _layers(model: nn.Module) -> Iterator[tuple[str, PacLoraLayer]]:
    root, _ = _routed_model(model)
    for name, module in root.named_modules():
        if isinstance(module, PacLoraLayer):
            yield name, module


def gate_weights(
    model: nn.Module, adapter_name: str | None = None
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Gates of the latest prefill, per adapted layer: `{layer_name: (gate_a, gate_b)}`.

    `gate_a` (analyzing experts, from the news span) and `gate_b` (writing experts, from the user
    span) are `[batch, n]` with sequence routing and `[batch, seq, n]` with token routing; rows sum
    to 1. Layer names are module paths in the transformers model (`model.layers.0.self_attn.q_proj`).
    The tensors are detached and stay on the model's device (`.cpu()` them for plots).

    Args:
        adapter_name: default: the first active adapter.
    Raises:
        PacSpanError: no routed forward has run yet.
    """
    gates = {}
    for layer_name, layer in _layers(model):
        cached = layer.last_gates(adapter_name or layer.active_adapters[0])
        if cached is not None:
            gates[layer_name] = (cached.gate_a, cached.gate_b)
    if not gates:
        raise PacSpanError("no PAC-LoRA gates recorded yet: run a forward with pac_spans first")
    return gates


def set_gate_mode(model: nn.Module, gate_mode: str, adapter_name: str | None = None) -> None:
    """Switch gates at run time, e.g. `"uniform_a"` to ablate the news routing of a trained adapter.

    Raises:
        ValueError: unknown mode, or `"learned"` for an adapter built without (some of) its gates.
    """
    for _, layer in _layers(model):
        name = adapter_name or layer.active_adapters[0]
        if name in layer.pac_A:
            layer.set_gate_mode(name, gate_mode)
