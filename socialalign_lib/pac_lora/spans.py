"""How the user and news token spans reach the PAC-LoRA layers, once per model call.

The official SocialAlign code threads `user_mask` / `news_mask` through a forked modeling file.
Here the spans enter *once*, at the top, and every PAC-LoRA layer reads them from a shared
`SpanRouter`:

    model(input_ids, attention_mask=mask, pac_spans=spans)        # PeftModel forward
    model.generate(input_ids, attention_mask=mask, pac_spans=spans, max_new_tokens=32)
    with use_spans(model, spans): trainer_or_library_call(model)   # any other call path

`spans` is a LongTensor `[batch, 2, 2]`: `spans[b, USER] = (start, end)` and
`spans[b, NEWS] = (start, end)`, token indices with `end` exclusive, **in each row's own token
coordinates**, i.e. as if the row were not padded. The router shifts every row by its count of
leading pads (read from the 2-D `attention_mask`) in one place, `place_spans`, so the same spans
work right-padded (training), left-padded (batched generation) and unpadded, and batching never
changes a row's result. Passing spans already in padded coordinates is a bug that `place_spans`
catches when the shifted span leaves the row or covers padding.

A forward pre-hook on the backbone (`model.model` for Qwen2/Llama) classifies each call:
- *prefill* (no KV cache, or an empty one): spans are required by every active PAC-LoRA layer;
  the router stores pooling weights `[batch, 2, seq]` and span masks for the layers. The state
  stays until the next call, so gradient checkpointing can recompute layers during backward.
- *decode* (cache already filled): no spans needed; each layer reuses the gates it cached at
  prefill. Greedy decoding with and without KV cache therefore routes identically.
`generate` expands spans with `repeat_interleave` when it expands the batch (beams,
`num_return_sequences`) and refuses `prefill_chunk_size` (only its first chunk would look like a
prefill).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

#: Index of the user span (system prompt, name, history, persona) in `spans[:, k]`; gate B reads it.
USER = 0
#: Index of the news span in `spans[:, k]`; gate A reads it.
NEWS = 1
#: Keyword under which spans are passed to `forward` / `generate`.
SPANS_KWARG = "pac_spans"


class PacSpanError(ValueError):
    """Spans are malformed, do not fit the batch, or cannot be placed in the padded input."""


class MissingSpansError(PacSpanError):
    """A PAC-LoRA layer ran a prefill without spans: routing would silently fall back otherwise."""


MISSING_SPANS_MESSAGE = (
    "PAC-LoRA needs the user/news token spans at prefill: pass pac_spans=LongTensor[batch, 2, 2] "
    "((user_start, user_end), (news_start, news_end)) per row, in the row's own unpadded token "
    "coordinates, to model(...) or model.generate(...), or wrap the call in `with use_spans(model, spans):`"
)


def leading_pad_counts(attention_mask: torch.Tensor) -> torch.Tensor:
    """Count the pads before each row's first real token.

    Args:
        attention_mask: `[batch, seq]`, nonzero = real token.
    Returns:
        `[batch]` int64; 0 for right-padded or unpadded rows, `seq` for an all-pad row.
    """
    return ((attention_mask != 0).long().cumsum(dim=-1) == 0).sum(dim=-1)


def place_spans(
    spans: torch.Tensor | Sequence,
    batch: int,
    seq: int,
    attention_mask: torch.Tensor | None = None,
    allow_expand: bool = False,
) -> torch.Tensor:
    """Validate spans and move them from row coordinates to padded input coordinates.

    This is the one place where left padding is handled: each row is shifted by its count of
    leading pads. `allow_expand` (set by `generate`) repeats each row's spans
    `batch // len(spans)` times, matching `repeat_interleave` of beams / `num_return_sequences`.

    Args:
        spans: `[b, 2, 2]` integer (start, end) for (user, news), end exclusive.
        batch: batch size of the model input.
        seq: length of the model input (prefill: the whole prompt).
        attention_mask: `[batch, seq]` or None (no padding).
        allow_expand: accept `b` dividing `batch` and expand.
    Returns:
        `[batch, 2, 2]` int64 on the spans' device, in padded coordinates.
    Raises:
        PacSpanError: wrong shape or dtype, batch mismatch, start > end, span outside the input,
            or a span covering padding (spans given in padded coordinates, or truncation).
    """
    spans = torch.as_tensor(spans)
    if spans.dtype.is_floating_point or spans.dtype == torch.bool or spans.dtype.is_complex:
        raise PacSpanError(f"pac_spans must be an integer tensor, got dtype {spans.dtype}")
    if spans.dim() != 3 or tuple(spans.shape[1:]) != (2, 2):
        raise PacSpanError(
            f"pac_spans must have shape [batch, 2, 2] ((user, news) x (start, end)), got {tuple(spans.shape)}"
        )
    spans = spans.long()
    if spans.shape[0] != batch:
        if allow_expand and spans.shape[0] > 0 and batch % spans.shape[0] == 0:
            spans = spans.repeat_interleave(batch // spans.shape[0], dim=0)
        else:
            raise PacSpanError(f"pac_spans has {spans.shape[0]} rows but the input batch has {batch}")
    starts, ends = spans[..., 0], spans[..., 1]
    if bool((starts < 0).any()) or bool((starts > ends).any()):
        bad = torch.nonzero((starts < 0) | (starts > ends))[0].tolist()
        raise PacSpanError(
            f"pac_spans row {bad[0]} span {bad[1]}: need 0 <= start <= end, got {spans[bad[0], bad[1]].tolist()}"
        )
    if attention_mask is not None:
        if attention_mask.dim() != 2 or tuple(attention_mask.shape) != (batch, seq):
            raise PacSpanError(
                f"PAC-LoRA places spans with a 2-D attention_mask [batch, seq] = {[batch, seq]}, "
                f"got shape {tuple(attention_mask.shape)}"
            )
        spans = spans + leading_pad_counts(attention_mask).to(spans.device)[:, None, None]
    if bool((spans[..., 1] > seq).any()):
        row = int(torch.nonzero(spans[..., 1] > seq)[0, 0])
        raise PacSpanError(
            f"pac_spans row {row} ends at {spans[row].tolist()} (padded coordinates) beyond the prefill length "
            f"{seq}: spans in padded coordinates given twice, a truncated prompt, or chunked prefill"
        )
    if attention_mask is not None:
        inside = span_masks(spans.to(attention_mask.device), seq)
        covers_pad = inside & (attention_mask == 0)[:, None, :]
        if bool(covers_pad.any()):
            row = int(torch.nonzero(covers_pad)[0, 0])
            raise PacSpanError(
                f"pac_spans row {row} covers padding: give spans in the row's own (unpadded) token coordinates; "
                "PAC-LoRA shifts them by the leading pads itself"
            )
    return spans


def span_masks(spans: torch.Tensor, seq: int) -> torch.Tensor:
    """Boolean membership masks `[batch, 2, seq]` of spans `[batch, 2, 2]` (padded coordinates)."""
    positions = torch.arange(seq, device=spans.device)
    return (positions >= spans[..., :1]) & (positions < spans[..., 1:])


def pooling_weights(spans: torch.Tensor, seq: int) -> torch.Tensor:
    """Masked-mean weights `[batch, 2, seq]`: `1/len` inside a span, 0 outside.

    `torch.bmm(weights, x)` with `x: [batch, seq, d]` gives the span means `[batch, 2, d]`. An
    empty span pools to the zero vector, and a bias-free gate maps it to uniform weights (the
    official code's behaviour for tokens outside every span).
    """
    inside = span_masks(spans, seq).float()
    return inside / inside.sum(dim=-1, keepdim=True).clamp(min=1.0)


@dataclass
class PrefillRouting:
    """What the layers need from one prefill: spans placed in the padded input, and derived masks.

    Attributes:
        spans: `[batch, 2, 2]` int64, padded coordinates.
        batch, seq: shape of the prefill input.
    """

    spans: torch.Tensor
    batch: int
    seq: int
    _pool: dict[tuple[torch.device, torch.dtype], torch.Tensor] = field(default_factory=dict, repr=False)
    _masks: dict[tuple[torch.device, torch.dtype], torch.Tensor] = field(default_factory=dict, repr=False)

    def pool_weights(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """`[batch, 2, seq]` masked-mean weights on `device` in `dtype` (cached per device/dtype)."""
        key = (device, dtype)
        if key not in self._pool:
            self._pool[key] = pooling_weights(self.spans.to(device), self.seq).to(dtype)
        return self._pool[key]

    def token_masks(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """`[batch, 2, seq]` 0/1 span membership (for the official per-token routing)."""
        key = (device, dtype)
        if key not in self._masks:
            self._masks[key] = span_masks(self.spans.to(device), self.seq).to(dtype)
        return self._masks[key]


def _cache_length(cache: Any) -> int:
    """Tokens already in a KV cache (0 for None / empty); supports `Cache` objects and legacy tuples."""
    if cache is None:
        return 0
    if hasattr(cache, "get_seq_length"):
        return int(cache.get_seq_length())
    if isinstance(cache, (tuple, list)):
        if len(cache) == 0 or cache[0] is None or len(cache[0]) == 0:
            return 0
        return int(cache[0][0].shape[-2])
    raise PacSpanError(f"PAC-LoRA cannot tell prefill from decode: unknown cache type {type(cache).__name__}")


class SpanRouter:
    """Shared routing state of one PAC-LoRA model: spans in, per-call phase out.

    One instance per `PacLoraModel`; every PAC-LoRA layer keeps a reference. It is plain
    Python state (not parameters), so nothing of it is saved.

    Attributes:
        is_prefill: phase of the latest backbone call.
        prefill: placed spans of the latest prefill (None if that prefill had no spans).
        prefill_count: increases at every prefill; layers tag their gate caches with it.
    """

    def __init__(self) -> None:
        self._pending: torch.Tensor | None = None
        self._generating = 0
        self.is_prefill = True
        self.prefill: PrefillRouting | None = None
        self.prefill_count = 0
        self._signatures: dict[type, inspect.Signature] = {}

    @contextmanager
    def spans_given(self, spans: torch.Tensor | None) -> Iterator[None]:
        """Make `spans` the spans of every prefill inside the block (nesting restores the outer ones)."""
        outer = self._pending
        self._pending = spans
        try:
            yield
        finally:
            self._pending = outer

    @contextmanager
    def generating(self) -> Iterator[None]:
        """Mark a `generate` call: spans may be expanded to the beams / returned sequences."""
        self._generating += 1
        try:
            yield
        finally:
            self._generating -= 1

    def _arguments(self, module: nn.Module, args: tuple, kwargs: dict) -> dict[str, Any]:
        if not args:
            return kwargs
        signature = self._signatures.get(type(module))
        if signature is None:
            signature = self._signatures[type(module)] = inspect.signature(module.forward)
        try:
            return dict(signature.bind_partial(*args, **kwargs).arguments)
        except TypeError:
            return kwargs

    def backbone_pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        """Forward pre-hook (with_kwargs) on the backbone: pop `pac_spans`, classify the call.

        Raises:
            PacSpanError: spans that do not fit the input (see `place_spans`).
        """
        spans = kwargs.pop(SPANS_KWARG, None)
        if spans is None:
            spans = self._pending
        arguments = self._arguments(module, args, kwargs)
        reference = arguments.get("input_ids")
        if reference is None:
            reference = arguments.get("inputs_embeds")
        if reference is None:
            raise PacSpanError("PAC-LoRA needs input_ids or inputs_embeds to route a call")
        batch, seq = int(reference.shape[0]), int(reference.shape[1])
        cache = arguments.get("cache", arguments.get("past_key_values"))
        if _cache_length(cache) > 0:
            self.is_prefill = False
            return args, kwargs
        self.is_prefill = True
        self.prefill_count += 1
        self.prefill = None
        if spans is not None:
            mask = arguments.get("attention_mask")
            if mask is not None and not torch.is_tensor(mask):
                raise PacSpanError(f"PAC-LoRA needs a 2-D attention_mask tensor, got {type(mask).__name__}")
            placed = place_spans(spans, batch, seq, mask, allow_expand=self._generating > 0)
            self.prefill = PrefillRouting(placed.to(reference.device), batch, seq)
        return args, kwargs

    def prefill_routing(self, batch: int, seq: int) -> PrefillRouting:
        """The current prefill's routing for a layer input `[batch, seq, d]`.

        Raises:
            MissingSpansError: the prefill came without spans.
            PacSpanError: the layer input does not have the backbone's batch and length.
        """
        if self.prefill is None:
            raise MissingSpansError(MISSING_SPANS_MESSAGE)
        if (batch, seq) != (self.prefill.batch, self.prefill.seq):
            raise PacSpanError(
                f"PAC-LoRA layer input has [batch, seq] = {[batch, seq]} but the prefill was "
                f"{[self.prefill.batch, self.prefill.seq]}: only layers inside the routed backbone are supported"
            )
        return self.prefill


def refuse_chunked_prefill(model: nn.Module, generate_kwargs: dict[str, Any]) -> None:
    """Raise if `generate` would prefill in chunks (only the first chunk would be seen as prefill)."""
    candidates = [generate_kwargs.get("prefill_chunk_size")]
    for config in (generate_kwargs.get("generation_config"), getattr(model, "generation_config", None)):
        candidates.append(getattr(config, "prefill_chunk_size", None))
    if any(value for value in candidates):
        raise PacSpanError(
            "PAC-LoRA computes its gates once at prefill; prefill_chunk_size splits the prompt and is not supported"
        )
