"""``tfsops build`` planning: golden Dockerfiles and plans, validation, the executor, the CLI.

Golden files live in ``tests/unit/golden/build/<case>/``; after an intended
change, regenerate them with ``TFSOPS_UPDATE_GOLDEN=1 pytest tests/unit/test_build_plan.py``
and review the diff.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tfsops.build import plan as p
from tfsops.build.executor import execute_plan, format_elapsed
from tfsops.build.plan import BuildHost, BuildRequest, plan_build
from tfsops.build.service import engine_is_remote, write_plan
from tfsops.cli.app import app
from tfsops.errors import ExitCode, Interrupted, InvalidInput, OperationFailed
from tfsops.resources import dockerfile_template_dir

GOLDEN = Path(__file__).parent / "golden" / "build"
UPDATE = os.environ.get("TFSOPS_UPDATE_GOLDEN") == "1"

EPYC = BuildHost(
    cpu_flags=frozenset({"sse3", "ssse3", "sse4.1", "sse4.2", "popcnt", "avx", "avx2", "fma"}),
    cpu_model="AMD EPYC 7B13",
)

CASES: dict[str, tuple[BuildRequest, BuildHost]] = {
    "cpu-portable": (BuildRequest(), BuildHost()),
    "cpu-native": (BuildRequest(arch="native", jobs=8), EPYC),
    "cpu-list": (
        BuildRequest(
            arch="avx,avx2,fma,sse4.1,sse4.2,avx512f", tag="registry.local:5000/ml/tfs:opt"
        ),
        BuildHost(),
    ),
    "cpu-2.14.1": (BuildRequest(version="2.14.1"), BuildHost()),
    "cpu-2.20.0-devel-image": (
        BuildRequest(
            version="2.20.0",
            devel_image="myorg/tfs-devel:2.20.0",
            runtime_base="debian:bookworm-slim",
            tag="myorg/tfs:2.20.0",
        ),
        BuildHost(),
    ),
    "gpu-caps": (BuildRequest(gpu=True, cuda_capabilities="8.0,9.0", arch="avx2,fma"), BuildHost()),
    "gpu-default-2.20.0": (BuildRequest(gpu=True, version="2.20.0"), BuildHost()),
    "gpu-detected-2.15.1": (
        BuildRequest(gpu=True, version="2.15.1"),
        BuildHost(gpu_capabilities=("8.6", "8.6")),
    ),
    "gpu-default-2.19.0": (BuildRequest(gpu=True), BuildHost()),
    "mkl-2.19.0": (BuildRequest(mkl=True), BuildHost()),
    "mkl-2.20.0-list": (BuildRequest(mkl=True, version="2.20.0", arch="avx2,fma"), BuildHost()),
}


def _check_golden(path: Path, actual: str) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"golden file {path} missing: run with TFSOPS_UPDATE_GOLDEN=1"
    assert actual == path.read_text(encoding="utf-8"), f"{path} differs (TFSOPS_UPDATE_GOLDEN=1)"


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_dockerfiles_and_plan(case: str) -> None:
    request, host = CASES[case]
    plan = plan_build(request, host)
    for name, text in plan.dockerfiles.items():
        _check_golden(GOLDEN / case / name, text)
    _check_golden(GOLDEN / case / "build-plan.json", plan.to_json())


@pytest.mark.parametrize("case", sorted(CASES))
def test_dockerfile_arg_defaults_match_the_plan(case: str) -> None:
    """Each rendered Dockerfile also builds on its own: its ARG defaults are the plan's args."""
    plan = plan_build(*CASES[case])
    texts = dict(plan.dockerfiles)
    for step in plan.steps:
        text = texts[step.dockerfile]
        for key, value in step.buildargs.items():
            pattern = rf'^ARG {key}=("{re.escape(value)}"|{re.escape(value)})$'
            assert re.search(pattern, text, re.M), f"{step.dockerfile}: ARG {key} != {value!r}"


def test_portable_is_upstream_release_config() -> None:
    plan = plan_build(BuildRequest())
    assert plan.build_options == "--config=release"
    assert plan.labels[p.LABEL_CPU_FLAGS] == "sse4.2,avx"
    assert plan.labels[p.LABEL_GPU] == "false"
    assert [s.name for s in plan.steps] == ["devel", "serving"]
    assert plan.tag == "tfsops/tensorflow-serving:2.19.0"
    assert plan.devel_tag == "tfsops/tensorflow-serving:2.19.0-devel"
    serving = plan.steps[1]
    assert serving.buildargs["TF_SERVING_BUILD_IMAGE"] == plan.devel_tag
    assert serving.buildargs["RUNTIME_BASE"] == "ubuntu:20.04"
    assert plan.warnings == ()


def test_native_uses_nativeopt_warns_and_labels_host_flags() -> None:
    plan = plan_build(BuildRequest(arch="native"), EPYC)
    assert plan.build_options == "--config=nativeopt"
    assert plan.labels[p.LABEL_CPU_FLAGS] == "sse3,ssse3,sse4.1,sse4.2,popcnt,avx,avx2,fma"
    assert plan.labels[p.LABEL_CPU_MODEL] == "AMD EPYC 7B13"
    assert any("only runs on CPUs" in w and "Illegal instruction" in w for w in plan.warnings)


def test_native_without_cpu_flags_warns_that_the_label_is_empty() -> None:
    plan = plan_build(BuildRequest(arch="native"), BuildHost(remote_engine=True))
    assert plan.labels[p.LABEL_CPU_FLAGS] == ""
    assert any("could not read the CPU flags" in w for w in plan.warnings)
    assert any("Docker engine's machine" in w for w in plan.warnings)


def test_flag_list_becomes_copts_in_canonical_order_with_aliases() -> None:
    plan = plan_build(BuildRequest(arch="FMA, -mavx2,sse4_1,avx2"))
    assert plan.build_options == "--copt=-msse4.1 --copt=-mavx2 --copt=-mfma"
    assert plan.labels[p.LABEL_CPU_FLAGS] == "sse4.1,avx2,fma"
    assert plan.tag == "tfsops/tensorflow-serving:2.19.0-sse4.1-avx2-fma"


def test_unknown_cpu_flag_is_exit_3_naming_it_and_listing_allowed() -> None:
    with pytest.raises(InvalidInput) as err:
        plan_build(BuildRequest(arch="avx2,avx1024,neon"))
    assert err.value.exit_code == ExitCode.INVALID
    assert "'avx1024'" in err.value.message and "'neon'" in err.value.message
    assert err.value.hint and "avx512f" in err.value.hint and "sse4.2" in err.value.hint
    assert err.value.details["unknown"] == ["avx1024", "neon"]


def test_very_long_flag_list_gets_a_short_stable_default_tag() -> None:
    plan = plan_build(BuildRequest(arch=",".join(p.ISA_FLAGS)))
    tag = plan.tag.split(":", 1)[1]
    assert len(tag) <= 128 and tag.startswith("2.19.0-custom-")
    assert plan.tag == plan_build(BuildRequest(arch=",".join(reversed(p.ISA_FLAGS)))).tag


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9.0", "sm_90,compute_90"),
        ("8.0,9.0", "sm_80,sm_90,compute_90"),
        ("9.0, 8.6,8.0,8.6", "sm_80,sm_86,sm_90,compute_90"),
        ("7.5,12.0", "sm_75,sm_120,compute_120"),
        ("sm_89,8.0", "sm_80,sm_89,compute_80"),
        ("sm_60,sm_70,compute_90", "sm_60,sm_70,compute_90"),
    ],
)
def test_cuda_capabilities_conversion(text: str, expected: str) -> None:
    assert p.cuda_capability_targets(text) == expected


@pytest.mark.parametrize("text", ["8", "8.x", "80", "sm80", "2.0", "9.0.1", ",", "compute_9"])
def test_bad_cuda_capability_is_exit_3(text: str) -> None:
    with pytest.raises(InvalidInput) as err:
        plan_build(BuildRequest(gpu=True, cuda_capabilities=text))
    assert err.value.exit_code == ExitCode.INVALID
    assert "--cuda-capabilities" in err.value.message


def test_gpu_build_options_put_the_capabilities_after_cuda_clang() -> None:
    plan = plan_build(BuildRequest(gpu=True, cuda_capabilities="8.0,9.0"))
    opts = plan.build_options.split()
    assert opts[0] == "--config=cuda_clang"
    assert opts[-1] == "--repo_env=TF_CUDA_COMPUTE_CAPABILITIES=sm_80,sm_90,compute_90"
    assert "--config=release" in opts
    assert plan.labels[p.LABEL_CUDA_VERSION] == "12.2"
    assert plan.labels[p.LABEL_CUDA_CAPABILITIES] == "sm_80,sm_90,compute_90"
    assert plan.runtime_base == "nvidia/cuda:12.2.0-base-ubuntu20.04"
    assert (
        plan.dockerfiles["Dockerfile.devel"].count("FROM nvidia/cuda:12.2.0-base-ubuntu20.04") == 1
    )
    assert plan.tag.endswith(":2.19.0-gpu") and plan.devel_tag.endswith(":2.19.0-gpu-devel")


def test_gpu_capabilities_default_to_upstream_then_to_detected_gpus() -> None:
    default = plan_build(BuildRequest(gpu=True))  # 2.19: .bazelrc still has Maxwell (sm_50)
    assert default.cuda_capabilities == "sm_50,sm_60,sm_70,sm_80,compute_90"
    assert (
        plan_build(BuildRequest(gpu=True, version="2.20.0")).cuda_capabilities
        == "sm_60,sm_70,sm_80,sm_89,compute_90"
    )
    detected = plan_build(BuildRequest(gpu=True), BuildHost(gpu_capabilities=("8.9", "8.0")))
    assert detected.cuda_capabilities == "sm_80,sm_89,compute_89"
    assert any("nvidia-smi" in w for w in detected.warnings)
    explicit = plan_build(
        BuildRequest(gpu=True, cuda_capabilities="9.0"), BuildHost(gpu_capabilities=("8.0",))
    )
    assert explicit.cuda_capabilities == "sm_90,compute_90"


def test_cuda_capabilities_without_gpu_is_refused() -> None:
    with pytest.raises(InvalidInput, match="needs --gpu"):
        plan_build(BuildRequest(cuda_capabilities="8.0"))


@pytest.mark.parametrize("version", ["2.19", "v2.19.0", "latest", "2.19.0-beta", " ", "2.19.0.1"])
def test_bad_version_string_is_exit_3(version: str) -> None:
    with pytest.raises(InvalidInput) as err:
        plan_build(BuildRequest(version=version))
    assert err.value.exit_code == ExitCode.INVALID


@pytest.mark.parametrize(
    ("version", "ubuntu", "cuda_base", "warns"),
    [
        ("2.14.1", "ubuntu:20.04", "nvidia/cuda:11.8.0-base-ubuntu20.04", False),
        ("2.15.0", "ubuntu:20.04", "nvidia/cuda:12.2.0-base-ubuntu20.04", False),
        ("2.17.1", "ubuntu:20.04", "nvidia/cuda:12.2.0-base-ubuntu20.04", False),
        ("2.19.0-rc0", "ubuntu:20.04", "nvidia/cuda:12.2.0-base-ubuntu20.04", False),
        ("2.20.0", "ubuntu:22.04", "nvidia/cuda:12.5.1-base-ubuntu22.04", False),
        ("2.21.0", "ubuntu:22.04", "nvidia/cuda:12.5.1-base-ubuntu22.04", True),
    ],
)
def test_version_table(version: str, ubuntu: str, cuda_base: str, warns: bool) -> None:
    bases, warnings = p.bases_for(version)
    assert (bases.cpu_base, bases.cuda_base) == (ubuntu, cuda_base)
    assert bool(warnings) is warns
    plan = plan_build(BuildRequest(version=version))
    assert plan.steps[0].buildargs["TF_SERVING_VERSION_GIT_COMMIT"] == version
    assert f"FROM {ubuntu} AS base_build" in plan.dockerfiles["Dockerfile.devel"]


def test_versions_older_than_the_table_and_old_gpu_builds_are_refused() -> None:
    with pytest.raises(InvalidInput, match=r"2\.14\.0 and later"):
        plan_build(BuildRequest(version="2.13.0"))
    # 2.14's .bazelrc has no cuda_clang config (upstream builds it with --config=cuda, nvcc).
    with pytest.raises(InvalidInput, match="cuda_clang") as err:
        plan_build(BuildRequest(version="2.14.1", gpu=True))
    assert err.value.hint == "use --version 2.15.1 or later for --gpu"


@pytest.mark.parametrize(
    ("tag", "serving", "devel"),
    [
        ("myimg", "myimg:latest", "myimg:latest-devel"),
        ("org/img:v1", "org/img:v1", "org/img:v1-devel"),
        ("localhost:5000/img", "localhost:5000/img:latest", "localhost:5000/img:latest-devel"),
        (
            "localhost:5000/a/b:2.19-avx2",
            "localhost:5000/a/b:2.19-avx2",
            "localhost:5000/a/b:2.19-avx2-devel",
        ),
    ],
)
def test_tags(tag: str, serving: str, devel: str) -> None:
    plan = plan_build(BuildRequest(tag=tag))
    assert (plan.tag, plan.devel_tag) == (serving, devel)
    assert plan.steps[0].tags == (devel,) and plan.steps[1].tags == (serving,)


@pytest.mark.parametrize(
    "tag", ["Upper/Case", "img:bad tag", "img@sha256:abc", "img:" + "x" * 130, ""]
)
def test_bad_tags_are_exit_3(tag: str) -> None:
    if not tag:
        plan = plan_build(BuildRequest(tag=tag))  # empty = default tag
        assert plan.tag.startswith(p.DEFAULT_REPOSITORY)
        return
    with pytest.raises(InvalidInput):
        plan_build(BuildRequest(tag=tag))


def test_devel_image_skips_step_one() -> None:
    plan = plan_build(BuildRequest(devel_image="mine/devel:1", runtime_base="tfsops-double:latest"))
    assert [s.name for s in plan.steps] == ["serving"]
    assert plan.steps[0].buildargs["TF_SERVING_BUILD_IMAGE"] == "mine/devel:1"
    assert plan.steps[0].buildargs["RUNTIME_BASE"] == "tfsops-double:latest"
    assert plan.steps[0].labels[p.LABEL_DEVEL_IMAGE] == "mine/devel:1"
    assert not plan.builds_devel
    assert "ARG TF_SERVING_BUILD_IMAGE=mine/devel:1" in plan.dockerfiles["Dockerfile"]


def test_jobs() -> None:
    plan = plan_build(BuildRequest(jobs=4))
    assert plan.steps[0].buildargs["TF_SERVING_BAZEL_OPTIONS"] == "--jobs=4"
    assert plan.labels[p.LABEL_BAZEL_OPTIONS] == "--jobs=4 --config=release"
    with pytest.raises(InvalidInput):
        plan_build(BuildRequest(jobs=0))


def test_upstream_image_labels() -> None:
    cpu = p.upstream_image_labels("2.19.0", gpu=False)
    assert cpu[p.LABEL_CPU_FLAGS] == "sse4.2,avx" and cpu[p.LABEL_GPU] == "false"
    gpu = p.upstream_image_labels("2.20.0", gpu=True)
    assert gpu[p.LABEL_CUDA_VERSION] == "12.5"
    assert gpu[p.LABEL_CUDA_CAPABILITIES] == "sm_60,sm_70,sm_80,sm_89,compute_90"
    # Each stock image gets its own release's list, not the newest one.
    assert (
        p.upstream_image_labels("2.19.0", gpu=True)[p.LABEL_CUDA_CAPABILITIES]
        == "sm_50,sm_60,sm_70,sm_80,compute_90"
    )
    old = p.upstream_image_labels("2.14.1", gpu=True)
    assert old[p.LABEL_BAZEL_OPTIONS] == "--config=cuda --config=release"
    assert old[p.LABEL_CUDA_CAPABILITIES] == "sm_35,sm_50,sm_60,sm_70,sm_75,compute_80"


def test_templates_are_found_and_complete() -> None:
    names = {f.name for f in dockerfile_template_dir().iterdir()}
    assert {
        "Dockerfile.devel.j2",
        "Dockerfile.devel-gpu.j2",
        "Dockerfile.serving.j2",
        "Dockerfile.serving-gpu.j2",
    } <= names


def test_write_plan(tmp_path: Path) -> None:
    plan = plan_build(BuildRequest())
    written = write_plan(plan, tmp_path / "out")
    assert sorted(f.name for f in written) == ["Dockerfile", "Dockerfile.devel", "build-plan.json"]
    data = json.loads((tmp_path / "out" / "build-plan.json").read_text())
    assert data["schema"] == p.PLAN_SCHEMA and len(data["steps"]) == 2
    assert not list((tmp_path / "out").glob(".*.tmp"))


@pytest.mark.parametrize(
    ("host", "remote"),
    [
        (None, False),
        ("unix:///var/run/docker.sock", False),
        ("tcp://127.0.0.1:2375", False),
        ("tcp://build-box:2376", True),
        ("ssh://me@gpu-box", True),
    ],
)
def test_engine_is_remote(host: str | None, remote: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert engine_is_remote(host) is remote


# -- executor, with an in-memory builder ----------------------------------------


class FakeBuilder:
    """Replays canned engine messages; ``interrupt_after`` raises KeyboardInterrupt mid-stream."""

    def __init__(
        self,
        messages: dict[str, list[dict[str, Any]]],
        *,
        labels: Mapping[str, Mapping[str, str]] | None = None,
        interrupt_after: int | None = None,
    ) -> None:
        self.messages = messages
        self.labels = labels or {}
        self.interrupt_after = interrupt_after
        self.builds: list[dict[str, Any]] = []
        self.cancelled = False

    def build(
        self,
        *,
        context_dir: Path,
        dockerfile: str,
        tags: Sequence[str],
        buildargs: Mapping[str, str],
        labels: Mapping[str, str],
    ) -> Iterable[Mapping[str, Any]]:
        self.builds.append({"dockerfile": dockerfile, "tags": list(tags), "labels": dict(labels)})
        return self._stream(dockerfile)

    def _stream(self, dockerfile: str) -> Iterator[Mapping[str, Any]]:
        for i, message in enumerate(self.messages[dockerfile]):
            if self.interrupt_after is not None and i == self.interrupt_after:
                raise KeyboardInterrupt
            yield message

    def image_labels(self, ref: str) -> Mapping[str, str] | None:
        return self.labels.get(ref)

    def cancel(self) -> None:
        self.cancelled = True


def _ok_stream(image: str) -> list[dict[str, Any]]:
    return [
        {"stream": "Step 1/3 : FROM base\n"},
        {"stream": " ---> 1234567890ab\n"},
        {"stream": "Step 2/3 : RUN make     all \\\n"},
        {"stream": " ---> Running in abcdef\n"},
        {"stream": "compiling "},
        {"stream": "1/2\ncompiling 2/2\n"},
        {"stream": "Removing intermediate container abcdef\n"},
        {"stream": "Step 3/3 : LABEL x=y\n"},
        {"aux": {"ID": f"sha256:{image}"}},
        {"stream": f"Successfully built {image[:12]}\n"},
    ]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 1.5
        return self.now


def test_executor_builds_both_steps_with_progress(tmp_path: Path) -> None:
    plan = plan_build(BuildRequest(tag="t/img:1"))
    builder = FakeBuilder(
        {"Dockerfile.devel": _ok_stream("a" * 64), "Dockerfile": _ok_stream("b" * 64)}
    )
    lines: list[str] = []
    outcome = execute_plan(plan, builder, tmp_path, lines.append, clock=Clock())
    assert [s.image_id for s in outcome.steps] == ["sha256:" + "a" * 64, "sha256:" + "b" * 64]
    assert [b["tags"] for b in builder.builds] == [["t/img:1-devel"], ["t/img:1"]]
    assert builder.builds[1]["labels"][p.LABEL_DEVEL_IMAGE] == "t/img:1-devel"
    assert outcome.duration_s > 0 and all(s.duration_s > 0 for s in outcome.steps)
    text = "\n".join(lines)
    assert re.search(r"^\[devel 0:\d\d step 2/3\] RUN make all \\$", text, re.M)
    assert re.search(r"^\[devel 0:\d\d step 2/3\]   compiling 1/2$", text, re.M)
    assert "Running in" not in text and "Removing intermediate" not in text
    assert "---> 1234567890ab" not in text
    assert re.search(r"^\[serving \d:\d\d\] built t/img:1 ", text, re.M)


def test_executor_failure_is_exit_5_with_the_last_lines(tmp_path: Path) -> None:
    plan = plan_build(BuildRequest())
    failing: list[dict[str, Any]] = [
        {"stream": "Step 1/2 : FROM base\n"},
        {"stream": "Step 2/2 : RUN bazel build\n"},
        *({"stream": f"line {i}\n"} for i in range(40)),
        {
            "errorDetail": {
                "code": 1,
                "message": "The command '/bin/sh -c bazel build' returned 1",
            },
            "error": "The command '/bin/sh -c bazel build' returned 1",
        },
    ]
    builder = FakeBuilder({"Dockerfile.devel": failing})
    with pytest.raises(OperationFailed) as err:
        execute_plan(plan, builder, tmp_path, lambda _: None)
    assert err.value.exit_code == ExitCode.FAILED
    assert "devel image build failed at Step 2/2 : RUN bazel build" in err.value.message
    assert "returned 1" in err.value.message and "line 39" in err.value.message
    assert "line 0\n" not in err.value.message  # only the tail
    assert err.value.details["last_lines"][-1] == "line 39"
    assert len(builder.builds) == 1  # the serving step never started


def test_executor_without_image_id_fails(tmp_path: Path) -> None:
    plan = plan_build(BuildRequest(devel_image="d:1"))
    builder = FakeBuilder({"Dockerfile": [{"stream": "Step 1/1 : FROM x\n"}]}, labels={"d:1": {}})
    with pytest.raises(OperationFailed, match="without reporting an image id"):
        execute_plan(plan, builder, tmp_path, lambda _: None)


def test_executor_ctrl_c_cancels_and_says_what_was_left(tmp_path: Path) -> None:
    plan = plan_build(BuildRequest(tag="t/img:1"))
    builder = FakeBuilder(
        {"Dockerfile.devel": _ok_stream("a" * 64) + [{"stream": "x\n"}] * 5}, interrupt_after=4
    )
    with pytest.raises(Interrupted) as err:
        execute_plan(plan, builder, tmp_path, lambda _: None)
    assert builder.cancelled
    assert err.value.exit_code == ExitCode.INTERRUPTED
    assert "during the devel build at Step 2/3 : RUN make all" in err.value.message
    assert "built: nothing" in err.value.message
    assert "not built: devel (t/img:1-devel), serving (t/img:1)" in err.value.message


def test_executor_uses_the_devel_images_own_labels(tmp_path: Path) -> None:
    native = plan_build(BuildRequest(arch="native"), EPYC)
    devel_labels = {**native.labels, "maintainer": "someone"}
    plan = plan_build(BuildRequest(devel_image="d:native", arch="portable"))
    builder = FakeBuilder({"Dockerfile": _ok_stream("c" * 64)}, labels={"d:native": devel_labels})
    outcome = execute_plan(plan, builder, tmp_path, lambda _: None)
    labels = builder.builds[0]["labels"]
    assert labels[p.LABEL_ARCH] == "native"
    assert labels[p.LABEL_CPU_FLAGS] == native.labels[p.LABEL_CPU_FLAGS]
    assert labels[p.LABEL_DEVEL_IMAGE] == "d:native"
    assert "maintainer" not in labels
    assert any("built with other options" in w for w in outcome.warnings)


def test_executor_warns_about_unlabelled_or_missing_devel_images(tmp_path: Path) -> None:
    plan = plan_build(BuildRequest(devel_image="d:plain", arch="avx2"))
    builder = FakeBuilder({"Dockerfile": _ok_stream("c" * 64)}, labels={"d:plain": {"a": "b"}})
    outcome = execute_plan(plan, builder, tmp_path, lambda _: None)
    assert builder.builds[0]["labels"][p.LABEL_CPU_FLAGS] == "avx2"
    assert any("no io.tfsops.build labels" in w for w in outcome.warnings)
    missing = FakeBuilder({"Dockerfile": _ok_stream("c" * 64)})
    outcome = execute_plan(plan, missing, tmp_path, lambda _: None)
    assert any("not in the local engine" in w for w in outcome.warnings)


def test_format_elapsed() -> None:
    assert [format_elapsed(s) for s in (0, 59.9, 61, 3600, 7322)] == [
        "0:00",
        "0:59",
        "1:01",
        "1:00:00",
        "2:02:02",
    ]


# -- the command ------------------------------------------------------------------

runner = CliRunner()


def test_cli_dry_run_writes_files(tmp_path: Path) -> None:
    out = tmp_path / "plan"
    result = runner.invoke(
        app, ["--json", "build", "--arch", "avx2,fma", "--dry-run", "-o", str(out)]
    )
    assert result.exit_code == 0, result.stderr
    envelope = json.loads(result.stdout)
    assert envelope["ok"] and envelope["data"]["dry_run"] is True
    assert sorted(f.name for f in out.iterdir()) == [
        "Dockerfile",
        "Dockerfile.devel",
        "build-plan.json",
    ]
    on_disk = json.loads((out / "build-plan.json").read_text())
    assert on_disk == envelope["data"]["plan"]


def test_cli_dry_run_prints_the_plan() -> None:
    result = runner.invoke(app, ["build", "--gpu", "--cuda-capabilities", "9.0", "--dry-run"])
    assert result.exit_code == 0, result.stderr
    assert "docker build" in result.stdout
    assert (
        "--build-arg TF_SERVING_BUILD_IMAGE=tfsops/tensorflow-serving:2.19.0-gpu-devel"
        in result.stdout
    )
    assert "TF_CUDA_COMPUTE_CAPABILITIES=sm_90,compute_90" in result.stdout


def test_cli_mkl_dry_run() -> None:
    result = runner.invoke(app, ["--json", "build", "--mkl", "--version", "2.20.0", "--dry-run"])
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)["data"]["plan"]
    assert plan["mkl"] is True and plan["release_table_row"] == "2.20.0"
    assert plan["bazel_options"] == "--config=mkl --config=release --config=clang_local"
    assert plan["tag"] == "tfsops/tensorflow-serving:2.20.0-mkl"


def test_cli_native_warning_is_in_json_and_stderr() -> None:
    result = runner.invoke(app, ["--json", "build", "--arch", "native", "--dry-run"])
    assert result.exit_code == 0
    warnings = json.loads(result.stdout)["warnings"]
    assert any("-march=native" in w for w in warnings)
    assert "warning: --arch native" in result.stderr
    assert "dockerfiles" in json.loads(result.stdout)["data"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--arch", "avx,avx9000"], "avx9000"),
        (["--gpu", "--cuda-capabilities", "nine"], "nine"),
        (["--version", "2.19"], "2.19"),
        (["--tag", "Bad Tag"], "Bad Tag"),
        (["--mkl", "--gpu"], "--mkl and --gpu"),
        (["--mkl", "--version", "2.21.0"], "Dockerfile.devel-mkl"),
        (["--gpu", "--version", "2.14.1"], "cuda_clang"),
    ],
)
def test_cli_bad_input_exit_3(args: list[str], needle: str) -> None:
    result = runner.invoke(app, ["--json", "build", *args, "--dry-run"])
    assert result.exit_code == 3
    error = json.loads(result.stdout)["error"]
    assert needle in error["message"] and error["type"] == "InvalidInput"


def test_cli_unreachable_engine_is_exit_4(tmp_path: Path) -> None:
    sock = tmp_path / "nothing.sock"
    result = runner.invoke(
        app,
        ["--json", "--docker-host", f"unix://{sock}", "build", "--devel-image", "x:1", "-t", "y:1"],
    )
    assert result.exit_code == 4, result.stdout
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "EngineUnreachable" and "--docker-host" in error["hint"]
