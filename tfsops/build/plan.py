"""The build plan: a request (arch, GPU, version, tag) -> Dockerfiles and exact build steps.

Pure apart from reading the shipped Dockerfile templates: no Docker, no host
probing (the caller passes what it knows about the build machine in
``BuildHost``). Upstream facts (tensorflow/serving ``tools/docker`` and
``.bazelrc``) that the plan encodes:

- ``--config=release`` = ``--copt=-mavx --copt=-msse4.2`` (upstream's default);
  ``--config=nativeopt`` = ``-march=native -O3``; there is no ``release_gpu``.
- GPU builds use ``--config=cuda_clang``, whose default
  ``TF_CUDA_COMPUTE_CAPABILITIES`` is ``sm_60,sm_70,sm_80,sm_89,compute_90``;
  a later ``--repo_env`` on the command line overrides it.
- Two stages: a devel image compiles ``tensorflow_model_server``; the serving
  image copies it from ``TF_SERVING_BUILD_IMAGE``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
UPSTREAM_CUDA_CAPABILITIES = "sm_60,sm_70,sm_80,sm_89,compute_90"

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
    """Bases and toolchain for a range of TF Serving releases (reference §6.2)."""

    first: tuple[int, int, int]  # first release the row applies to
    recorded: str  # the tags upstream's history shows with these bases
    ubuntu: str
    codename: str
    cuda_base: str
    cuda: str
    cudnn: str
    # Minimum Linux driver for this CUDA toolkit (NVIDIA's CUDA release notes).
    min_driver: str
    # Bazel: the matching TensorFlow release's .bazelversion (not verified by a build here).
    bazel: str
    compilers: tuple[str, ...]

    @property
    def cpu_base(self) -> str:
        return f"ubuntu:{self.ubuntu}"


_GCC10 = ("gcc-10", "g++-10")  # TF Serving's .bazelrc names gcc-10 as the host compiler

VERSION_TABLE: tuple[BaseImages, ...] = (
    BaseImages(
        first=(2, 11, 0),
        recorded="2.11.1",
        ubuntu="18.04",
        codename="bionic",
        cuda_base="nvidia/cuda:11.2.1-base-ubuntu18.04",
        cuda="11.2",
        cudnn="8.1.0.77",
        min_driver="460.27.03",
        bazel="5.3.0",
        compilers=(),
    ),
    BaseImages(
        first=(2, 14, 0),
        recorded="2.14.1",
        ubuntu="20.04",
        codename="focal",
        cuda_base="nvidia/cuda:11.8.0-base-ubuntu20.04",
        cuda="11.8",
        cudnn="8.6.0.163",
        min_driver="520.61.05",
        bazel="6.1.0",
        compilers=_GCC10,
    ),
    BaseImages(
        first=(2, 15, 0),
        recorded="2.15.1-2.19.0",
        ubuntu="20.04",
        codename="focal",
        cuda_base="nvidia/cuda:12.2.0-base-ubuntu20.04",
        cuda="12.2",
        cudnn="8.9.4.25",
        min_driver="535.54.03",
        bazel="6.5.0",
        compilers=_GCC10,
    ),
    BaseImages(
        first=(2, 20, 0),
        recorded="2.20.x",
        ubuntu="22.04",
        codename="jammy",
        cuda_base="nvidia/cuda:12.5.1-base-ubuntu22.04",
        cuda="12.5",
        cudnn="9.3.0.75",
        min_driver="555.42.02",
        bazel="7.4.1",
        compilers=_GCC10,
    ),
)
# The range of releases the table records exactly; others get a warning.
_RECORDED: tuple[tuple[tuple[int, int, int], tuple[int, int, int]], ...] = (
    ((2, 11, 1), (2, 11, 1)),
    ((2, 14, 1), (2, 14, 1)),
    ((2, 15, 1), (2, 19, 0)),
    ((2, 20, 0), (2, 20, 99)),
)
MIN_GPU_UBUNTU = "20.04"  # LLVM 17 (for cuda_clang) has no packages for 18.04


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
            "gpu": self.gpu,
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
    """The base-image row for a release, and a warning when the table does not record it."""
    v = parse_version(version)
    rows = [r for r in VERSION_TABLE if r.first <= v]
    if not rows:
        first = ".".join(map(str, VERSION_TABLE[0].first))
        raise InvalidInput(
            f"--version {version}: tfsops build supports TF Serving {first} and later",
            hint="recorded releases: " + ", ".join(r.recorded for r in VERSION_TABLE),
        )
    row = rows[-1]
    warnings: list[str] = []
    if not any(lo <= v <= hi for lo, hi in _RECORDED):
        warnings.append(
            f"TF Serving {version} is not in tfsops's base-image table (recorded: "
            + ", ".join(r.recorded for r in VERSION_TABLE)
            + f"); using the bases of {row.recorded} ({row.cpu_base}, {row.cuda_base}): "
            "check them against upstream's tools/docker/Dockerfile* at that tag"
        )
    return row, warnings


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


def _default_tag(version: str, arch: str, cpu_flags: tuple[str, ...], gpu: bool) -> str:
    variant = {"portable": "", "native": "native"}.get(arch, "-".join(cpu_flags))
    tag = "-".join(p for p in (version, variant, "gpu" if gpu else "") if p)
    if len(tag) > 128:  # Docker's tag limit; long flag lists get a stable short name
        digest = hashlib.sha256(tag.encode()).hexdigest()[:8]
        tag = "-".join(p for p in (version, f"custom-{digest}", "gpu" if gpu else "") if p)
    return f"{DEFAULT_REPOSITORY}:{tag}"


def _gpu_packages(bases: BaseImages) -> tuple[list[str], list[str]]:
    """(devel packages, runtime packages) for the CUDA/cuDNN of a base row."""
    cu = bases.cuda.replace(".", "-")
    cuda_major = bases.cuda.split(".")[0]
    if bases.cudnn.startswith("9."):
        cudnn_rt = [f"libcudnn9-cuda-{cuda_major}={bases.cudnn}-1"]
        cudnn_dev = [f"libcudnn9-dev-cuda-{cuda_major}={bases.cudnn}-1"]
    else:
        major = bases.cudnn.split(".")[0]
        cudnn_rt = [f"libcudnn{major}={bases.cudnn}-1+cuda{bases.cuda}"]
        cudnn_dev = [f"libcudnn{major}-dev={bases.cudnn}-1+cuda{bases.cuda}"]
    runtime = [
        f"cuda-compat-{cu}",  # forward compatibility on data-centre GPUs with older drivers
        f"cuda-cupti-{cu}",
        f"cuda-nvrtc-{cu}",
        f"libcublas-{cu}",
        f"libcufft-{cu}",
        f"libcurand-{cu}",
        f"libcusolver-{cu}",
        f"libcusparse-{cu}",
        "libnccl2",
        *cudnn_rt,
    ]
    devel = [
        f"cuda-command-line-tools-{cu}",
        f"cuda-cudart-dev-{cu}",
        f"cuda-cupti-{cu}",
        f"cuda-libraries-dev-{cu}",
        f"cuda-nvcc-{cu}",
        f"cuda-nvml-dev-{cu}",
        f"cuda-nvprune-{cu}",
        f"libcublas-dev-{cu}",
        f"libcufft-dev-{cu}",
        f"libcurand-dev-{cu}",
        f"libcusolver-dev-{cu}",
        f"libcusparse-dev-{cu}",
        "libnccl-dev",
        "libnccl2",
        *cudnn_rt,
        *cudnn_dev,
    ]
    return devel, runtime


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

    # GPU: cuda_clang and the compute capabilities to compile kernels for.
    capabilities: str | None = None
    if request.gpu:
        if bases.ubuntu < MIN_GPU_UBUNTU:
            raise InvalidInput(
                f"--gpu --version {version}: tfsops's GPU Dockerfiles need TF Serving 2.14+ "
                f"(its CUDA base is Ubuntu {bases.ubuntu}, which has no LLVM 17 for cuda_clang)",
                hint="use --version 2.14.1 or later",
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
            capabilities = UPSTREAM_CUDA_CAPABILITIES
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
        serving_tag = _default_tag(version, arch, cpu_flags, request.gpu)
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
    )


def render_dockerfiles(
    *,
    version: str,
    bases: BaseImages,
    gpu: bool,
    build_options: str,
    bazel_options: str,
    devel_tag: str,
    runtime_base: str,
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
    devel_packages, runtime_packages = _gpu_packages(bases)
    context: dict[str, Any] = {
        "version": version,
        "bases": bases,
        "build_options": build_options,
        "bazel_options": bazel_options,
        "devel_tag": devel_tag,
        "runtime_base": runtime_base,
        "cuda_devel_packages": devel_packages,
        "cuda_runtime_packages": runtime_packages,
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
        labels[LABEL_BAZEL_OPTIONS] = "--config=cuda_clang --config=release"
        labels[LABEL_CUDA_VERSION] = bases.cuda
        labels[LABEL_CUDNN_VERSION] = bases.cudnn
        labels[LABEL_CUDA_CAPABILITIES] = UPSTREAM_CUDA_CAPABILITIES
    return labels
