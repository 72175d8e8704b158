"""Training NARRATOR: batch slicing, AdamW with warm-up and cosine decay, the image-query initialisation at
each character's co-occurrence centroid (:func:`init_char_image`), best-epoch selection on validation MSE, and
prediction on the label's own scale."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats
from torch import nn
from tqdm.auto import tqdm

from .model import Batch, NarratorConfig, NarratorModel


def subset(
    batch: Batch, idx: torch.Tensor | slice | np.ndarray, device: str | torch.device | None = None
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
    return {
        "mse": float(np.mean((pred - y) ** 2)),
        "mae": float(np.mean(np.abs(pred - y))),
        "src": float(src),
    }


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
    cooccurrence_init: bool = (
        True  # start each character's region embedding at its image co-occurrence centroid
    )
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


def train_narrator(
    cfg: NarratorConfig, train: Batch, val: Batch, tcfg: TrainConfig | None = None
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
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
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
