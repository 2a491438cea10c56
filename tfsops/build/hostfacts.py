"""Read this host's CPU and NVIDIA GPU facts (adapter: files and a subprocess).

Parsing is in pure functions (tested with real samples); ``read_host_facts``
does the I/O. Nothing here raises for a missing ``/proc/cpuinfo`` or
``nvidia-smi``: unknown facts stay ``None`` and the checks say so.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from tfsops.build.hostcompat import GpuInfo, HostFacts
from tfsops.build.plan import isa_flags_from_cpuinfo

NVIDIA_SMI_TIMEOUT_S = 10.0
_CUDA_VERSION_RE = re.compile(r"CUDA Version:\s*([0-9]+(?:\.[0-9]+)*)")
_DRIVER_VERSION_RE = re.compile(r"Driver Version:\s*([0-9.]+)")

Runner = Callable[[Sequence[str]], str]  # argv -> stdout; raises OSError / CalledProcessError


def parse_cpuinfo(text: str) -> tuple[frozenset[str] | None, str | None]:
    """``/proc/cpuinfo`` -> (raw flags every CPU has, model name).

    Intersection over processors: a hybrid or mixed machine may schedule the
    server on any of them. ``None`` flags when the file has no x86 ``flags``
    line (e.g. ARM's ``Features``).
    """
    flags: frozenset[str] | None = None
    model: str | None = None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key == "flags":
            these = frozenset(value.split())
            flags = these if flags is None else flags & these
        elif key == "model name" and model is None:
            model = " ".join(value.split()) or None
    return flags, model


def parse_gpu_query(csv_text: str) -> tuple[list[GpuInfo], str | None]:
    """Parse ``nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader``.

    Also accepts the two-column ``name,driver_version`` fallback for drivers
    that lack ``compute_cap``. Returns (GPUs, driver version).
    """
    gpus: list[GpuInfo] = []
    driver: str | None = None
    for line in csv_text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if not line.strip():
            continue
        if len(cells) >= 3:
            name, cap, drv = cells[0], cells[1], cells[2]
        elif len(cells) == 2:
            name, cap, drv = cells[0], "", cells[1]
        else:
            continue
        cap_value = cap if re.fullmatch(r"\d+\.\d+", cap) else None
        gpus.append(GpuInfo(index=len(gpus), name=name, compute_capability=cap_value))
        driver = driver or (drv or None)
    return gpus, driver


def parse_nvidia_smi_banner(text: str) -> tuple[str | None, str | None]:
    """Plain ``nvidia-smi`` output -> (driver version, highest supported CUDA version)."""
    cuda = _CUDA_VERSION_RE.search(text)
    driver = _DRIVER_VERSION_RE.search(text)
    return (driver.group(1) if driver else None), (cuda.group(1) if cuda else None)


def _run(argv: Sequence[str]) -> str:
    done = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S, check=True
    )
    return done.stdout


def read_gpu_facts(
    which: Callable[[str], str | None] = shutil.which, run: Runner = _run
) -> tuple[bool, str | None, str | None, str | None, tuple[GpuInfo, ...]]:
    """(nvidia-smi found, error, driver version, CUDA version, GPUs)."""
    smi = which("nvidia-smi")
    if not smi:
        return False, None, None, None, ()
    try:
        try:
            csv_text = run(
                [smi, "--query-gpu=name,compute_cap,driver_version", "--format=csv,noheader"]
            )
        except subprocess.CalledProcessError:
            # Drivers older than ~510 do not know compute_cap.
            csv_text = run([smi, "--query-gpu=name,driver_version", "--format=csv,noheader"])
        gpus, driver = parse_gpu_query(csv_text)
        banner_driver, cuda = parse_nvidia_smi_banner(run([smi]))
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout or "").strip().splitlines()
        return True, detail[-1] if detail else f"exit status {exc.returncode}", None, None, ()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return True, f"{type(exc).__name__}: {exc}", None, None, ()
    return True, None, driver or banner_driver, cuda, tuple(gpus)


def read_host_facts(
    cpuinfo: Path = Path("/proc/cpuinfo"),
    which: Callable[[str], str | None] = shutil.which,
    run: Runner = _run,
) -> HostFacts:
    """Facts about the machine this process runs on."""
    try:
        raw_flags, model = parse_cpuinfo(cpuinfo.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        raw_flags, model = None, None
    found, error, driver, cuda, gpus = read_gpu_facts(which, run)
    return HostFacts(
        machine=platform.machine() or "unknown",
        cpu_model=model,
        cpu_flags=None if raw_flags is None else isa_flags_from_cpuinfo(raw_flags),
        nvidia_smi=found,
        nvidia_error=error,
        driver_version=driver,
        cuda_version=cuda,
        gpus=gpus,
    )
