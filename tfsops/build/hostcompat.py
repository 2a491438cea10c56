"""Can this image run on this host? Pure comparison of image labels with host facts.

Images built by ``tfsops build`` carry ``io.tfsops.build.*`` labels saying
which CPU instruction sets the binary was compiled for and, for GPU images,
the CUDA version and the GPU architectures it has kernels for. Deploying an
``-mavx512f`` binary on a CPU without AVX-512 ends in "Illegal instruction";
a CUDA 12.5 image on a driver that only supports CUDA 12.2 ends in "CUDA
driver version is insufficient". Checking first turns both into an
explanation before anything starts.

``HostFacts`` is plain data; ``tfsops.build.hostfacts.read_host_facts()``
fills it from ``/proc/cpuinfo`` and ``nvidia-smi``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tfsops.build.plan import (
    ISA_FLAGS,
    LABEL_CPU_FLAGS,
    LABEL_CPU_MODEL,
    LABEL_CUDA_CAPABILITIES,
    LABEL_CUDA_VERSION,
    LABEL_GPU,
    LABEL_PREFIX,
    LABEL_VERSION,
    VERSION_TABLE,
    split_reference,
    upstream_image_labels,
)
from tfsops.errors import InvalidInput

X86_MACHINES = frozenset({"x86_64", "amd64", "i686", "i386"})
_CAP_TOKEN = re.compile(r"^(sm|compute)_(\d{2,3})a?$")
_UPSTREAM_TAG = re.compile(r"^(\d+\.\d+\.\d+)(-gpu)?$")


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    compute_capability: str | None = None  # "8.0"; None when the driver cannot say


@dataclass(frozen=True)
class HostFacts:
    """What a host offers an image (all optional: unknown is not the same as absent)."""

    machine: str = "x86_64"  # platform.machine()
    cpu_model: str | None = None
    cpu_flags: frozenset[str] | None = None  # canonical ISA names (GCC -m spelling); None = unknown
    nvidia_smi: bool = False  # nvidia-smi found on PATH
    nvidia_error: str | None = None  # nvidia-smi present but failed
    driver_version: str | None = None
    # The highest CUDA the driver supports (nvidia-smi's "CUDA Version").
    cuda_version: str | None = None
    gpus: tuple[GpuInfo, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "cpu_model": self.cpu_model,
            "cpu_flags": None
            if self.cpu_flags is None
            else [f for f in ISA_FLAGS if f in self.cpu_flags],
            "nvidia_driver_found": self.nvidia_smi and self.nvidia_error is None,
            "nvidia_error": self.nvidia_error,
            "driver_version": self.driver_version,
            "cuda_version": self.cuda_version,
            "gpus": [
                {"index": g.index, "name": g.name, "compute_capability": g.compute_capability}
                for g in self.gpus
            ],
        }


@dataclass(frozen=True)
class CompatReport:
    problems: tuple[str, ...] = ()  # the image would fail here
    warnings: tuple[str, ...] = ()  # could not check, or works with a caveat
    needs: Mapping[str, Any] = field(default_factory=dict)  # what the labels ask for

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": list(self.problems),
            "warnings": list(self.warnings),
            "needs": dict(self.needs),
        }


def _version_tuple(text: str) -> tuple[int, ...] | None:
    parts = text.strip().split(".")
    if not parts or not all(p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def _capability_number(cc: str) -> int | None:
    m = re.match(r"^(\d{1,2})\.(\d)$", cc.strip())
    return int(m.group(1)) * 10 + int(m.group(2)) if m else None


def _gpu_coverage(cc: int, targets: Sequence[tuple[str, int]]) -> str | None:
    """How a GPU of capability ``cc`` runs the image's kernels: "native", "ptx" or None.

    Real code (``sm_XY``) runs on GPUs of the same major version and an equal
    or higher minor; PTX (``compute_XY``) is JIT-compiled for any GPU >= XY.
    """
    if any(kind == "sm" and n // 10 == cc // 10 and n % 10 <= cc % 10 for kind, n in targets):
        return "native"
    if any(kind == "compute" and n <= cc for kind, n in targets):
        return "ptx"
    return None


def _min_driver_for(cuda: str) -> str | None:
    for row in VERSION_TABLE:
        if row.cuda == cuda:
            return row.min_driver
    return None


def has_build_labels(labels: Mapping[str, str]) -> bool:
    return any(k.startswith(LABEL_PREFIX) for k in labels)


def effective_labels(labels: Mapping[str, str], image_ref: str | None = None) -> dict[str, str]:
    """An image's build labels; for stock ``tensorflow/serving:V[-gpu]``, upstream's equivalent.

    Stock images carry no tfsops labels, but what they need is known
    (``--config=release``: AVX + SSE4.2; GPU: the CUDA of their release).
    Anything else without labels needs nothing we know of.
    """
    if has_build_labels(labels):
        return dict(labels)
    if image_ref:
        repo, tag = split_reference(image_ref)
        repo = repo.removeprefix("docker.io/").removeprefix("index.docker.io/")
        m = _UPSTREAM_TAG.match(tag or "")
        if repo == "tensorflow/serving" and m:
            try:
                return upstream_image_labels(m.group(1), gpu=bool(m.group(2)))
            except InvalidInput:  # a release older than the table: nothing known
                return {}
    return {}


def check_image_compat(
    labels: Mapping[str, str],
    host: HostFacts,
    *,
    devices: Sequence[int] | None = None,
) -> CompatReport:
    """Compare an image's ``io.tfsops.build.*`` labels with a host.

    ``devices`` restricts the GPU checks to the GPUs a deployment will use
    (``None``: all of them). Images without build labels are always ok.
    """
    problems: list[str] = []
    warnings: list[str] = []
    needs: dict[str, Any] = {}

    # -- CPU ------------------------------------------------------------------
    flags_label = labels.get(LABEL_CPU_FLAGS, "")
    wanted = [f.strip() for f in flags_label.split(",") if f.strip()]
    if wanted:
        needs["cpu_flags"] = wanted
        built_on = labels.get(LABEL_CPU_MODEL)
        if host.machine.lower() not in X86_MACHINES:
            problems.append(
                f"image's server is compiled for x86-64 ({','.join(wanted)}) but this host is "
                f"{host.machine}: it would fail with 'exec format error'"
            )
        elif host.cpu_flags is None:
            warnings.append(
                "could not read this host's CPU flags: cannot check that the CPU supports "
                + ",".join(wanted)
            )
        else:
            unknown = [f for f in wanted if f not in ISA_FLAGS]
            missing = [f for f in wanted if f in ISA_FLAGS and f not in host.cpu_flags]
            if missing:
                where = f" (built for {built_on})" if built_on else ""
                problems.append(
                    f"image needs CPU flags {','.join(missing)} which this CPU "
                    f"({host.cpu_model or 'model unknown'}) lacks{where}: the server would crash "
                    "with 'Illegal instruction'; rebuild with --arch portable or a flag list "
                    "this CPU supports"
                )
            if unknown:
                warnings.append(f"cannot check unknown CPU flag label values: {','.join(unknown)}")

    # -- GPU ------------------------------------------------------------------
    if labels.get(LABEL_GPU, "false").lower() == "true":
        image_cuda = labels.get(LABEL_CUDA_VERSION, "")
        needs["gpu"] = True
        needs["cuda_version"] = image_cuda or None
        caps_label = labels.get(LABEL_CUDA_CAPABILITIES, "")
        needs["cuda_capabilities"] = caps_label or None
        what = f"this is a GPU image (CUDA {image_cuda or 'unknown'})"
        if not host.nvidia_smi:
            problems.append(
                f"no NVIDIA driver found (nvidia-smi is not on PATH) and {what}: install the "
                "NVIDIA driver and the NVIDIA Container Toolkit, or deploy a CPU image"
            )
        elif host.nvidia_error:
            problems.append(
                f"nvidia-smi failed ({host.nvidia_error}) and {what}: is the NVIDIA driver loaded?"
            )
        else:
            gpus = list(host.gpus)
            if devices is not None:
                gpus = [g for g in gpus if g.index in set(devices)]
                absent = sorted(set(devices) - {g.index for g in host.gpus})
                if absent:
                    problems.append(
                        f"GPU device(s) {','.join(map(str, absent))} not present (nvidia-smi lists "
                        f"{len(host.gpus)} GPU(s))"
                    )
            if not host.gpus:
                problems.append(f"nvidia-smi lists no GPUs and {what}")
            # Driver vs CUDA: the driver must support at least the image's CUDA.
            image_v = _version_tuple(image_cuda) if image_cuda else None
            host_v = _version_tuple(host.cuda_version) if host.cuda_version else None
            if image_v is None:
                warnings.append(
                    "GPU image without a readable cuda-version label: driver not checked"
                )
            elif host_v is None:
                warnings.append(
                    f"could not read the CUDA version the driver supports: cannot check it against "
                    f"the image's CUDA {image_cuda}"
                )
            elif host_v[:2] < image_v[:2]:
                need_driver = _min_driver_for(image_cuda)
                problems.append(
                    f"the NVIDIA driver {host.driver_version or '(version unknown)'} supports "
                    f"CUDA up to {host.cuda_version}, but the image needs CUDA {image_cuda}"
                    + (f" (driver >= {need_driver})" if need_driver else "")
                    + ": the server would fail with 'CUDA driver version is insufficient for CUDA "
                    "runtime version'; upgrade the driver or use an image built for an older CUDA"
                )
            # Compute capabilities: every GPU needs kernels it can run.
            targets: list[tuple[str, int]] = []
            for token in (t.strip().lower() for t in caps_label.split(",") if t.strip()):
                m = _CAP_TOKEN.match(token)
                if m:
                    targets.append((m.group(1), int(m.group(2))))
                else:
                    warnings.append(f"cannot read CUDA target {token!r} in the image's labels")
            if not targets:
                if caps_label == "" and image_v is not None:
                    warnings.append("GPU image without a cuda-capabilities label: GPUs not checked")
            else:
                for gpu in gpus:
                    label = f"GPU {gpu.index} ({gpu.name}"
                    cc = _capability_number(gpu.compute_capability or "")
                    if cc is None:
                        warnings.append(
                            f"{label}): compute capability unknown (old driver?); cannot check it "
                            f"against the image's {caps_label}"
                        )
                        continue
                    label += f", compute capability {gpu.compute_capability})"
                    coverage = _gpu_coverage(cc, targets)
                    if coverage is None:
                        problems.append(
                            f"{label} is not covered by the image's CUDA targets {caps_label}: "
                            "TF Serving would fail with 'no kernel image is available for "
                            "execution on the device'; rebuild with --cuda-capabilities "
                            f"{gpu.compute_capability}"
                        )
                    elif coverage == "ptx":
                        ptx = max(n for kind, n in targets if kind == "compute" and n <= cc)
                        warnings.append(
                            f"{label} has no precompiled kernels in the image ({caps_label}): "
                            f"slow, not a crash: the driver JIT-compiles the image's compute_{ptx} "
                            "PTX for it when the server starts (minutes, cached afterwards in "
                            "~/.nv/ComputeCache); rebuild with --cuda-capabilities "
                            f"{gpu.compute_capability} for native kernels"
                        )
    if labels.get(LABEL_VERSION):
        needs["tf_serving_version"] = labels[LABEL_VERSION]
    return CompatReport(problems=tuple(problems), warnings=tuple(warnings), needs=needs)


def ensure_image_compatible(
    labels: Mapping[str, str],
    host: HostFacts,
    force: bool,
    *,
    image: str | None = None,
    devices: Sequence[int] | None = None,
) -> list[str]:
    """Refuse an image this host cannot run; deploy calls this before starting a container.

    Returns warnings to show. Without ``force``, raises ``InvalidInput`` (exit 3)
    explaining each problem; with ``force`` the problems come back as warnings.
    ``labels`` are the image's labels (pass the image reference too, so stock
    ``tensorflow/serving`` images are checked as well).
    """
    report = check_image_compat(effective_labels(labels, image), host, devices=devices)
    if report.ok:
        return list(report.warnings)
    if force:
        return [f"ignored (--force): {p}" for p in report.problems] + list(report.warnings)
    name = f"image {image}" if image else "the image"
    if len(report.problems) == 1:
        message = f"{name} cannot run on this host: {report.problems[0]}"
    else:
        message = f"{name} cannot run on this host:\n" + "\n".join(
            f"  - {p}" for p in report.problems
        )
    raise InvalidInput(
        message,
        hint="--force overrides (the container will most likely crash)",
        details={"image": image, **report.to_dict()},
    )


def doctor_section(
    host: HostFacts,
    labels: Mapping[str, str] | None = None,
    *,
    image: str | None = None,
) -> dict[str, Any]:
    """Host CPU/GPU facts for ``tfsops doctor``, plus a check of one image when given.

    ``{"host": {...}, "image": {"ref", "labels", "ok", "problems", "warnings", "needs"} | None}``
    """
    section: dict[str, Any] = {"host": host.to_dict(), "image": None}
    if labels is not None or image is not None:
        effective = effective_labels(labels or {}, image)
        report = check_image_compat(effective, host)
        section["image"] = {
            "ref": image,
            "labels": {k: v for k, v in effective.items() if k.startswith(LABEL_PREFIX)},
            **report.to_dict(),
        }
    return section
