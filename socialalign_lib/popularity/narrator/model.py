"""The NARRATOR network: its config, the hashtag-guided cosine attention, the char-convolution text encoder and
the fusion head (the method is described in this package's ``__init__``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..narrator_features import CONTEXT_FEATURES, DEMO_FEATURES

Batch = Mapping[str, torch.Tensor]
GUIDANCE = ("hashtag", "self", "mean")


@dataclass
class NarratorConfig:
    """Every knob of the model. ``text_dim`` is the char vocabulary size (``text_kind="chars"``) or the hidden
    size of a frozen encoder (``"states"``); ``encoder.dim`` gives it either way."""

    text_dim: int
    text_kind: str = "chars"  # chars | states
    image_dim: int = 16
    d: int = 32
    kernel: int = 3
    dropout: float = 0.3
    content_dim: int = 16  # bottleneck for each attended content vector before the head (see NarratorModel)
    content_dropout: float = 0.0
    char_dropout: float = (
        0.0  # training only: share of text characters replaced by UNK (against memorising posts)
    )
    guidance: str = "hashtag"  # hashtag | self | mean
    use_image: bool = True
    use_demographics: bool = True
    use_sentiment: bool = True
    n_demo: int = len(DEMO_FEATURES)
    n_context: int = len(CONTEXT_FEATURES)
    init_scale: float = 10.0  # initial cosine temperature (softmax over scale · cos)

    def __post_init__(self) -> None:
        if self.guidance not in GUIDANCE:
            raise ValueError(f"guidance must be one of {GUIDANCE}, got {self.guidance!r}")
        if self.text_kind not in ("chars", "states"):
            raise ValueError(f"text_kind must be 'chars' or 'states', got {self.text_kind!r}")


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis restricted to ``mask``; a row without any valid key gets all zeros (not NaN)."""
    w = torch.softmax(scores.masked_fill(~mask, -1e9), dim=-1) * mask
    return w / w.sum(-1, keepdim=True).clamp(min=1e-12)


class HashtagGuidedAttention(nn.Module):
    """Single-head cosine attention with (hashtag) queries over content keys.

    ``queries [B, H, d_query]`` (``q_mask [B, H]``), ``keys [B, N, d_key]`` (``k_mask [B, N]``) →
    ``attended [B, d_out]`` (mean over valid queries; 0 for a row without any), ``weights [B, H, N]`` (each valid
    query row sums to 1 over valid keys; zero on masked keys and on masked queries), ``cos [B, H, N]`` (raw cosine
    similarities, for the best-match features). One head, so the figure can show one weight per key.

    Scores live in a ``match_dim`` space and square query / key maps start as the identity: text keys and hashtag
    queries come from the same char encoder, so a hashtag matches the characters it shares with the text from
    the first step; image keys are small feature vectors, so a query only has to learn *where* its concept lies.
    (Measured on the world: a random 16→64→64 key map did not learn the hashtag–region match at all.)
    ``query_mlp`` makes the query map a small MLP, for queries that must place ~50 concepts at arbitrary points
    of another modality's space (more concepts than dimensions: no linear map can).
    """

    def __init__(
        self,
        d_query: int,
        d_key: int,
        d_out: int,
        match_dim: int,
        dropout: float = 0.0,
        init_scale: float = 10.0,
        query_mlp: bool = False,
    ):
        super().__init__()
        self.q: nn.Module = (
            nn.Sequential(nn.Linear(d_query, 2 * d_query), nn.GELU(), nn.Linear(2 * d_query, match_dim))
            if query_mlp
            else nn.Linear(d_query, match_dim)
        )
        self.k, self.v = nn.Linear(d_key, match_dim), nn.Linear(d_key, d_out)
        with torch.no_grad():
            for lin in (self.q, self.k):
                if isinstance(lin, nn.Linear) and lin.in_features == lin.out_features:
                    lin.weight.copy_(torch.eye(lin.in_features))
                    lin.bias.zero_()
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_scale)))
        self.drop = nn.Dropout(dropout)

    def forward(
        self, queries: torch.Tensor, q_mask: torch.Tensor, keys: torch.Tensor, k_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q = nn.functional.normalize(self.q(queries), dim=-1)
        k = nn.functional.normalize(self.k(keys), dim=-1)
        cos = torch.einsum("bhd,bnd->bhn", q, k)
        scale = self.log_scale.clamp(max=math.log(100.0)).exp()
        weights = masked_softmax(scale * cos, k_mask.unsqueeze(1).expand_as(cos)) * q_mask.unsqueeze(-1)
        per_query = torch.einsum("bhn,bnd->bhd", self.drop(weights), self.v(keys))
        qm = q_mask.unsqueeze(-1).float()
        attended = (per_query * qm).sum(1) / qm.sum(1).clamp(min=1)
        return attended, weights, cos


class CharConvEncoder(nn.Module):
    """Char ids ``[B, L]`` → states ``[B, L, d]``: embedding plus a residual 1-D convolution (n-gram detector)."""

    def __init__(self, vocab: int, d: int, kernel: int = 3):
        super().__init__()
        self.emb = nn.Embedding(vocab, d, padding_idx=0)
        self.conv = nn.Conv1d(d, d, kernel, padding=kernel // 2)
        self.norm = nn.LayerNorm(d)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        e = self.emb(ids)
        return self.norm(e + torch.relu(self.conv(e.transpose(1, 2)).transpose(1, 2)))


class NarratorModel(nn.Module):
    """The full network; ``forward(batch) -> [B]`` standardised predictions (see :func:`predict`).

    After each forward, ``last_weights [B, Q, Lt + R]`` (text weights, then image weights; each part sums to 1
    per valid query) and ``last_keys`` (``n_text``, ``n_image``) are kept for the attention figure.
    """

    def __init__(self, cfg: NarratorConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d
        self.image_match = cfg.image_dim if cfg.image_dim <= 2 * d else d
        chars = cfg.text_kind == "chars"
        if chars:
            self.chars = CharConvEncoder(cfg.text_dim, d, cfg.kernel)
            if cfg.use_image:  # each character's own guess of where its concept lies among image regions
                self.char_image = nn.Embedding(cfg.text_dim, self.image_match, padding_idx=0)
                nn.init.normal_(self.char_image.weight, std=0.1)
        else:
            self.text_proj = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.LayerNorm(d))
            self.tag_in = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.LayerNorm(d))
        self.tag_salience = nn.Linear(d, 1)  # which characters of a hashtag carry its concept
        self.tag_proj = nn.Linear(d, d)
        with torch.no_grad():
            self.tag_proj.weight.copy_(torch.eye(d))
            self.tag_proj.bias.zero_()
        # one attention per modality: a hashtag must match characters in one space and region features in another
        self.attention = nn.ModuleDict(
            {"text": HashtagGuidedAttention(d, d, d, d, cfg.dropout, cfg.init_scale)}
        )
        self.generic_query = nn.ParameterDict({"text": nn.Parameter(torch.randn(d) * 0.1)})
        if cfg.use_image:
            d_q = self.image_match if chars else d
            self.attention["image"] = HashtagGuidedAttention(
                d_q, cfg.image_dim, d, self.image_match, cfg.dropout, cfg.init_scale, query_mlp=not chars
            )
            self.generic_query["image"] = nn.Parameter(torch.randn(d_q) * 0.1)
        # attended vectors are near-unique per post (weighted sums of noisy region features and char states); a
        # narrow bottleneck keeps the head from memorising each post's noise through them
        self.squeeze = nn.ModuleDict(
            {
                m: nn.Sequential(nn.Linear(d, cfg.content_dim), nn.Dropout(cfg.content_dropout))
                for m in (*self.modalities, "hashtags")
            }
        )
        self.head = nn.Sequential(
            nn.Linear(self.fusion_width, 2 * d), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(2 * d, 1)
        )
        # popularity is mostly additive in these features, so a linear path beside the MLP learns it with less data
        self.linear = nn.Linear(self.fusion_width, 1)
        self.register_buffer("y_mu", torch.tensor(0.0))
        self.register_buffer("y_sd", torch.tensor(1.0))
        self.register_buffer("ctx_mu", torch.zeros(cfg.n_context))
        self.register_buffer("ctx_sd", torch.ones(cfg.n_context))
        self.last_weights: torch.Tensor | None = None
        self.last_keys: dict[str, int] = {}
        self.last_best: torch.Tensor | None = (
            None  # [B, n_modalities] best-match scores (hashtag guidance only)
        )

    @property
    def modalities(self) -> tuple[str, ...]:
        return ("text", "image") if self.cfg.use_image else ("text",)

    @property
    def fusion_width(self) -> int:
        """Input width of the regression head; each ablation switch changes exactly its block:
        ``d`` per modality (attended content); with hashtag guidance one best-match score per modality, without
        it the mean hashtag vector (``d``: the hashtags are still *seen*, just not used as queries); then
        context, demographics and sentiment."""
        c = self.cfg
        guided = len(self.modalities) if c.guidance == "hashtag" else c.content_dim
        return (
            c.content_dim * len(self.modalities)
            + guided
            + c.n_context
            + (c.n_demo if c.use_demographics else 0)
            + (3 if c.use_sentiment else 0)
        )

    def encode_text(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, Lt, d]`` token states and ``[B, Lt]`` mask."""
        text = batch["text"]
        mask = batch["text_mask"] if "text_mask" in batch else text != 0  # noqa: SIM401 - lazy default
        if self.training and self.cfg.char_dropout > 0 and self.cfg.text_kind == "chars":
            drop = (torch.rand(text.shape, device=text.device) < self.cfg.char_dropout) & mask
            text = text.masked_fill(drop, 1)  # UNK
        states = self.chars(text) if self.cfg.text_kind == "chars" else self.text_proj(text.float())
        return states, mask

    def encode_hashtags(self, batch: Batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Hashtag queries per modality, ``{"text": [B, H, d], "image": [B, H, m]}``, and the ``[B, H]`` mask.

        Chars: an attentive pooling of the hashtag's char states (a learned salience per character, so the
        concept's characters outweigh the template's "太美了" / "治愈系"), in the same space as the text's char
        states; the image query pools, with the same weights, a per-character region-space embedding, so a
        concept's place among image features is learned per character, directly (a map from the text space
        would have to place more concepts than it has dimensions). HF states: one vector per hashtag; the image
        attention's query MLP maps it."""
        tags, tag_mask = batch["tags"], batch["tag_mask"]
        if self.cfg.text_kind == "chars":
            B, H, L = tags.shape
            flat = tags.reshape(B * H, L)
            states = self.chars(flat)
            w = masked_softmax(self.tag_salience(states).squeeze(-1), flat != 0)
            out = {"text": self.tag_proj(torch.einsum("nl,nld->nd", w, states).view(B, H, -1))}
            if self.cfg.use_image:
                out["image"] = torch.einsum("nl,nlm->nm", w, self.char_image(flat)).view(B, H, -1)
        else:
            h = self.tag_proj(self.tag_in(tags.float()))
            out = {"text": h, "image": h}
        return out, tag_mask

    def content(self, batch: Batch) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Keys per modality: ``[(text states [B, Lt, d], mask), (image regions [B, R, Di], mask)]`` (image only if
        used; regions go in raw — each modality's attention maps its own keys)."""
        text, t_mask = self.encode_text(batch)
        blocks = [(text, t_mask)]
        if self.cfg.use_image:
            blocks.append((batch["image"], batch["image_mask"]))
        return blocks

    def forward(self, batch: Batch) -> torch.Tensor:
        cfg = self.cfg
        blocks = self.content(batch)
        queries, q_mask = self.encode_hashtags(batch)
        B = q_mask.shape[0]
        side, weights = [], []
        if cfg.guidance == "hashtag":
            has_tag = q_mask.any(1)
            qm = q_mask.clone()
            qm[~has_tag, 0] = True
            best = []
            for name, (keys, km) in zip(self.modalities, blocks):
                # a post without hashtags asks the generic question instead, so its content is still pooled
                tags = queries[name]
                q = torch.where(has_tag[:, None, None], tags, self.generic_query[name].expand_as(tags))
                attended, w, cos = self.attention[name](q, qm, keys, km)
                side.append(self.squeeze[name](attended))
                weights.append(w)
                best.append(self._best(cos, w, q_mask))
            side += best
            self.last_best = torch.cat(best, 1)
        else:
            for name, (keys, km) in zip(self.modalities, blocks):
                if cfg.guidance == "self":
                    q = self.generic_query[name].expand(B, 1, -1)
                    attended, w, _ = self.attention[name](q, torch.ones(B, 1, dtype=torch.bool), keys, km)
                else:
                    w = (km.float() / km.float().sum(1, keepdim=True).clamp(min=1)).unsqueeze(1)
                    attended = torch.einsum("bqn,bnd->bd", w, self.attention[name].v(keys))
                side.append(self.squeeze[name](attended))
                weights.append(w)
            tm = q_mask.unsqueeze(-1).float()
            side.append(self.squeeze["hashtags"]((queries["text"] * tm).sum(1) / tm.sum(1).clamp(min=1)))
        self.last_weights = torch.cat(weights, -1)
        self.last_keys = {
            "n_text": blocks[0][0].shape[1],
            "n_image": blocks[1][0].shape[1] if cfg.use_image else 0,
        }
        side.append((batch["context"] - self.ctx_mu) / self.ctx_sd)
        if cfg.use_demographics:
            side.append(batch["demo"])
        if cfg.use_sentiment:
            side.append(batch["sent"])
        x = torch.cat(side, 1)
        return (self.head(x) + self.linear(x)).squeeze(-1)

    @staticmethod
    def _best(cos: torch.Tensor, weights: torch.Tensor, q_mask: torch.Tensor) -> torch.Tensor:
        """``[B, 1]``: how well the best-matching hashtag is matched by the content — per hashtag the
        attention-weighted cosine (a soft max over keys, so every key gets gradient, not only the argmax), then
        the max over real hashtags; 0 for a post without hashtags."""
        per_tag = (weights * cos).sum(-1).masked_fill(~q_mask, -2.0)  # [B, H]
        m = per_tag.max(1, keepdim=True).values
        return torch.where(m < -1.5, torch.zeros_like(m), m)


def config_dict(cfg: NarratorConfig) -> dict:
    """The config as a plain dict (to print or save beside results)."""
    return asdict(cfg)
