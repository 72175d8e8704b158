"""NARRATOR: a hashtag-guided attentive network for multimodal post popularity (arXiv 2412.10737).

No official code exists; the component choices here are ours (docs/methods.md#narrator). Hashtags act as *queries* over the
post's content — text character states and image region features, one attention per modality — because a hashtag
says what the post claims to be about, and what matters for popularity is whether the content shows it. Scores
are **cosine** similarities times a learned scale, so a hashtag and a region match by direction, not by norm, and
the best match per modality is a bounded number the regressor reads directly. The attended content (through a
narrow bottleneck), those best-match scores, face demographics, hashtag sentiment and a context (user prior,
posting month, hashtag and tag counts) are fused by an MLP plus a linear path, trained with MSE.

What made the match learnable (each measured on the world, see notebook 09): a hashtag is an *attentive* pooling
of its characters (the concept's characters outweigh the template's); text queries and keys share the char
encoder and start from identity maps, so a hashtag matches the characters it shares with the title at step 0;
image keys are the raw region vectors (identity start) and the image query is a per-character region-space
embedding initialised at its image co-occurrence centroid (:func:`init_char_image`, training posts, no labels).

Ablations (:class:`NarratorConfig`): ``guidance="self"`` (one learned query per modality, self-attentive pooling)
and ``guidance="mean"`` (masked mean pooling) still *see* the hashtags — their pooled vector goes to the head — so
the difference to ``"hashtag"`` is the guidance itself; ``use_image``, ``use_demographics`` and ``use_sentiment``
drop those inputs (:attr:`NarratorModel.fusion_width` says by how much).

Text goes through a char embedding and one residual convolution — 33 µs per post per training step at d=32 against
391 µs for the first draft's one-layer Transformer at d=64 (2 CPU threads), and enough to spell a 1–3 character
concept name — or through a frozen Hugging Face encoder's precomputed states (``text_kind="states"``, see
``narrator_features.HFTextEncoder``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn
from tqdm.auto import tqdm

from .narrator_features import CONTEXT_FEATURES, DEMO_FEATURES

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
    char_dropout: float = 0.0  # training only: share of text characters replaced by UNK (against memorising posts)
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

    def __init__(self, d_query: int, d_key: int, d_out: int, match_dim: int, dropout: float = 0.0,
                 init_scale: float = 10.0, query_mlp: bool = False):
        super().__init__()
        self.q: nn.Module = (nn.Sequential(nn.Linear(d_query, 2 * d_query), nn.GELU(), nn.Linear(2 * d_query, match_dim))
                             if query_mlp else nn.Linear(d_query, match_dim))
        self.k, self.v = nn.Linear(d_key, match_dim), nn.Linear(d_key, d_out)
        with torch.no_grad():
            for lin in (self.q, self.k):
                if isinstance(lin, nn.Linear) and lin.in_features == lin.out_features:
                    lin.weight.copy_(torch.eye(lin.in_features))
                    lin.bias.zero_()
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_scale)))
        self.drop = nn.Dropout(dropout)

    def forward(self, queries: torch.Tensor, q_mask: torch.Tensor, keys: torch.Tensor, k_mask: torch.Tensor
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
        self.attention = nn.ModuleDict({"text": HashtagGuidedAttention(d, d, d, d, cfg.dropout, cfg.init_scale)})
        self.generic_query = nn.ParameterDict({"text": nn.Parameter(torch.randn(d) * 0.1)})
        if cfg.use_image:
            d_q = self.image_match if chars else d
            self.attention["image"] = HashtagGuidedAttention(d_q, cfg.image_dim, d, self.image_match, cfg.dropout,
                                                             cfg.init_scale, query_mlp=not chars)
            self.generic_query["image"] = nn.Parameter(torch.randn(d_q) * 0.1)
        # attended vectors are near-unique per post (weighted sums of noisy region features and char states); a
        # narrow bottleneck keeps the head from memorising each post's noise through them
        self.squeeze = nn.ModuleDict({m: nn.Sequential(nn.Linear(d, cfg.content_dim), nn.Dropout(cfg.content_dropout))
                                      for m in (*self.modalities, "hashtags")})
        self.head = nn.Sequential(nn.Linear(self.fusion_width, 2 * d), nn.GELU(), nn.Dropout(cfg.dropout),
                                  nn.Linear(2 * d, 1))
        # popularity is mostly additive in these features, so a linear path beside the MLP learns it with less data
        self.linear = nn.Linear(self.fusion_width, 1)
        self.register_buffer("y_mu", torch.tensor(0.0))
        self.register_buffer("y_sd", torch.tensor(1.0))
        self.register_buffer("ctx_mu", torch.zeros(cfg.n_context))
        self.register_buffer("ctx_sd", torch.ones(cfg.n_context))
        self.last_weights: torch.Tensor | None = None
        self.last_keys: dict[str, int] = {}
        self.last_best: torch.Tensor | None = None  # [B, n_modalities] best-match scores (hashtag guidance only)

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
        return (c.content_dim * len(self.modalities) + guided + c.n_context + (c.n_demo if c.use_demographics else 0)
                + (3 if c.use_sentiment else 0))

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
        self.last_keys = {"n_text": blocks[0][0].shape[1], "n_image": blocks[1][0].shape[1] if cfg.use_image else 0}
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


# ------------------------------------------------------------------------------------------------ training
def subset(batch: Batch, idx: torch.Tensor | slice | np.ndarray, device: str | torch.device | None = None
           ) -> dict[str, torch.Tensor]:
    """The rows ``idx`` of every tensor in an encoded batch (moved to ``device`` if given; HF states stored in
    half precision come back as float32)."""
    if isinstance(idx, np.ndarray):
        idx = torch.from_numpy(idx)
    out = {k: v[idx] for k, v in batch.items()}
    out = {k: v.float() if v.dtype in (torch.float16, torch.bfloat16) else v for k, v in out.items()}
    return {k: v.to(device) for k, v in out.items()} if device is not None else out


def regression_metrics(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """MSE, MAE and Spearman's rank correlation (SRC, the SMP Challenge's headline metric)."""
    pred, y = np.asarray(pred, dtype=np.float64), np.asarray(y, dtype=np.float64)
    src = stats.spearmanr(pred, y).statistic if np.std(pred) > 0 and np.std(y) > 0 else float("nan")
    return {"mse": float(np.mean((pred - y) ** 2)), "mae": float(np.mean(np.abs(pred - y))), "src": float(src)}


@dataclass
class TrainConfig:
    """AdamW with a linear warm-up and cosine decay; the best epoch on validation MSE is kept."""

    epochs: int = 15
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup: float = 0.05  # fraction of steps
    patience: int | None = None  # epochs without a better validation MSE before stopping; None: run them all
    image_lr_mult: float = 3.0
    cooccurrence_init: bool = True  # start each character's region embedding at its image co-occurrence centroid
    seed: int = 0
    progress: bool = True
    device: str = "cpu"  # "cuda" where there is one; the data stay on the CPU, batches move


def _context_stats(context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mu, sd = torch.zeros(context.shape[1]), torch.ones(context.shape[1])
    present = context[:, 1] == 0
    if present.any():
        mu[0] = context[present, 0].mean()
        sd[0] = context[present, 0].std().clamp(min=1e-6) if present.sum() > 1 else torch.tensor(1.0)
    return mu, sd


@torch.no_grad()
def init_char_image(model: NarratorModel, train: Batch, min_count: int = 3) -> int:
    """Start ``char_image[c]`` at the direction in which images of training posts with ``c`` in a hashtag differ
    from the average image: ``normalise(mean_{posts ∋ c} mean_r region − mean_posts mean_r region)``.

    Why: a hashtag's concept co-occurs with images that show it, so this centroid already points roughly where
    the concept lies among region features; learning it from the regression loss alone is slow (the match is
    one term of many in the target). Uses training images and hashtags only, never labels. Characters seen
    fewer than ``min_count`` times keep their random start. Returns how many rows were set.
    """
    if model.cfg.text_kind != "chars" or not model.cfg.use_image or model.image_match != model.cfg.image_dim:
        return 0
    img, im = train["image"], train["image_mask"].unsqueeze(-1).float()
    has = im.sum((1, 2)) > 0
    if not has.any():
        return 0
    post = (img * im).sum(1) / im.sum(1).clamp(min=1)  # [N, Di]
    centred = torch.where(has[:, None], post - post[has].mean(0), torch.zeros_like(post))
    ids = train["tags"] * train["tag_mask"].unsqueeze(-1)  # [N, H, L]; masked hashtags → PAD
    n, h, length = ids.shape
    flat = ids.reshape(n, h * length)
    owner = torch.arange(n).unsqueeze(1).expand_as(flat)
    keep = (flat > 1) & has[:, None]
    sums = torch.zeros(model.char_image.num_embeddings, centred.shape[1])
    counts = torch.zeros(model.char_image.num_embeddings)
    sums.index_add_(0, flat[keep], centred[owner[keep]])
    counts.index_add_(0, flat[keep], torch.ones(int(keep.sum())))
    rows = (counts >= min_count).nonzero().squeeze(1)
    model.char_image.weight[rows] = nn.functional.normalize(sums[rows] / counts[rows, None], dim=-1)
    return len(rows)


def _param_groups(model: NarratorModel, tcfg: TrainConfig) -> list[dict]:
    """The per-character region embeddings learn with ``image_lr_mult`` × the learning rate and no weight decay:
    each character only gets gradient from the few posts whose hashtags contain it, and decay would pull the
    rarely seen concepts back to zero."""
    fast = [p for n, p in model.named_parameters() if n.startswith("char_image")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("char_image")]
    groups = [{"params": rest}]
    if fast:
        groups.append({"params": fast, "lr": tcfg.lr * tcfg.image_lr_mult, "weight_decay": 0.0})
    return groups


def train_narrator(cfg: NarratorConfig, train: Batch, val: Batch, tcfg: TrainConfig | None = None
                   ) -> tuple[NarratorModel, list[dict]]:
    """MSE training; returns the model at its best validation-MSE epoch and the per-epoch history.

    The target and the user prior are standardised on the training set (buffers in the model, undone in
    :func:`predict`), so one learning rate works for any popularity scale. Rows with a NaN label are skipped.
    """
    tcfg = tcfg or TrainConfig()
    keep = ~torch.isnan(train["y"])
    train = subset(train, keep.nonzero().squeeze(1))
    torch.manual_seed(tcfg.seed)
    model = NarratorModel(cfg)
    model.y_mu.fill_(float(train["y"].mean()))
    model.y_sd.fill_(float(train["y"].std().clamp(min=1e-6)))
    mu, sd = _context_stats(train["context"])
    model.ctx_mu.copy_(mu)
    model.ctx_sd.copy_(sd)
    if tcfg.cooccurrence_init:
        init_char_image(model, train)
    model.to(tcfg.device)
    opt = torch.optim.AdamW(_param_groups(model, tcfg), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    n = len(train["y"])
    steps = tcfg.epochs * math.ceil(n / tcfg.batch_size)
    warm = max(1, int(tcfg.warmup * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    g = torch.Generator().manual_seed(tcfg.seed)
    y_val = val["y"].numpy()
    best, best_state, history, bad = float("inf"), None, [], 0
    bar = tqdm(range(tcfg.epochs), desc=f"NARRATOR {cfg.guidance}", disable=not tcfg.progress, leave=False)
    for epoch in bar:
        model.train()
        perm = torch.randperm(n, generator=g)
        total = 0.0
        for s in range(0, n, tcfg.batch_size):
            b = subset(train, perm[s : s + tcfg.batch_size], tcfg.device)
            loss = nn.functional.mse_loss(model(b), (b["y"] - model.y_mu) / model.y_sd)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += loss.item() * len(b["y"])
        val_m = regression_metrics(predict(model, val), y_val) if len(y_val) else {"mse": float("nan")}
        history.append({"epoch": epoch, "train_loss": total / n, **{f"val_{k}": v for k, v in val_m.items()}})
        if val_m["mse"] < best - 1e-4:
            best, bad = val_m["mse"], 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if tcfg.patience is not None and bad >= tcfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, history


@torch.no_grad()
def predict(model: NarratorModel, batch: Batch, batch_size: int = 1024) -> np.ndarray:
    """Popularity predictions on the label's own scale, ``[n]``."""
    model.eval()
    n = len(batch["y"])
    device = model.y_mu.device
    out = [model(subset(batch, slice(s, s + batch_size), device)) for s in range(0, n, batch_size)]
    return (torch.cat(out) * model.y_sd + model.y_mu).cpu().numpy() if out else np.zeros(0, np.float32)


# ------------------------------------------------------------------------------------------------ experiments
def split_indices(n: int, seed: int, fractions: tuple[float, float] = (0.7, 0.15)) -> tuple[np.ndarray, ...]:
    """Random train / validation / test row indices (a new split per seed, so the CI covers split noise too)."""
    idx = np.random.default_rng([seed, 9]).permutation(n)
    a, b = int(fractions[0] * n), int((fractions[0] + fractions[1]) * n)
    return idx[:a], idx[a:b], idx[b:]


VARIANTS: dict[str, dict] = {
    "NARRATOR (full)": {},
    "w/o hashtag guidance (self-attention)": {"guidance": "self"},
    "w/o hashtag guidance (mean pooling)": {"guidance": "mean"},
    "w/o image": {"use_image": False},
    "w/o demographics": {"use_demographics": False},
    "w/o sentiment": {"use_sentiment": False},
}


def context_baseline(train: Batch, test: Batch, demographics: bool = False, sentiment: bool = False) -> np.ndarray:
    """Least-squares on the context features (user prior, month, hashtag count), optionally + demographics and
    sentiment: what a model gets without reading any text, image or hashtag *content*."""
    def design(b: Batch) -> np.ndarray:
        cols = [b["context"].numpy()]
        if demographics:
            cols.append(b["demo"].numpy())
        if sentiment:
            cols.append(b["sent"].numpy())
        return np.hstack([np.ones((len(b["y"]), 1)), *cols])

    coef, *_ = np.linalg.lstsq(design(train), train["y"].numpy(), rcond=None)
    return design(test) @ coef


def run_ablations(base: NarratorConfig, data: Batch, seeds: Sequence[int], variants: Mapping[str, dict] | None = None,
                  tcfg: TrainConfig | None = None, baseline: bool = True,
                  models: dict[tuple[str, int], NarratorModel] | None = None) -> pd.DataFrame:
    """Train every variant on every seed's split; one row per (variant, seed) with held-out metrics and time.

    Variants are overrides of ``base`` (see :data:`VARIANTS`); the split, initialisation and batch order depend
    only on the seed, so variants are compared on identical data. Choose settings on validation (``val_*``),
    report ``test_*``. ``baseline`` adds the least-squares context baseline; pass a dict as ``models`` to keep
    the trained models, keyed by ``(variant, seed)``.
    """
    variants = VARIANTS if variants is None else variants
    tcfg = tcfg or TrainConfig()
    rows = []
    for seed in seeds:
        tr, va, te = (subset(data, i) for i in split_indices(len(data["y"]), seed))
        if baseline:
            base_pred = context_baseline(tr, te, demographics=True, sentiment=True)
            rows.append({"variant": "linear: context + demographics + sentiment", "seed": seed, "epochs": 0,
                         "seconds": 0.0,
                         **{f"test_{k}": v for k, v in regression_metrics(base_pred, te["y"].numpy()).items()}})
        for name, over in variants.items():
            t = time.perf_counter()
            model, hist = train_narrator(replace(base, **over), tr, va, replace(tcfg, seed=seed))
            if models is not None:
                models[(name, seed)] = model
            val_m = regression_metrics(predict(model, va), va["y"].numpy())
            test_m = regression_metrics(predict(model, te), te["y"].numpy())
            rows.append({"variant": name, "seed": seed, "epochs": len(hist), "seconds": time.perf_counter() - t,
                         **{f"val_{k}": v for k, v in val_m.items()}, **{f"test_{k}": v for k, v in test_m.items()}})
    return pd.DataFrame(rows)


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of a Student-t confidence interval (0 for a single value)."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()) if len(v) else float("nan"), 0.0
    return float(v.mean()), float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))


def summarise(results: pd.DataFrame, metrics: Sequence[str] = ("test_mse", "test_mae", "test_src"),
              reference: str = "NARRATOR (full)") -> pd.DataFrame:
    """``mean ± CI`` per variant over seeds, plus the paired difference in test MSE to ``reference`` (positive:
    the variant is worse), which has a much tighter CI than the raw MSEs because the seeds share splits."""
    out = []
    ref = results[results.variant == reference].set_index("seed")
    for name, g in results.groupby("variant", sort=False):
        row = {"variant": name, "seeds": len(g)}
        for m in metrics:
            mu, ci = mean_ci(g[m])
            row[m.replace("test_", "")] = f"{mu:.3f} ± {ci:.3f}"
        if len(ref) and name != reference:
            diff = g.set_index("seed")["test_mse"] - ref["test_mse"]
            mu, ci = mean_ci(diff.dropna())
            row["Δmse vs full"] = f"{mu:+.3f} ± {ci:.3f}"
        else:
            row["Δmse vs full"] = ""
        if "seconds" in g:
            row["train s"] = round(float(g["seconds"].mean()), 1)
        out.append(row)
    return pd.DataFrame(out).set_index("variant")


# ------------------------------------------------------------------------------------------------ attention figure
@torch.no_grad()
def match_scores(model: NarratorModel, batch: Batch, batch_size: int = 1024) -> np.ndarray:
    """``[n, n_modalities]`` best hashtag–content match per post (text, then image): what the head reads as
    "does the content show what the hashtags claim". Only for ``guidance="hashtag"``; 0 without hashtags."""
    if model.cfg.guidance != "hashtag":
        raise ValueError("match scores exist only with hashtag guidance")
    model.eval()
    out = []
    for s in range(0, len(batch["y"]), batch_size):
        model(subset(batch, slice(s, s + batch_size), model.y_mu.device))
        out.append(model.last_best.cpu())
    return torch.cat(out).numpy()


@torch.no_grad()
def attention_maps(model: NarratorModel, batch: Batch, index: int) -> dict[str, np.ndarray]:
    """For post ``index``: ``weights [Q, N]`` over its keys, with ``text`` / ``image`` column ranges."""
    model.eval()
    model(subset(batch, slice(index, index + 1)))
    w = model.last_weights[0].numpy()
    k = model.last_keys
    return {"weights": w, "n_text": k["n_text"], "n_image": k["n_image"]}


def plot_hashtag_attention(model: NarratorModel, batch: Batch, posts: Sequence[Mapping], encoder, indices: Sequence[int],
                           text_len: int = 48, max_chars: int = 36, themes: Mapping[str, np.ndarray] | None = None):
    """One row per post: the weights each hashtag's query puts on the text characters (left, first ``max_chars``)
    and on the image regions (right); each side sums to 1 per hashtag. ``posts[i]`` is the raw post (hashtag
    names, title; the world's truth when present). With the world's concept ``themes``, the region that shows the
    post's subject is marked ``*`` (the model never sees that label)."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from .. import plots  # noqa: F401, PLC0415 - registers the CJK font (hashtags are Chinese)
    from .narrator_features import post_text  # noqa: PLC0415

    n_img = model.cfg.use_image
    fig, axes = plt.subplots(len(indices), 2 if n_img else 1, figsize=(12, 0.4 + 1.45 * len(indices)), squeeze=False,
                             gridspec_kw={"width_ratios": [7, 1] if n_img else [1]})
    for row, i in enumerate(indices):
        m = attention_maps(model, batch, i)
        post = posts[i]
        tokens = encoder.tokens(post_text(post), text_len)
        n_tok = min(len(tokens), max_chars, m["n_text"])
        tags = [str(h) for h in list(post.get("hashtags") or [])][: m["weights"].shape[0]]
        guided = bool(tags) and model.cfg.guidance == "hashtag"
        rows = list(range(len(tags))) if guided else [0]
        ylabels = [f"#{t}#" for t in tags] if guided else ["(generic query)"]
        ax = axes[row, 0]
        ax.imshow(m["weights"][np.ix_(rows, range(n_tok))], aspect="auto", cmap="viridis", vmin=0)
        ax.set_xticks(range(n_tok), tokens[:n_tok], fontsize=7)
        ax.set_yticks(range(len(ylabels)), ylabels, fontsize=8)
        truth = post.get("truth") or {}
        ax.set_title(f"post {post.get('pid', i)}: popularity {float(post.get('popularity', float('nan'))):.2f}"
                     + (f", true hashtag–image alignment {truth['align']:.2f}" if "align" in truth else ""),
                     fontsize=9, loc="left")
        if n_img:
            ax = axes[row, 1]
            ax.imshow(m["weights"][np.ix_(rows, range(m["n_text"], m["n_text"] + m["n_image"]))], aspect="auto",
                      cmap="magma", vmin=0, vmax=1)
            labels = [f"R{r}" for r in range(m["n_image"])]
            regions = post.get("image_regions")
            if themes is not None and post.get("concept") in themes and regions is not None and len(regions):
                sims = np.asarray(regions, dtype=float) @ themes[post["concept"]]
                labels[int(np.argmax(sims))] += "*"
            ax.set_xticks(range(len(labels)), labels, fontsize=8)
            ax.set_yticks([])
    axes[-1, 0].set_xlabel("text characters (title · caption · tags)")
    if n_img:
        axes[-1, 1].set_xlabel("image regions (* = subject)")
    fig.suptitle("Hashtag-guided attention: where each hashtag looks (each side sums to 1 per hashtag)")
    fig.tight_layout()
    return fig


def plot_ablation_results(results: pd.DataFrame, metric: str = "test_mse", reference: str = "NARRATOR (full)"):
    """Mean ± 95% CI of ``metric`` per variant over seeds (one dot per seed), the reference highlighted."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    names = list(dict.fromkeys(results["variant"]))
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.45 * len(names)))
    for k, name in enumerate(names):
        v = results.loc[results.variant == name, metric].to_numpy(dtype=float)
        mu, ci = mean_ci(v)
        color = "#c44e52" if name == reference else "#4c72b0"
        ax.barh(k, mu, xerr=ci, color=color, alpha=0.8, capsize=3)
        ax.scatter(v, np.full(len(v), k), color="black", s=10, zorder=3)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    label = ("held-out " if metric.startswith("test_") else "") + metric.split("_")[-1].upper()
    ax.set(xlabel=f"{label} (mean ± 95% CI over seeds; dots: seeds)", title="NARRATOR and its ablations")
    fig.tight_layout()
    return fig


def config_dict(cfg: NarratorConfig) -> dict:
    """The config as a plain dict (to print or save beside results)."""
    return asdict(cfg)
