"""``socialalign persona``: a persona for every user (statistical, any OpenAI-compatible server, or a local HF
model) into ``personas.jsonl``, the extractor's resumable cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .common import CommandError, _outputs_dir
from .inputs import Source, load_cases


@dataclass
class PersonaOptions:
    backend: Literal["statistical", "openai", "hf"] = (
        "statistical"  # statistical: offline; openai: any OpenAI-compatible server; hf: a local model
    )
    out_dir: str | None = (
        None  # folder of personas.jsonl, the resumable cache (default outputs/personas/<source>-<backend>)
    )
    posts: int = (
        10  # history posts per user handed to the backend (the most recent; CourseDataConfig.persona_posts)
    )
    max_workers: int = 1  # requests in flight at once (openai: 16-64 suit a vLLM server; hf: keep 1)
    max_attempts: int = 2  # tries per user within one run (a sampled answer sometimes does not parse)
    retry_failed: bool = False  # ask again for users whose earlier attempt is cached as failed
    hf_model: str = ""  # hf backend: local folder or hub id (default: the embedded model)
    device: str = "auto"  # hf backend: auto, cpu, cuda
    limit: int | None = None  # only the first N users (smoke runs; a later run without it does the rest)


def _persona_users(src: Source, limit: int | None) -> tuple[list[Any], Any, str]:
    """(users, world or None, a name for the source)."""
    world = None
    if src.users is not None:
        p = Path(src.users)
        if p.is_dir():
            from socialalign_lib.collect import load_crawl

            users = load_crawl(p).users
        else:
            from socialalign_lib.data.validate import load_users

            users = load_users(p, allow_empty_history=True)
        name = p.stem if p.is_file() else p.name
    elif src.cases is not None:
        seen: dict[str, Any] = {}
        for case in load_cases(src.cases, src.cases_format):
            seen.setdefault(case.user.user_id, case.user)
        users, name = list(seen.values()), Path(src.cases).stem
    else:
        from socialalign_lib.world import generate_world

        world = generate_world(size=src.size, seed=src.seed)
        users, name = list(world.users), f"{src.size}-seed{src.seed}"
    return (users[:limit] if limit is not None else users), world, name


def cmd_persona(c: dict[str, Any]) -> dict[str, Any]:
    """Personas for every user into ``<out>/personas.jsonl`` (``PersonaExtractor``'s cache: re-running resumes and
    calls the backend only for users not done yet)."""
    from socialalign_lib.build.persona.extractor import PersonaExtractor, persona_posts, personas_of
    from socialalign_lib.build.persona.recovery import persona_recovery
    from socialalign_lib.build.persona.statistical import StatisticalPersonaBackend
    from socialalign_lib.data.append import exclusive_output

    opt, src = c["persona"], c["source"]
    users, world, name = _persona_users(src, opt.limit)
    out = Path(opt.out_dir) if opt.out_dir else _outputs_dir() / "personas" / f"{name}-{opt.backend}"
    with exclusive_output(
        out / PersonaExtractor.CACHE_NAME, "persona cache"
    ):  # refuse a second writer before
        pass  # loading a model (the extractor holds the lock for the whole run)
    if opt.backend == "openai":
        from socialalign_lib.build.persona.backends import OpenAIPersonaBackend

        backend: Any = OpenAIPersonaBackend(c["openai"])
    elif opt.backend == "hf":
        from socialalign_lib.build.persona.backends import HFPersonaBackend
        from socialalign_lib.models import load_base_model
        from socialalign_lib.paths import EMBEDDED_MODEL

        model_path = opt.hf_model or str(EMBEDDED_MODEL)
        model, tok = load_base_model(model_path, device=opt.device)
        hf_cfg = c["hf"]
        if hf_cfg.name == "local":
            hf_cfg.name = Path(model_path).name
        backend = HFPersonaBackend(model, tok, hf_cfg)
    else:
        backend = StatisticalPersonaBackend()
    extractor = PersonaExtractor(
        backend, cache_dir=out, max_attempts=opt.max_attempts, retry_failed=opt.retry_failed
    )
    try:
        records = extractor.extract_users(
            users,
            lambda u: persona_posts(u, k=opt.posts),
            progress=c["run"].progress,
            max_workers=opt.max_workers,
        )
    finally:
        if hasattr(backend, "close"):
            backend.close()
    if extractor.stats["unavailable"]:
        raise CommandError(
            f"{extractor.stats['unavailable']} user(s) could not reach the backend and are not cached; "
            "run the same command again to ask them"
        )
    summary: dict[str, Any] = {
        "out": str(extractor.cache_path),
        "users": len(records),
        "ok": sum(r.ok for r in records.values()),
        "failed": sum(not r.ok for r in records.values()),
        "backend": backend.fingerprint,
        "cache_hits": extractor.stats["hits"],
        "backend_calls": extractor.stats["misses"],
    }
    if world is not None:
        summary["recovery"] = {
            k: round(v, 4) for k, v in persona_recovery(personas_of(records), world).items()
        }
    return summary


def _groups_persona() -> dict[str, type]:
    from socialalign_lib.build.persona.backends import HFGenerationConfig, OpenAIConfig

    return {"persona": PersonaOptions, "source": Source, "openai": OpenAIConfig, "hf": HFGenerationConfig}
