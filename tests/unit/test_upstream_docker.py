"""The release table against upstream's own Dockerfiles, .bazelrc and setup.sources.sh.

Upstream's files per release live in ``shared/reference/upstream-docker/<tag>/``
beside the checkout (found like ``tests/conftest.py`` finds ``shared/``;
``TFSOPS_UPSTREAM_DOCKER`` points elsewhere). Without them the comparison tests
are skipped with the reason; the tests that need no upstream files always run.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from tfsops.build import plan as p
from tfsops.build.plan import BuildRequest, plan_build
from tfsops.build.upstream import (
    FIELD_SOURCES,
    NOT_FROM_UPSTREAM,
    PACKAGE_EXCEPTIONS,
    Mismatch,
    apt_packages,
    compare_table,
    logical_lines,
    package_gaps,
)

REPO = Path(__file__).resolve().parents[2]
UPSTREAM = Path(
    os.environ.get("TFSOPS_UPSTREAM_DOCKER")
    or REPO.parent / "shared" / "reference" / "upstream-docker"
)
TAGS = [row.tag for row in p.VERSION_TABLE]
GPU_TAGS = [row.tag for row in p.VERSION_TABLE if row.gpu_config == p.GPU_CONFIG]


def upstream_root() -> Path:
    if not UPSTREAM.is_dir():
        reason = f"upstream's Docker files not found at {UPSTREAM} (set TFSOPS_UPSTREAM_DOCKER)"
        print(reason)
        pytest.skip(reason)
    return UPSTREAM


# -- every row against upstream's files at its tag ------------------------------------


@pytest.mark.parametrize("tag", TAGS)
def test_every_row_matches_upstream(tag: str) -> None:
    root = upstream_root()
    row = next(r for r in p.VERSION_TABLE if r.tag == tag)
    mismatches = compare_table(root, [row])
    assert mismatches == [], "\n".join(str(m) for m in mismatches)


def test_every_upstream_release_has_a_row() -> None:
    root = upstream_root()
    folders = sorted(d.name for d in root.iterdir() if d.is_dir())
    assert folders == TAGS, "a release folder without a row (or a row without a folder)"


def test_every_field_is_traceable() -> None:
    names = set(p.BaseImages.__dataclass_fields__)
    assert names - NOT_FROM_UPSTREAM == set(FIELD_SOURCES)


def test_a_wrong_value_in_a_mutated_upstream_copy_is_reported_exactly(tmp_path: Path) -> None:
    root = tmp_path / "upstream-docker"
    shutil.copytree(upstream_root(), root)
    bazelrc = root / "2.19.1" / ".bazelrc"
    text = bazelrc.read_text()
    mutated = text.replace(
        'TF_CUDA_COMPUTE_CAPABILITIES="sm_50,sm_60,sm_70,sm_80,compute_90"',
        'TF_CUDA_COMPUTE_CAPABILITIES="sm_60,sm_70,sm_80,sm_89,compute_90"',
    )
    assert mutated != text
    bazelrc.write_text(mutated)
    assert compare_table(root) == [
        Mismatch(
            "2.19.1",
            "cuda_capabilities",
            "sm_50,sm_60,sm_70,sm_80,compute_90",
            "sm_60,sm_70,sm_80,sm_89,compute_90",
            FIELD_SOURCES["cuda_capabilities"],
        )
    ]


def test_a_wrong_row_is_reported_exactly() -> None:
    """The defects the table had: 2.20's capabilities for 2.19, 6.5.0 for 2.17, no NCCL pin."""
    root = upstream_root()
    table = list(p.VERSION_TABLE)
    i19 = TAGS.index("2.19.1")
    i17 = TAGS.index("2.17.1")
    table[i19] = replace(table[i19], cuda_capabilities="sm_60,sm_70,sm_80,sm_89,compute_90")
    table[i17] = replace(table[i17], bazel="6.5.0", nccl_package=None)
    found = [(m.tag, m.field, m.upstream) for m in compare_table(root, table)]
    assert found == [
        ("2.17.1", "nccl_package", "2.18.5-1+cuda12.2"),
        ("2.17.1", "bazel", "6.4.0"),
        ("2.19.1", "cuda_capabilities", "sm_50,sm_60,sm_70,sm_80,compute_90"),
    ]
    missing = compare_table(root, [replace(table[0], tag="2.13.1")])
    assert [(m.tag, m.field) for m in missing] == [("2.13.1", "tag")]


# -- the rendered Dockerfiles install what upstream's install -------------------------

KINDS = [
    # (upstream file, ours, gpu, mkl)
    ("Dockerfile", "Dockerfile", False, False),
    ("Dockerfile.devel", "Dockerfile.devel", False, False),
    ("Dockerfile.mkl", "Dockerfile", False, True),
    ("Dockerfile.devel-mkl", "Dockerfile.devel", False, True),
    ("Dockerfile.gpu", "Dockerfile", True, False),
    ("Dockerfile.devel-gpu", "Dockerfile.devel", True, False),
]
PACKAGE_CASES = [
    (tag, kind)
    for tag in TAGS
    for kind in KINDS
    if not kind[2] or tag in GPU_TAGS  # 2.14 GPU is refused (no cuda_clang)
]


@pytest.mark.parametrize(
    ("tag", "kind"), PACKAGE_CASES, ids=[f"{t}-{k[0]}" for t, k in PACKAGE_CASES]
)
def test_rendered_dockerfiles_install_every_upstream_package(
    tag: str, kind: tuple[str, str, bool, bool]
) -> None:
    upstream_file, ours, gpu, mkl = kind
    upstream = (upstream_root() / tag / upstream_file).read_text()
    plan = plan_build(BuildRequest(version=tag, gpu=gpu, mkl=mkl))
    gaps = package_gaps(plan.dockerfiles[ours], upstream, PACKAGE_EXCEPTIONS[upstream_file])
    assert gaps.missing == (), f"{upstream_file} at {tag} installs {gaps.missing}; we do not"
    assert gaps.pins == (), f"pinned differently (package, ours, upstream): {gaps.pins}"


@pytest.mark.parametrize("tag", ["2.19.1", "2.20.0"])
def test_gpu_serving_image_installs_the_same_runtime_packages_as_upstream(tag: str) -> None:
    upstream = apt_packages((upstream_root() / tag / "Dockerfile.gpu").read_text())
    ours = apt_packages(plan_build(BuildRequest(version=tag, gpu=True)).dockerfiles["Dockerfile"])
    expected = set(upstream) - set(PACKAGE_EXCEPTIONS["Dockerfile.gpu"])
    assert set(ours) == expected
    assert {k: v for k, v in upstream.items() if v} == {
        k: ours[k] for k, v in upstream.items() if v
    }


def test_package_exceptions_are_still_needed() -> None:
    """Each listed exception is something some upstream file at some tag really installs."""
    root = upstream_root()
    for upstream_file, exceptions in PACKAGE_EXCEPTIONS.items():
        sharing = [f for f, e in PACKAGE_EXCEPTIONS.items() if e is exceptions]
        installed: set[str] = set()
        for tag in TAGS:
            for name in sharing:
                installed |= set(apt_packages((root / tag / name).read_text()))
        assert set(exceptions) <= installed, upstream_file


# -- what the fixes guarantee, without upstream's files ---------------------------------


def test_release_table_fixes() -> None:
    # --version 2.17.0 gets the 2.17 series' bazel.
    assert p.bases_for("2.17.0") == (p.VERSION_TABLE[TAGS.index("2.17.1")], [])
    assert plan_build(BuildRequest(version="2.17.0")).bases.bazel == "6.4.0"
    # 2.19 keeps Maxwell (sm_50) by default; 2.20 drops it.
    assert "sm_50" in plan_build(BuildRequest(gpu=True, version="2.19.0")).cuda_capabilities  # type: ignore[operator]
    assert "sm_50" not in plan_build(BuildRequest(gpu=True, version="2.20.0")).cuda_capabilities  # type: ignore[operator]
    # The GPU serving image has what cuSPARSE/cuSOLVER, XLA and TensorRT load, NCCL pinned.
    serving = apt_packages(plan_build(BuildRequest(gpu=True)).dockerfiles["Dockerfile"])
    assert {"cuda-libraries-12-2", "cuda-nvcc-12-2", "libnvinfer8", "libnvinfer-plugin8"} <= set(
        serving
    )
    assert serving["libnccl2"] == "2.18.5-1+cuda12.2"
    s20 = apt_packages(
        plan_build(BuildRequest(gpu=True, version="2.20.0")).dockerfiles["Dockerfile"]
    )
    assert s20["libnccl2"] == "2.25.1-1+cuda12.8" and "cuda-compat-12-5" in s20
    # No claim that .bazelrc points the host compiler at gcc-10 (only --config=kokoro does).
    devel = plan_build(BuildRequest()).dockerfiles["Dockerfile.devel"]
    assert "points the host compiler" not in devel
    assert (
        "--config=kokoro, which TF Serving's\n# .bazelrc at 2.19.1 defines as CC=/usr/bin/gcc-10"
        in devel
    )
    # 2.17's kokoro uses plain gcc: no switch to gcc-10 there; 2.20 installs no gcc-10.
    assert (
        "update-alternatives --install /usr/bin/gcc"
        not in plan_build(BuildRequest(version="2.17.1")).dockerfiles["Dockerfile.devel"]
    )
    assert (
        "gcc-10" not in plan_build(BuildRequest(version="2.20.0")).dockerfiles["Dockerfile.devel"]
    )


def test_apt_packages_parser() -> None:
    text = (
        "ENV TRT=8.4.3\nARG PY=python3\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends \\\n"
        "        ${PY}-dev \\\n"
        "        # a comment inside the continuation\n"
        "        libnvinfer8=${TRT}-1+cuda11.6 \\\n"
        "        openjdk-8-jdk\\\n"
        "        zip && \\\n"
        "    apt-get clean\n"
        "RUN apt-get install -y curl; echo done\n"
    )
    assert apt_packages(text) == {
        "python3-dev": None,
        "libnvinfer8": "8.4.3-1+cuda11.6",
        "openjdk-8-jdk": None,
        "zip": None,
        "curl": None,
    }
    assert logical_lines("# c\nFROM a \\\n  AS b\n") == ["FROM a    AS b"]


# -- --mkl --------------------------------------------------------------------------------


def test_mkl_uses_upstreams_options_with_the_arch_in_place_of_release() -> None:
    plan = plan_build(BuildRequest(mkl=True))
    assert plan.build_options == "--config=mkl --config=release"
    assert plan.labels[p.LABEL_MKL] == "true" and plan.tag.endswith(":2.19.0-mkl")
    assert "COPY --from=build_image /usr/local/lib/libiomp5.so" in plan.dockerfiles["Dockerfile"]
    row = p.VERSION_TABLE[TAGS.index("2.19.1")]
    assert (
        f"cp -p {row.mkl_iomp5} /usr/local/lib/ && \\\n    bazel clean"
        in (plan.dockerfiles["Dockerfile.devel"])
    )
    v220 = plan_build(BuildRequest(mkl=True, version="2.20.0", arch="avx2"))
    assert v220.build_options == "--config=mkl --copt=-mavx2 --config=clang_local"


def test_mkl_is_refused_where_upstream_does_not_build_it(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(p.InvalidInput, match="cannot be combined") as err:
        plan_build(BuildRequest(mkl=True, gpu=True))
    assert err.value.exit_code == 3
    with pytest.raises(p.InvalidInput, match=r"does not know whether upstream still builds"):
        plan_build(BuildRequest(mkl=True, version="2.21.0"))
    table = tuple(
        replace(r, mkl_options=None, mkl_iomp5=None) if r.tag == "2.20.0" else r
        for r in p.VERSION_TABLE
    )
    monkeypatch.setattr(p, "VERSION_TABLE", table)
    with pytest.raises(p.InvalidInput, match=r"upstream ships no Dockerfile.devel-mkl at 2\.20\.0"):
        plan_build(BuildRequest(mkl=True, version="2.20.0"))
    assert plan_build(BuildRequest(mkl=True, version="2.19.0")).mkl


# -- README ----------------------------------------------------------------------------


def test_readme_release_table_is_generated_from_the_table() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(
        r"<!-- release-table:start[^>]*-->\n(.*?)<!-- release-table:end -->", readme, re.S
    )
    assert m, "README has no release-table block"
    assert m.group(1) == p.release_table_markdown(), (
        "README's release table is stale: paste tfsops.build.plan.release_table_markdown()"
    )
