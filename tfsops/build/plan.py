"""The build plan: a request (arch, GPU, version, tag) -> Dockerfiles and exact build steps.

Pure apart from reading the shipped Dockerfile templates: no Docker, no host
probing (the caller passes what it knows about the build machine in
``BuildHost``). Upstream facts (tensorflow/serving ``tools/docker`` and
``.bazelrc``) that the plan encodes:

- ``--config=release`` = ``--copt=-mavx --copt=-msse4.2`` (upstream's default);
  ``--config=nativeopt`` = ``-march=native -O3``; there is no ``release_gpu``.
- GPU builds use ``--config=cuda_clang`` (defined from 2.15); its default
  ``TF_CUDA_COMPUTE_CAPABILITIES`` differs per release (``VERSION_TABLE``);
  a later ``--repo_env`` on the command line overrides it.
- Two stages: a devel image compiles ``tensorflow_model_server``; the serving
  image copies it from ``TF_SERVING_BUILD_IMAGE``.
- ``VERSION_TABLE`` holds one row per release series, each value read from
  upstream's files at the row's tag (see ``BaseImages``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tfsops.errors import InvalidInput

DEFAULT_VERSION = "2.19.0"
DEFAULT_REPOSITORY = "tfsops/tensorflow-serving"
PLAN_SCHEMA = "tfsops/build-plan/v1"

# Image labels: what the image needs from the host (read back by hostcompat).
LABEL_PREFIX = "io.tfsops.build."
LABEL_VERSION = LABEL_PREFIX + "tf-serving-version"
LABEL_ARCH = LABEL_PREFIX + "arch"
LABEL_BAZEL_OPTIONS = LABEL_PREFIX + "bazel-options"
LABEL_CPU_FLAGS = LABEL_PREFIX + "cpu-flags"
LABEL_CPU_MODEL = LABEL_PREFIX + "cpu-model"
LABEL_GPU = LABEL_PREFIX + "gpu"
LABEL_CUDA_VERSION = LABEL_PREFIX + "cuda-version"
LABEL_CUDNN_VERSION = LABEL_PREFIX + "cudnn-version"
LABEL_CUDA_CAPABILITIES = LABEL_PREFIX + "cuda-capabilities"
LABEL_DEVEL_IMAGE = LABEL_PREFIX + "devel-image"
LABEL_MKL = LABEL_PREFIX + "mkl"

# x86 ISA extensions a user may target, by GCC ``-m`` name -> /proc/cpuinfo name.
# Order matters: labels and tags list flags in this order.
ISA_FLAGS: dict[str, str] = {
    "sse3": "pni",
    "ssse3": "ssse3",
    "sse4.1": "sse4_1",
    "sse4.2": "sse4_2",
    "popcnt": "popcnt",
    "avx": "avx",
    "avx2": "avx2",
    "fma": "fma",
    "f16c": "f16c",
    "bmi": "bmi1",
    "bmi2": "bmi2",
    "lzcnt": "abm",
    "movbe": "movbe",
    "aes": "aes",
    "pclmul": "pclmulqdq",
    "avx512f": "avx512f",
    "avx512cd": "avx512cd",
    "avx512bw": "avx512bw",
    "avx512dq": "avx512dq",
    "avx512vl": "avx512vl",
    "avx512vnni": "avx512_vnni",
    "avx512bf16": "avx512_bf16",
    "avx512fp16": "avx512_fp16",
    "avxvnni": "avx_vnni",
    "amx-tile": "amx_tile",
    "amx-int8": "amx_int8",
    "amx-bf16": "amx_bf16",
}
_CPUINFO_TO_ISA = {v: k for k, v in ISA_FLAGS.items()}

# What upstream's ``--config=release`` compiles for.
PORTABLE_CPU_FLAGS: tuple[str, ...] = ("sse4.2", "avx")

_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(-rc\d+)?$")
_CAPABILITY_RE = re.compile(r"^(\d{1,2})\.(\d)$")
_RAW_CAPABILITY_RE = re.compile(r"^(sm|compute)_(\d{2,3})a?$")
# Docker reference grammar, simplified: [registry[:port]/]path[:tag]
_REPO_RE = re.compile(
    r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::\d+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class BaseImages:
    """One TF Serving release series, as upstream's ``tensorflow_serving/tools/docker`` builds it.

    Every value is read from upstream's files at ``tag`` (the comment on each
    field names the file and the line); ``tests/unit/test_build_plan.py``
    re-reads ``shared/reference/upstream-docker/<tag>/`` and compares each row.
    """

    first: tuple[int, int, int]  # first release of the series (MAJOR.MINOR.0)
    tag: str  # the upstream tag whose files the row was read from
    ubuntu: str  # Dockerfile: "FROM ubuntu:<ubuntu>[@sha256:...]" (final stage)
    ubuntu_digest: str | None  # Dockerfile: the "@sha256:..." pin after it, when there is one
    codename: str  # setup.sources.sh: "llvm-toolchain-<codename>-17" (2.14.1 has none: focal)
    cuda_base: str  # Dockerfile.gpu: "FROM nvidia/cuda:..." (final stage)
    cuda: str  # Dockerfile.gpu: "ENV CUDA=<cuda>"
    cudnn: str  # Dockerfile.gpu: "ENV CUDNN_VERSION=<cudnn>"
    tensorrt: str  # Dockerfile.gpu: "ENV TF_TENSORRT_VERSION=<tensorrt>"
    tensorrt_package: str  # Dockerfile.devel-gpu: "libnvinfer8=<tensorrt_package>"
    nccl_package: (
        str | None
    )  # Dockerfile.devel-gpu: "libnccl2=<nccl_package>" (None: not installed)
    cuda_compat: bool  # Dockerfile.gpu: installs "cuda-compat-<cuda>"
    bazel: str  # Dockerfile.devel: "ENV BAZEL_VERSION <bazel>"
    python: (
        str  # Dockerfile.devel: "update-alternatives --install /usr/bin/python3 ... python<python>"
    )
    deadsnakes: bool  # Dockerfile.devel: "add-apt-repository ppa:deadsnakes/ppa"
    compilers: tuple[str, ...]  # Dockerfile.devel: "gcc-10" / "g++-10" in its apt-get install
    kokoro_cc: str | None  # .bazelrc: "build:kokoro --action_env=CC=..." when Dockerfile.devel
    #                        passes --config=kokoro (None: it does not)
    gpu_config: str  # Dockerfile.devel-gpu: "bazel build ... --config=<gpu_config> --copt=-fPIC"
    cuda_capabilities: str  # .bazelrc: "build:<gpu_config> ...TF_CUDA_COMPUTE_CAPABILITIES=..."
    tensorrt_enabled: bool  # .bazelrc: "build:cuda_clang --repo_env TF_NEED_TENSORRT=<0|1>"
    #                         (2.14.1: Dockerfile.devel-gpu "ENV TF_NEED_TENSORRT 1")
    hermetic_cuda: str | None  # .bazelrc: "HERMETIC_CUDA_VERSION=..." (None: not hermetic)
    hermetic_cudnn: str | None  # .bazelrc: "HERMETIC_CUDNN_VERSION=..."
    mkl_options: str | None  # Dockerfile.devel-mkl: ARG TF_SERVING_BUILD_OPTIONS (None: no file)
    mkl_iomp5: str | None  # Dockerfile.devel-mkl: "RUN cp -rp <mkl_iomp5> /usr/local/lib/"
    # Minimum Linux driver for this CUDA toolkit (NVIDIA's CUDA release notes; not in
    # upstream's files).
    min_driver: str

    @property
    def recorded(self) -> str:
        return self.tag

    @property
    def cpu_base(self) -> str:
        return f"ubuntu:{self.ubuntu}"

    @property
    def series(self) -> str:
        return f"{self.first[0]}.{self.first[1]}"


_GCC10 = ("gcc-10", "g++-10")  # installed by upstream's Dockerfile.devel at 2.17-2.19
_MKL = "--config=mkl --config=release"
_IOMP5_HOST_OUT = (
    "/root/.cache/bazel/_bazel_root/*/execroot/tf_serving/bazel-out/host/bin/"
    "external/llvm_openmp/libiomp5.so"
)

_R2_14 = BaseImages(
    first=(2, 14, 0),
    tag="2.14.1",
    ubuntu="20.04",
    ubuntu_digest=None,
    codename="focal",
    cuda_base="nvidia/cuda:11.8.0-base-ubuntu20.04",
    cuda="11.8",
    cudnn="8.6.0.163",
    tensorrt="8.4.3",
    tensorrt_package="8.4.3-1+cuda11.6",
    nccl_package=None,
    cuda_compat=False,
    bazel="6.1.0",
    python="3.9",
    deadsnakes=True,
    compilers=(),
    kokoro_cc=None,
    gpu_config="cuda",  # nvcc; .bazelrc has no cuda_clang config at this tag
    cuda_capabilities="sm_35,sm_50,sm_60,sm_70,sm_75,compute_80",
    tensorrt_enabled=True,
    hermetic_cuda=None,
    hermetic_cudnn=None,
    mkl_options=_MKL,
    mkl_iomp5=_IOMP5_HOST_OUT,
    min_driver="520.61.05",
)
_R2_15 = replace(
    _R2_14,
    first=(2, 15, 0),
    tag="2.15.1",
    cuda_base="nvidia/cuda:12.2.0-base-ubuntu20.04",
    cuda="12.2",
    cudnn="8.9.4.25",
    tensorrt="8.6.1",
    tensorrt_package="8.6.1.6-1+cuda12.0",
    nccl_package="2.18.5-1+cuda12.2",
    bazel="6.4.0",
    gpu_config="cuda_clang",
    cuda_capabilities="sm_50,sm_60,sm_70,sm_80,compute_90",
    min_driver="535.54.03",
)
_R2_18 = replace(
    _R2_15,
    first=(2, 18, 0),
    tag="2.18.1",
    bazel="6.5.0",
    compilers=_GCC10,
    kokoro_cc="/usr/bin/gcc-10",
    tensorrt_enabled=False,
    hermetic_cuda="12.2.0",
    hermetic_cudnn="8.9.4.25",
)

VERSION_TABLE: tuple[BaseImages, ...] = (
    _R2_14,
    _R2_15,
    replace(_R2_15, first=(2, 16, 0), tag="2.16.1"),
    replace(_R2_15, first=(2, 17, 0), tag="2.17.1", compilers=_GCC10, kokoro_cc="/usr/bin/gcc"),
    _R2_18,
    replace(_R2_18, first=(2, 19, 0), tag="2.19.1"),
    BaseImages(
        first=(2, 20, 0),
        tag="2.20.0",
        ubuntu="22.04",
        ubuntu_digest="sha256:eb29ed27b0821dca09c2e28b39135e185fc1302036427d5f4d70a41ce8fd7659",
        codename="jammy",
        cuda_base="nvidia/cuda:12.5.1-base-ubuntu22.04",
        cuda="12.5",
        cudnn="9.3.0.75",
        tensorrt="8.6.1",
        tensorrt_package="8.6.1.6-1+cuda12.0",
        nccl_package="2.25.1-1+cuda12.8",
        cuda_compat=True,
        bazel="7.4.1",
        python="3.10",
        deadsnakes=False,
        compilers=(),
        kokoro_cc=None,
        gpu_config="cuda_clang",
        cuda_capabilities="sm_60,sm_70,sm_80,sm_89,compute_90",
        tensorrt_enabled=False,
        hermetic_cuda="12.5.1",
        hermetic_cudnn="9.3.0",
        mkl_options="--config=mkl --config=release --config=clang_local",
        mkl_iomp5="/tensorflow-serving/bazel-bin/external/llvm_openmp/libiomp5.so",
        min_driver="555.42.02",
    ),
)
# tfsops's GPU Dockerfiles compile with --config=cuda_clang (clang 17 for device code).
GPU_CONFIG = "cuda_clang"


@dataclass(frozen=True)
class BuildRequest:
    """What the user asked for (CLI flags, validated by ``plan_build``)."""

    arch: str = "portable"  # "native" | "portable" | "avx,avx2,..."
    gpu: bool = False
    cuda_capabilities: str | None = None  # "8.0,9.0"
    version: str = DEFAULT_VERSION
    tag: str | None = None
    jobs: int | None = None
    devel_image: str | None = None  # use this devel image; skip step 1
    runtime_base: str | None = None  # serving image's final base (default per version)
    mkl: bool = False  # oneDNN (--config=mkl), as upstream's Dockerfile.devel-mkl


@dataclass(frozen=True)
class BuildHost:
    """What the caller knows about the machine whose engine runs the build."""

    cpu_flags: frozenset[str] | None = None  # canonical ISA names (GCC -m spelling)
    cpu_model: str | None = None
    gpu_capabilities: tuple[str, ...] = ()  # "8.0", from nvidia-smi
    remote_engine: bool = False  # --docker-host / DOCKER_HOST points elsewhere


@dataclass(frozen=True)
class BuildStep:
    """One ``docker build``: everything the engine gets, nothing implicit."""

    name: str  # "devel" | "serving"
    context: str  # folder sent as build context, relative to the plan's folder
    dockerfile: str  # file name inside the context
    buildargs: Mapping[str, str]
    tags: tuple[str, ...]
    labels: Mapping[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "context": self.context,
            "dockerfile": self.dockerfile,
            "buildargs": dict(self.buildargs),
            "tags": list(self.tags),
            "labels": dict(self.labels),
        }

    def docker_cli(self) -> str:
        """The equivalent ``docker build`` command line, for people reading a dry run."""
        parts = ["docker build", f"-f {self.dockerfile}"]
        parts += [f"-t {t}" for t in self.tags]
        parts += [f"--build-arg {_sh_quote(f'{k}={v}')}" for k, v in self.buildargs.items()]
        parts += [f"--label {_sh_quote(f'{k}={v}')}" for k, v in self.labels.items()]
        parts.append(self.context)
        return " \\\n    ".join(parts)


@dataclass(frozen=True)
class BuildPlan:
    version: str
    arch: str  # "native" | "portable" | "list"
    cpu_flags: tuple[str, ...]
    gpu: bool
    cuda_capabilities: str | None
    bases: BaseImages
    build_options: str  # TF_SERVING_BUILD_OPTIONS
    bazel_options: str  # TF_SERVING_BAZEL_OPTIONS
    tag: str
    devel_tag: str  # the devel image the serving step copies from
    runtime_base: str
    labels: Mapping[str, str]
    dockerfiles: Mapping[str, str]  # file name -> text
    steps: tuple[BuildStep, ...]
    warnings: tuple[str, ...] = field(default=())
    mkl: bool = False

    @property
    def builds_devel(self) -> bool:
        return any(s.name == "devel" for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        """``build-plan.json``: the exact steps (Dockerfile texts are separate files)."""
        return {
            "schema": PLAN_SCHEMA,
            "tf_serving_version": self.version,
            "arch": self.arch,
            "cpu_flags": list(self.cpu_flags),
            "release_table_row": self.bases.tag,
            "gpu": self.gpu,
            "mkl": self.mkl,
            "cuda_version": self.bases.cuda if self.gpu else None,
            "cuda_capabilities": self.cuda_capabilities,
            "bazel_options": _join(self.bazel_options, self.build_options),
            "tag": self.tag,
            "devel_image": self.devel_tag,
            "runtime_base": self.runtime_base,
            "labels": dict(self.labels),
            "steps": [s.to_dict() for s in self.steps],
            "warnings": list(self.warnings),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"


# -- validation helpers -------------------------------------------------------


def parse_version(text: str) -> tuple[int, int, int]:
    m = _VERSION_RE.match(text.strip())
    if not m:
        raise InvalidInput(
            f"--version {text!r} is not a TF Serving release tag",
            hint="use MAJOR.MINOR.PATCH, e.g. --version 2.19.0 (or 2.19.0-rc0)",
        )
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def bases_for(version: str) -> tuple[BaseImages, list[str]]:
    """The table row for a release (its MAJOR.MINOR series), and a warning when none records it."""
    v = parse_version(version)
    rows = [r for r in VERSION_TABLE if r.first <= v]
    recorded = ", ".join(r.tag for r in VERSION_TABLE)
    if not rows:
        first = ".".join(map(str, VERSION_TABLE[0].first))
        raise InvalidInput(
            f"--version {version}: tfsops build supports TF Serving {first} and later",
            hint=f"recorded releases: {recorded}",
        )
    row = rows[-1]
    warnings: list[str] = []
    if row.first[:2] != v[:2]:
        warnings.append(
            f"TF Serving {version} is not in tfsops's release table (recorded: {recorded}); "
            f"using the values of {row.tag} ({row.cpu_base}, {row.cuda_base}, bazel "
            f"{row.bazel}): check them against upstream's tools/docker/Dockerfile* and "
            ".bazelrc at that tag"
        )
    return row, warnings


def release_row(version: str) -> BaseImages | None:
    """The table row that records ``version``'s series exactly (None: not recorded)."""
    try:
        row, warnings = bases_for(version)
    except InvalidInput:
        return None
    return None if warnings else row


def normalize_cpu_flags(text: str) -> tuple[str, ...]:
    """``avx,AVX2,-mfma,sse4_1`` -> ``("sse4.1", "avx", "avx2", "fma")`` (canonical order)."""
    wanted: set[str] = set()
    unknown: list[str] = []
    for raw in text.split(","):
        token = raw.strip().lower()
        if not token:
            continue
        name = token[2:] if token.startswith("-m") else token
        name = _CPUINFO_TO_ISA.get(name, name)
        if name in ISA_FLAGS:
            wanted.add(name)
        else:
            unknown.append(raw.strip())
    if unknown:
        raise InvalidInput(
            f"--arch: unknown CPU flag{'s' if len(unknown) > 1 else ''} "
            + ", ".join(repr(u) for u in unknown),
            hint="use native, portable, or a comma-separated list of: " + ",".join(ISA_FLAGS),
            details={"unknown": unknown, "allowed": list(ISA_FLAGS)},
        )
    if not wanted:
        raise InvalidInput("--arch: empty CPU flag list", hint="e.g. --arch avx,avx2,fma")
    return tuple(f for f in ISA_FLAGS if f in wanted)


def isa_flags_from_cpuinfo(raw_flags: Sequence[str] | frozenset[str]) -> frozenset[str]:
    """/proc/cpuinfo flag names -> the canonical ISA names tfsops tracks."""
    return frozenset(_CPUINFO_TO_ISA[f] for f in raw_flags if f in _CPUINFO_TO_ISA)


def _capability_key(token: str) -> int:
    m = _RAW_CAPABILITY_RE.match(token)
    return int(m.group(2)) if m else 0


def cuda_capability_targets(text: str | Sequence[str]) -> str:
    """``"8.0,9.0"`` -> ``"sm_80,sm_90,compute_90"``.

    Each X.Y becomes real GPU code (``sm_XY``); the highest one is also emitted
    as PTX (``compute_XY``), as upstream does, so newer GPUs can JIT-compile it.
    Raw ``sm_XY`` / ``compute_XY`` tokens are passed through unchanged.
    """
    tokens = [t.strip() for t in (text.split(",") if isinstance(text, str) else text)]
    tokens = [t for t in tokens if t]
    if not tokens:
        raise InvalidInput(
            "--cuda-capabilities: empty list", hint="e.g. --cuda-capabilities 8.0,9.0"
        )
    numeric: set[int] = set()
    raw: list[str] = []
    bad: list[str] = []
    for token in tokens:
        m = _CAPABILITY_RE.match(token)
        if m and int(m.group(1)) >= 3:
            numeric.add(int(m.group(1)) * 10 + int(m.group(2)))
        elif _RAW_CAPABILITY_RE.match(token.lower()):
            if token.lower() not in raw:
                raw.append(token.lower())
        else:
            bad.append(token)
    if bad:
        raise InvalidInput(
            "--cuda-capabilities: not a compute capability: " + ", ".join(repr(b) for b in bad),
            hint="use MAJOR.MINOR values such as 7.5,8.0,8.6,9.0 "
            "(nvidia-smi --query-gpu=compute_cap)",
            details={"invalid": bad},
        )
    targets = [f"sm_{n}" for n in sorted(numeric)]
    if numeric:
        targets.append(f"compute_{max(numeric)}")
    merged = [t for t in raw if t not in targets] + targets
    merged.sort(key=lambda t: (t.startswith("compute"), _capability_key(t)))  # PTX last
    return ",".join(merged)


def split_reference(ref: str) -> tuple[str, str | None]:
    """``registry:5000/a/b:tag`` -> (``registry:5000/a/b``, ``tag``); no tag -> None."""
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :]
    return ref, None


def _validate_reference(ref: str, what: str) -> tuple[str, str | None]:
    if "@" in ref:
        raise InvalidInput(f"{what} {ref!r}: digests cannot be tags", hint="use REPOSITORY[:TAG]")
    repo, tag = split_reference(ref)
    if not _REPO_RE.match(repo) or (tag is not None and not _TAG_RE.match(tag)):
        raise InvalidInput(
            f"{what} {ref!r} is not a valid image reference",
            hint="lowercase REPOSITORY[:TAG], e.g. myorg/tf-serving:2.19.0-avx2",
        )
    return repo, tag


def _sh_quote(text: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./:=,@+-]+", text):
        return text
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


# -- the plan -----------------------------------------------------------------


def _default_tag(
    version: str, arch: str, cpu_flags: tuple[str, ...], gpu: bool, mkl: bool = False
) -> str:
    variant = {"portable": "", "native": "native"}.get(arch, "-".join(cpu_flags))
    suffix = "gpu" if gpu else ("mkl" if mkl else "")
    tag = "-".join(p for p in (version, variant, suffix) if p)
    if len(tag) > 128:  # Docker's tag limit; long flag lists get a stable short name
        digest = hashlib.sha256(tag.encode()).hexdigest()[:8]
        tag = "-".join(p for p in (version, f"custom-{digest}", suffix) if p)
    return f"{DEFAULT_REPOSITORY}:{tag}"


def _cudnn_packages(bases: BaseImages) -> tuple[str, str]:
    """(runtime, dev) cuDNN package specs, pinned as upstream's Dockerfile.devel-gpu pins them."""
    if bases.cudnn.startswith("9."):
        major = bases.cuda.split(".")[0]
        return (
            f"libcudnn9-cuda-{major}={bases.cudnn}-1",
            f"libcudnn9-dev-cuda-{major}={bases.cudnn}-1",
        )
    cudnn_major = bases.cudnn.split(".")[0]
    pin = f"{bases.cudnn}-1+cuda{bases.cuda}"
    return f"libcudnn{cudnn_major}={pin}", f"libcudnn{cudnn_major}-dev={pin}"


def gpu_runtime_packages(bases: BaseImages) -> list[str]:
    """The NVIDIA packages of the GPU serving image: those of upstream's Dockerfile.gpu.

    ``cuda-libraries`` carries libnvjitlink (cuSPARSE/cuSOLVER need it from CUDA
    12), ``cuda-nvcc`` the ptxas XLA uses, ``libnvinfer*`` TensorRT. Every
    package is pinned to the version the devel image builds against, also where
    upstream's serving Dockerfile leaves it unpinned (2.20: NCCL, cuDNN, TensorRT).
    """
    cu = bases.cuda.replace(".", "-")
    cudnn, _ = _cudnn_packages(bases)
    trt = bases.tensorrt_package
    packages = [
        f"cuda-command-line-tools-{cu}",
        f"cuda-cupti-{cu}",
        f"cuda-libraries-{cu}",
        f"cuda-nvcc-{cu}",
        f"cuda-nvprune-{cu}",
        f"cuda-nvrtc-{cu}",
        f"libcublas-{cu}",
        cudnn,
        f"libcufft-{cu}",
        f"libcurand-{cu}",
        f"libcusolver-{cu}",
        f"libcusparse-{cu}",
    ]
    if bases.nccl_package:
        packages.append(f"libnccl2={bases.nccl_package}")
    packages += [f"libnvinfer8={trt}", f"libnvinfer-plugin8={trt}"]
    if bases.cuda_compat:
        packages.append(f"cuda-compat-{cu}")
    return packages


def gpu_devel_packages(bases: BaseImages) -> list[str]:
    """The NVIDIA packages of the GPU devel image: those of upstream's Dockerfile.devel-gpu."""
    cu = bases.cuda.replace(".", "-")
    cudnn, cudnn_dev = _cudnn_packages(bases)
    trt = bases.tensorrt_package
    packages = [
        f"cuda-command-line-tools-{cu}",
        f"cuda-cudart-dev-{cu}",
        f"cuda-nvcc-{cu}",
        f"cuda-cupti-{cu}",
        f"cuda-nvprune-{cu}",
        f"cuda-libraries-{cu}",
        f"cuda-libraries-dev-{cu}",
        f"cuda-nvml-dev-{cu}",
        f"libcufft-{cu}",
        f"libcurand-{cu}",
        f"libcusolver-dev-{cu}",
        f"libcusparse-dev-{cu}",
        f"libcublas-{cu}",
        f"libcublas-dev-{cu}",
    ]
    if bases.cuda_compat:
        packages.append(f"cuda-compat-{cu}")
    if bases.nccl_package:
        packages += [f"libnccl-dev={bases.nccl_package}", f"libnccl2={bases.nccl_package}"]
    packages += [
        cudnn_dev,
        cudnn,
        f"libnvinfer-plugin8={trt}",
        f"libnvinfer8={trt}",
        f"libnvinfer-dev={trt}",
        f"libnvinfer-headers-dev={trt}",
        f"libnvinfer-plugin-dev={trt}",
        f"libnvinfer-headers-plugin-dev={trt}",
        f"libcufft-dev-{cu}",
        f"libcurand-dev-{cu}",
    ]
    return packages


def plan_build(request: BuildRequest, host: BuildHost | None = None) -> BuildPlan:
    """Validate a request and compute the full, deterministic build plan.

    Raises ``InvalidInput`` (exit 3) for an unknown CPU flag, a bad compute
    capability, a bad version string or a bad tag.
    """
    host = host or BuildHost()
    version = request.version.strip()
    bases, warnings = bases_for(version)

    if request.jobs is not None and request.jobs < 1:
        raise InvalidInput(f"--jobs {request.jobs}: must be 1 or more")

    # CPU: bazel options and the flags the binary will need at run time.
    arch_text = request.arch.strip()
    if arch_text.lower() == "native":
        arch = "native"
        arch_options = "--config=nativeopt"
        cpu_flags = tuple(f for f in ISA_FLAGS if host.cpu_flags and f in host.cpu_flags)
        where = "the Docker engine's machine" if host.remote_engine else "this machine"
        warnings.append(
            f"--arch native: the image is compiled with -march=native for {where}'s CPU "
            f"({host.cpu_model or 'model unknown'}) and only runs on CPUs with the same "
            "instruction sets; elsewhere it crashes with 'Illegal instruction'"
        )
        if host.cpu_flags is None:
            warnings.append(
                "could not read the CPU flags (/proc/cpuinfo): the image's cpu-flags label is "
                "empty, so deploy cannot check hosts against it"
            )
        elif host.remote_engine:
            warnings.append(
                "the engine is remote: the cpu-flags label records this machine's CPU, "
                "which may differ from the machine that compiles"
            )
    elif arch_text.lower() in ("portable", "release", ""):
        arch = "portable"
        arch_options = "--config=release"
        cpu_flags = tuple(f for f in ISA_FLAGS if f in PORTABLE_CPU_FLAGS)
    else:
        arch = "list"
        cpu_flags = normalize_cpu_flags(arch_text)
        arch_options = " ".join(f"--copt=-m{f}" for f in cpu_flags)

    if request.mkl:
        arch_options = _mkl_options(request, bases, arch_options)

    # GPU: cuda_clang and the compute capabilities to compile kernels for.
    capabilities: str | None = None
    if request.gpu:
        if bases.gpu_config != GPU_CONFIG:
            first_gpu = next(r.tag for r in VERSION_TABLE if r.gpu_config == GPU_CONFIG)
            raise InvalidInput(
                f"--gpu --version {version}: tfsops's GPU Dockerfiles build with "
                f"--config={GPU_CONFIG}, which TF Serving's .bazelrc at {bases.tag} does not "
                f"define (upstream builds that release with --config={bases.gpu_config} and nvcc)",
                hint=f"use --version {first_gpu} or later for --gpu",
            )
        if request.cuda_capabilities:
            capabilities = cuda_capability_targets(request.cuda_capabilities)
        elif host.gpu_capabilities:
            capabilities = cuda_capability_targets(list(host.gpu_capabilities))
            warnings.append(
                f"--gpu without --cuda-capabilities: compiling for this machine's GPUs only "
                f"({capabilities}, from nvidia-smi); pass --cuda-capabilities to cover others"
            )
        else:
            capabilities = bases.cuda_capabilities
        # The --repo_env must come after --config=cuda_clang: the later one wins.
        build_options = _join(
            "--config=cuda_clang",
            "--copt=-fPIC",
            arch_options,
            f"--repo_env=TF_CUDA_COMPUTE_CAPABILITIES={capabilities}",
        )
    elif request.cuda_capabilities:
        raise InvalidInput("--cuda-capabilities needs --gpu")
    else:
        build_options = arch_options
    bazel_options = f"--jobs={request.jobs}" if request.jobs else ""

    # Tags.
    if request.tag:
        repo, tag_part = _validate_reference(request.tag.strip(), "--tag")
        tag_part = tag_part or "latest"
        serving_tag = f"{repo}:{tag_part}"
    else:
        serving_tag = _default_tag(version, arch, cpu_flags, request.gpu, request.mkl)
        repo, tag_part_opt = split_reference(serving_tag)
        tag_part = tag_part_opt or "latest"
    if len(tag_part) + len("-devel") > 128:
        raise InvalidInput(f"--tag {request.tag!r}: tag too long to add '-devel'")
    own_devel_tag = f"{repo}:{tag_part}-devel"
    if request.devel_image:
        _validate_reference(request.devel_image.strip(), "--devel-image")
        devel_tag = request.devel_image.strip()
    else:
        devel_tag = own_devel_tag
    runtime_base = (request.runtime_base or "").strip() or (
        bases.cuda_base if request.gpu else bases.cpu_base
    )
    _validate_reference(runtime_base, "--runtime-base")

    labels: dict[str, str] = {
        LABEL_VERSION: version,
        LABEL_ARCH: arch,
        LABEL_BAZEL_OPTIONS: _join(bazel_options, build_options),
        LABEL_CPU_FLAGS: ",".join(cpu_flags),
    }
    if arch == "native" and host.cpu_model:
        labels[LABEL_CPU_MODEL] = host.cpu_model
    labels[LABEL_GPU] = "true" if request.gpu else "false"
    if request.mkl:
        labels[LABEL_MKL] = "true"
    if request.gpu and capabilities:
        labels[LABEL_CUDA_VERSION] = bases.cuda
        labels[LABEL_CUDNN_VERSION] = bases.cudnn
        labels[LABEL_CUDA_CAPABILITIES] = capabilities

    dockerfiles = render_dockerfiles(
        version=version,
        bases=bases,
        gpu=request.gpu,
        build_options=build_options,
        bazel_options=bazel_options,
        devel_tag=devel_tag,
        runtime_base=runtime_base,
        mkl=request.mkl,
    )
    common_args = {
        "TF_SERVING_VERSION_GIT_BRANCH": version,
        "TF_SERVING_VERSION_GIT_COMMIT": version,
    }
    steps: list[BuildStep] = []
    if not request.devel_image:
        steps.append(
            BuildStep(
                name="devel",
                context=".",
                dockerfile="Dockerfile.devel",
                buildargs={
                    **common_args,
                    "TF_SERVING_BUILD_OPTIONS": build_options,
                    "TF_SERVING_BAZEL_OPTIONS": bazel_options,
                },
                tags=(own_devel_tag,),
                labels=labels,
            )
        )
    steps.append(
        BuildStep(
            name="serving",
            context=".",
            dockerfile="Dockerfile",
            buildargs={
                **common_args,
                "TF_SERVING_BUILD_IMAGE": devel_tag,
                "RUNTIME_BASE": runtime_base,
            },
            tags=(serving_tag,),
            labels={**labels, LABEL_DEVEL_IMAGE: devel_tag},
        )
    )
    return BuildPlan(
        version=version,
        arch=arch,
        cpu_flags=cpu_flags,
        gpu=request.gpu,
        cuda_capabilities=capabilities,
        bases=bases,
        build_options=build_options,
        bazel_options=bazel_options,
        tag=serving_tag,
        devel_tag=devel_tag,
        runtime_base=runtime_base,
        labels=labels,
        dockerfiles=dockerfiles,
        steps=tuple(steps),
        warnings=tuple(warnings),
        mkl=request.mkl,
    )


def _mkl_options(request: BuildRequest, bases: BaseImages, arch_options: str) -> str:
    """Upstream's Dockerfile.devel-mkl build options, with ``--config=release`` -> ``arch_options``.

    Refused (exit 3) with --gpu (upstream has no GPU oneDNN image), for a
    release the table does not record, and where upstream ships no
    ``Dockerfile.devel-mkl`` at that tag.
    """
    version = request.version.strip()
    if request.gpu:
        raise InvalidInput(
            "--mkl and --gpu cannot be combined: upstream's Dockerfile.devel-mkl is a CPU build",
            hint="drop one of them",
        )
    if release_row(version) is None:
        raise InvalidInput(
            f"--mkl --version {version}: tfsops does not know whether upstream still builds "
            f"Dockerfile.devel-mkl at {version} (its release table records "
            + ", ".join(r.tag for r in VERSION_TABLE)
            + ")",
            hint="pick a recorded release, or drop --mkl",
        )
    if not bases.mkl_options:
        raise InvalidInput(
            f"--mkl --version {version}: upstream ships no Dockerfile.devel-mkl at {bases.tag}",
            hint="drop --mkl",
        )
    parts = bases.mkl_options.split()
    out = [arch_options if p == "--config=release" else p for p in parts]
    return _join(*out)


def render_dockerfiles(
    *,
    version: str,
    bases: BaseImages,
    gpu: bool,
    build_options: str,
    bazel_options: str,
    devel_tag: str,
    runtime_base: str,
    mkl: bool = False,
) -> dict[str, str]:
    """Render ``Dockerfile.devel`` and ``Dockerfile`` (serving) from ``dockerfiles/``.

    Every ARG default in the output equals the plan's build arg, so each file
    also builds on its own with a plain ``docker build``.
    """
    import jinja2

    from tfsops.resources import dockerfile_template_dir

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(dockerfile_template_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # Dockerfiles, not HTML
    )
    context: dict[str, Any] = {
        "version": version,
        "bases": bases,
        "build_options": build_options,
        "bazel_options": bazel_options,
        "devel_tag": devel_tag,
        "runtime_base": runtime_base,
        "cuda_devel_packages": gpu_devel_packages(bases),
        "cuda_runtime_packages": gpu_runtime_packages(bases),
        "mkl": mkl,
    }
    suffix = "-gpu" if gpu else ""
    files = {
        "Dockerfile.devel": f"Dockerfile.devel{suffix}.j2",
        "Dockerfile": f"Dockerfile.serving{suffix}.j2",
    }
    return {
        name: env.get_template(template).render(context).rstrip("\n") + "\n"
        for name, template in files.items()
    }


def upstream_image_labels(version: str, gpu: bool) -> dict[str, str]:
    """The ``io.tfsops.build.*`` labels equivalent to upstream's ``tensorflow/serving:V[-gpu]``.

    Stock images carry no tfsops labels; this lets deploy check them the same way.
    """
    bases, _ = bases_for(version)
    labels = {
        LABEL_VERSION: version,
        LABEL_ARCH: "portable",
        LABEL_BAZEL_OPTIONS: "--config=release",
        LABEL_CPU_FLAGS: ",".join(f for f in ISA_FLAGS if f in PORTABLE_CPU_FLAGS),
        LABEL_GPU: "true" if gpu else "false",
    }
    if gpu:
        labels[LABEL_BAZEL_OPTIONS] = f"--config={bases.gpu_config} --config=release"
        labels[LABEL_CUDA_VERSION] = bases.cuda
        labels[LABEL_CUDNN_VERSION] = bases.cudnn
        labels[LABEL_CUDA_CAPABILITIES] = bases.cuda_capabilities
    return labels


def release_table_markdown() -> str:
    """README's release table, from ``VERSION_TABLE`` (a unit test keeps the README in step)."""
    lines = [
        "| series (read from) | Ubuntu | bazel | CUDA | cuDNN | TensorRT | NCCL "
        "| `--gpu` config: default capabilities | `--mkl` |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in VERSION_TABLE:
        gpu = f"`{row.gpu_config}`: `{row.cuda_capabilities}`"
        if row.gpu_config != GPU_CONFIG:
            gpu += " (not built by tfsops)"
        nccl = row.nccl_package.split("-")[0] if row.nccl_package else "-"
        lines.append(
            f"| {row.series} ({row.tag}) | {row.ubuntu} | {row.bazel} | {row.cuda} | {row.cudnn} "
            f"| {row.tensorrt}{'' if row.tensorrt_enabled else ' (not compiled in)'} | {nccl} | {gpu} "
            f"| {'yes' if row.mkl_options else 'no'} |"
        )
    return "\n".join(lines) + "\n"
