"""runtime.py: passive OpenMP waits before torch loads, and no optional-kernel chatter on import (offline)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from socialalign_lib import runtime
from socialalign_lib.paths import ROOT


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_library_import_sets_passive_waits_before_torch_and_keeps_a_users_choice():
    code = "import socialalign_lib, os, torch; print(os.environ['OMP_WAIT_POLICY'])"
    assert _python(code).stdout.strip() == "PASSIVE"
    assert _python(code, OMP_WAIT_POLICY="ACTIVE").stdout.strip() == "ACTIVE"


def test_cpu_environment_fills_defaults_only():
    env = runtime.cpu_environment({"OMP_WAIT_POLICY": "ACTIVE", "PATH": "/bin"})
    assert env["OMP_WAIT_POLICY"] == "ACTIVE" and env["PATH"] == "/bin"
    assert env["TOKENIZERS_PARALLELISM"] == "false"


def test_no_bitsandbytes_kernel_warning_offline():
    """With the library imported first, importing peft (which imports bitsandbytes) offline prints nothing about
    the optional Hub kernel. Without the library the same import does warn on this machine (when bitsandbytes
    tries the kernel at all: only on CPUs with AVX512-BF16) - so the test can see the warning it removes."""
    quiet = _python("import socialalign_lib.pac_lora", HF_HUB_OFFLINE="1")
    assert quiet.returncode == 0, quiet.stderr
    assert "kernels-community" not in quiet.stderr and "gemm_4bit" not in quiet.stderr, quiet.stderr
    loud = _python("import bitsandbytes", HF_HUB_OFFLINE="1")
    from bitsandbytes.functional import has_avx512bf16

    if has_avx512bf16():
        assert "gemm_4bit_forward" in loud.stderr


def test_other_bitsandbytes_warnings_still_show(caplog):
    runtime.quiet_optional_kernels()
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="socialalign_lib.runtime"):
        logger.warning("Failed to load CPU gemm_4bit_forward from kernels-community: offline")
        logger.warning("libbitsandbytes_cpu.so: cannot open shared object file")
    shown = [r.getMessage() for r in caplog.records if r.name == logger.name]
    assert shown == ["libbitsandbytes_cpu.so: cannot open shared object file"]
    assert any(
        "optional bitsandbytes CPU kernel" in r.getMessage() and r.levelno == logging.DEBUG
        for r in caplog.records
    )
