"""Run by ``tests/test_ddp.py`` under ``torchrun --nproc_per_node 2``: PAC-LoRA SFT through
``socialllm.train_socialllm`` — the call ``socialalign train`` and the notebooks make — on the HF Trainer's DDP
(gloo on CPU); then every rank writes what the test compares:

* ``rank{R}.pt``: ``{"init": …, "trained": …}``, the trainable parameters (experts and gate MLPs) as initialised
  (re-created the way ``train_socialllm`` seeds them) and as this rank holds them after training;
* ``rank{R}.json``: the loss on a fixed batch before (base model: B = 0) and after training, the Trainer's
  history and the process group the Trainer set up.

Usage: ``torchrun --nproc_per_node 2 tests/ddp_train.py RECORDS_DATASET_DIR OUT_DIR [MAX_STEPS]``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch


def main(data_dir: str, out_dir: str, max_steps: int = 6) -> None:
    torch.set_num_threads(1)
    import torch.distributed as dist
    from datasets import load_from_disk

    from socialalign_lib.build.records.chat import ChatConfig
    from socialalign_lib.pac_lora import get_pac_model
    from socialalign_lib.train import SPAN_KEY, SFTConfig, SpanCollator, tokenize_dataset
    from socialalign_lib.train.config import SocialLLMConfig
    from socialalign_lib.train.socialllm import train_socialllm

    out = Path(out_dir)
    records = load_from_disk(data_dir)
    cfg = SocialLLMConfig(
        method="pac_lora",
        n_experts=3,
        r=4,
        alpha=8,
        dropout=0.0,
        device="cpu",
        sft=SFTConfig(
            max_steps=max_steps,
            per_device_train_batch_size=2,
            learning_rate=5e-3,
            warmup_ratio=0.0,
            logging_steps=1,
            save_steps=10_000,
            lr_scheduler_type="constant",
            seed=0,
        ),
    )

    run = train_socialllm(cfg, records, output_dir=None, progress=False)
    group = {
        "initialized": dist.is_initialized(),
        "backend": dist.get_backend() if dist.is_initialized() else None,
        "rank": dist.get_rank() if dist.is_initialized() else 0,
        "world_size": dist.get_world_size() if dist.is_initialized() else 1,
    }

    from socialalign_lib.models import load_base_model

    base, tok = load_base_model(cfg.base_model, device="cpu")
    probe = SpanCollator(tok.pad_token_id)(
        tokenize_dataset(records.select(range(4)), tok, ChatConfig()).to_list()
    )
    spans = probe.pop(SPAN_KEY)

    def loss(model, **extra) -> float:
        model.eval()
        with torch.no_grad():
            return float(model(**probe, **extra).loss)

    before = loss(base)
    torch.manual_seed(cfg.sft.seed)  # as train_socialllm seeds the adapter's initial weights
    fresh = get_pac_model(load_base_model(cfg.base_model, device="cpu")[0], cfg.peft_config())
    init = {k: v.detach().clone() for k, v in fresh.named_parameters() if v.requires_grad}
    after = loss(run.model, pac_spans=spans)
    trained = {k: v.detach().cpu() for k, v in run.model.named_parameters() if "pac_" in k}
    rank = group["rank"]
    torch.save({"init": init, "trained": trained}, out / f"rank{rank}.pt")
    (out / f"rank{rank}.json").write_text(
        json.dumps({**group, "probe_loss_before": before, "probe_loss_after": after, "history": run.history})
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:4]))
