"""Read upstream's ``tensorflow_serving/tools/docker`` files and compare them with the release table.

Pure text parsing: no Docker, no network. ``read_release`` turns one tag's
folder (``Dockerfile``, ``Dockerfile.gpu``, ``Dockerfile.devel``,
``Dockerfile.devel-gpu``, ``Dockerfile.devel-mkl``, ``setup.sources.sh``,
``.bazelrc``) into the same fields as a ``BaseImages`` row; ``compare_table``
reports every field of every row that differs. ``FIELD_SOURCES`` says where
each field is read from, so a mismatch names the upstream file and line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from tfsops.build.plan import VERSION_TABLE, BaseImages

# field -> "file: line pattern" (what read_release parses; mirrors BaseImages' comments).
FIELD_SOURCES: dict[str, str] = {
    "ubuntu": "Dockerfile: FROM ubuntu:<ubuntu>",
    "ubuntu_digest": "Dockerfile: FROM ubuntu:<ubuntu>@<digest>",
    "codename": "setup.sources.sh: llvm-toolchain-<codename>-17 (none: from the ubuntu version)",
    "cuda_base": "Dockerfile.gpu: FROM nvidia/cuda:<...> (last FROM)",
    "cuda": "Dockerfile.gpu: ENV CUDA=<cuda>",
    "cudnn": "Dockerfile.gpu: ENV CUDNN_VERSION=<cudnn>",
    "tensorrt": "Dockerfile.gpu: ENV TF_TENSORRT_VERSION=<tensorrt>",
    "tensorrt_package": "Dockerfile.devel-gpu: libnvinfer8=<version>",
    "nccl_package": "Dockerfile.devel-gpu: libnccl2=<version>",
    "cuda_compat": "Dockerfile.gpu: cuda-compat-<cuda> in apt-get install",
    "bazel": "Dockerfile.devel: ENV BAZEL_VERSION <bazel>",
    "python": "Dockerfile.devel: update-alternatives --install /usr/bin/python3 python3 "
    "/usr/bin/python<python>",
    "deadsnakes": "Dockerfile.devel: add-apt-repository ppa:deadsnakes/ppa",
    "compilers": "Dockerfile.devel: gcc-N / g++-N in apt-get install",
    "kokoro_cc": "Dockerfile.devel: --config=kokoro, and .bazelrc: build:kokoro --action_env=CC=",
    "gpu_config": "Dockerfile.devel-gpu: bazel build ... --config=<gpu_config>",
    "cuda_capabilities": ".bazelrc: build:<gpu_config> ...TF_CUDA_COMPUTE_CAPABILITIES=",
    "tensorrt_enabled": ".bazelrc: build:cuda_clang --repo_env TF_NEED_TENSORRT= "
    "(else Dockerfile.devel-gpu: ENV TF_NEED_TENSORRT)",
    "hermetic_cuda": ".bazelrc: HERMETIC_CUDA_VERSION=",
    "hermetic_cudnn": ".bazelrc: HERMETIC_CUDNN_VERSION=",
    "mkl_options": "Dockerfile.devel-mkl: ARG TF_SERVING_BUILD_OPTIONS=",
    "mkl_iomp5": "Dockerfile.devel-mkl: RUN cp -rp <path>/libiomp5.so /usr/local/lib/",
}
# Fields that are not read from upstream's files (see BaseImages).
NOT_FROM_UPSTREAM = frozenset({"first", "tag", "min_driver"})
_CODENAMES = {"18.04": "bionic", "20.04": "focal", "22.04": "jammy", "24.04": "noble"}


@dataclass(frozen=True)
class Mismatch:
    """One table value that upstream's files at ``tag`` contradict."""

    tag: str
    field: str
    ours: Any
    upstream: Any
    source: str

    def __str__(self) -> str:
        return (
            f"{self.tag} {self.field}: table {self.ours!r}, upstream {self.upstream!r} "
            f"({self.source})"
        )


# -- Dockerfile text ----------------------------------------------------------------


def logical_lines(text: str) -> list[str]:
    """Dockerfile lines with comments dropped and ``\\`` continuations joined."""
    out: list[str] = []
    current = ""
    for raw in text.splitlines():
        if raw.strip().startswith("#"):
            continue  # also inside a continuation, as Docker does
        line = raw.rstrip()
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        out.append((current + line).strip())
        current = ""
    if current.strip():
        out.append(current.strip())
    return [line for line in out if line]


def variables(text: str) -> dict[str, str]:
    """``ENV``/``ARG`` defaults of a Dockerfile (``ENV K=V``, ``ENV K V``, ``ARG K=V``)."""
    found: dict[str, str] = {}
    for line in logical_lines(text):
        m = re.match(r"^(?:ENV|ARG)\s+([A-Za-z_][A-Za-z0-9_]*)(?:=|\s+)(.*)$", line)
        if m:
            found[m.group(1)] = m.group(2).strip().strip("'\"")
    return found


def _expand(token: str, env: Mapping[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        return env.get(m.group(1) or m.group(2), m.group(0))

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", sub, token)


def apt_packages(text: str) -> dict[str, str | None]:
    """Every package an ``apt-get install`` in the file installs -> its pinned version (or None)."""
    env = variables(text)
    packages: dict[str, str | None] = {}
    for line in logical_lines(text):
        for segment in line.split("apt-get install")[1:]:
            for raw in segment.split():
                if raw in ("&&", ";", "|", "||"):
                    break
                token = raw.rstrip(";")
                if token and not token.startswith("-"):
                    name, _, pin = _expand(token, env).partition("=")
                    packages[name] = pin or None
                if raw.endswith(";"):
                    break
    return packages


def _search(pattern: str, text: str, group: int = 1) -> str | None:
    m = re.search(pattern, text, re.M)
    return m.group(group) if m else None


def _last(pattern: str, text: str) -> re.Match[str] | None:
    matches = list(re.finditer(pattern, text, re.M))
    return matches[-1] if matches else None


def _read(folder: Path, name: str) -> str | None:
    path = folder / name
    return path.read_text(encoding="utf-8") if path.is_file() else None


def read_release(folder: Path) -> dict[str, Any]:
    """The release-table fields as upstream's files in ``folder`` (one tag) state them."""
    cpu = _read(folder, "Dockerfile") or ""
    gpu = _read(folder, "Dockerfile.gpu") or ""
    devel = _read(folder, "Dockerfile.devel") or ""
    devel_gpu = _read(folder, "Dockerfile.devel-gpu") or ""
    devel_mkl = _read(folder, "Dockerfile.devel-mkl")
    sources = _read(folder, "setup.sources.sh")
    bazelrc = _read(folder, ".bazelrc") or ""

    facts: dict[str, Any] = {}
    base = _last(r"^FROM\s+ubuntu:([0-9.]+)(@sha256:[0-9a-f]+)?", cpu)
    facts["ubuntu"] = base.group(1) if base else None
    facts["ubuntu_digest"] = base.group(2)[1:] if base and base.group(2) else None
    codename = _search(r"llvm-toolchain-([a-z]+)-\d+", sources or "")
    facts["codename"] = codename or _CODENAMES.get(facts["ubuntu"] or "")
    cuda_base = _last(r"^FROM\s+(nvidia/cuda:\S+)", gpu)
    facts["cuda_base"] = cuda_base.group(1) if cuda_base else None
    gpu_env = variables(gpu)
    facts["cuda"] = gpu_env.get("CUDA")
    facts["cudnn"] = gpu_env.get("CUDNN_VERSION")
    facts["tensorrt"] = gpu_env.get("TF_TENSORRT_VERSION")
    devel_gpu_packages = apt_packages(devel_gpu)
    facts["tensorrt_package"] = devel_gpu_packages.get("libnvinfer8")
    facts["nccl_package"] = devel_gpu_packages.get("libnccl2")
    facts["cuda_compat"] = any(p.startswith("cuda-compat-") for p in apt_packages(gpu))
    facts["bazel"] = variables(devel).get("BAZEL_VERSION")
    facts["python"] = _search(
        r"--install /usr/bin/python3 python3 /usr/bin/python(\d+\.\d+)", devel
    )
    facts["deadsnakes"] = "ppa:deadsnakes/ppa" in devel
    facts["compilers"] = tuple(p for p in apt_packages(devel) if re.fullmatch(r"g(cc|\+\+)-\d+", p))
    kokoro = "--config=kokoro" in devel
    cc = _search(r'^build:kokoro\s+--action_env=CC="?([^"\s]+)"?', bazelrc)
    facts["kokoro_cc"] = cc if kokoro else None
    gpu_config = _search(r"bazel build .*?--config=(cuda\w*)", " ".join(logical_lines(devel_gpu)))
    facts["gpu_config"] = gpu_config
    facts["cuda_capabilities"] = _search(
        rf'^build:{gpu_config}\s+--\w+_env[= ]TF_CUDA_COMPUTE_CAPABILITIES="?([^"\s]+)"?', bazelrc
    )
    need_trt = _search(r"^build:cuda_clang\s+--repo_env[= ]TF_NEED_TENSORRT=(\d)", bazelrc)
    if need_trt is None:
        need_trt = variables(devel_gpu).get("TF_NEED_TENSORRT")
    facts["tensorrt_enabled"] = None if need_trt is None else need_trt == "1"
    facts["hermetic_cuda"] = _search(r'HERMETIC_CUDA_VERSION="?([^"\s]+)"?', bazelrc)
    facts["hermetic_cudnn"] = _search(r'HERMETIC_CUDNN_VERSION="?([^"\s]+)"?', bazelrc)
    if devel_mkl is None:
        facts["mkl_options"] = facts["mkl_iomp5"] = None
    else:
        facts["mkl_options"] = variables(devel_mkl).get("TF_SERVING_BUILD_OPTIONS")
        facts["mkl_iomp5"] = _search(r"cp -rp (\S+/libiomp5\.so) /usr/local/lib/?", devel_mkl)
    return facts


def compare_row(row: BaseImages, folder: Path) -> list[Mismatch]:
    """Every field of ``row`` that upstream's files in ``folder`` contradict."""
    upstream = read_release(folder)
    out: list[Mismatch] = []
    for f in fields(row):
        if f.name in NOT_FROM_UPSTREAM:
            continue
        ours = getattr(row, f.name)
        theirs = upstream.get(f.name)
        if ours != theirs:
            out.append(Mismatch(row.tag, f.name, ours, theirs, FIELD_SOURCES[f.name]))
    return out


def compare_table(root: Path, table: Sequence[BaseImages] = VERSION_TABLE) -> list[Mismatch]:
    """Compare every row with ``root/<row.tag>/``; a missing folder is a mismatch too."""
    out: list[Mismatch] = []
    for row in table:
        folder = root / row.tag
        if not folder.is_dir():
            out.append(Mismatch(row.tag, "tag", row.tag, None, f"{folder} is missing"))
            continue
        out.extend(compare_row(row, folder))
    return out


# -- rendered Dockerfiles against upstream's --------------------------------------------


@dataclass(frozen=True)
class PackageGaps:
    missing: tuple[str, ...]  # upstream installs it, tfsops does not (and it is no exception)
    pins: tuple[tuple[str, str | None, str], ...]  # (package, ours, upstream's pin) that differ

    @property
    def ok(self) -> bool:
        return not self.missing and not self.pins


def package_gaps(ours: str, upstream: str, exceptions: Iterable[str] = ()) -> PackageGaps:
    """What upstream's Dockerfile installs that ours does not, or pins differently.

    Upstream's unpinned packages may be pinned by tfsops (to what the devel
    image builds against); upstream's pins must be the same.
    """
    mine = apt_packages(ours)
    theirs = apt_packages(upstream)
    skip = set(exceptions)
    missing = tuple(p for p in theirs if p not in mine and p not in skip)
    pins = tuple(
        (p, mine[p], pin)
        for p, pin in theirs.items()
        if pin is not None and p in mine and mine[p] != pin
    )
    return PackageGaps(missing=missing, pins=pins)


# Packages upstream's Dockerfiles install that tfsops's deliberately do not, with the reason,
# by upstream file name. Everything else upstream installs, tfsops installs too.
_DEVEL_EXCEPTIONS = {
    "mlocate": "an interactive file search; nothing in the build runs it",
    "openjdk-8-jdk": "bazel's release binary bundles its own JDK; tfsops installs "
    "openjdk-11-jdk-headless only",
    "openjdk-8-jre-headless": "bazel's release binary bundles its own JDK",
    "openjdk-11-jdk": "tfsops installs openjdk-11-jdk-headless (no GUI libraries)",
    "openjdk-11-jre-headless": "part of openjdk-11-jdk-headless",
    "python-dev": "Python 2 headers; nothing in the build uses Python 2",
    "python-distutils-extra": "Python 2 tooling; nothing in the build uses Python 2",
    "software-properties-common": "add-apt-repository: tfsops installs it only where it adds "
    "the deadsnakes PPA (upstream's releases on focal)",
}
_SERVING_GPU_EXCEPTIONS = {
    "build-essential": "a compiler toolchain: the serving image runs a prebuilt binary",
    "curl": "used by upstream only to fetch setup.sources.sh while building",
    "libfreetype6-dev": "font headers: the model server does not load FreeType",
    "pkg-config": "a build tool: the serving image compiles nothing",
    "software-properties-common": "add-apt-repository: the serving image adds no PPA",
    "unzip": "a build tool: the serving image unpacks nothing",
}
PACKAGE_EXCEPTIONS: dict[str, dict[str, str]] = {
    "Dockerfile": {},
    "Dockerfile.mkl": {},
    "Dockerfile.gpu": _SERVING_GPU_EXCEPTIONS,
    "Dockerfile.devel": _DEVEL_EXCEPTIONS,
    "Dockerfile.devel-mkl": _DEVEL_EXCEPTIONS,
    "Dockerfile.devel-gpu": _DEVEL_EXCEPTIONS,
}
