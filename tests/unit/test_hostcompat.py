"""Host compatibility: image build labels against synthetic host facts, and host-fact parsing."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from tfsops.build import plan as p
from tfsops.build.hostcompat import (
    GpuInfo,
    HostFacts,
    check_image_compat,
    doctor_section,
    effective_labels,
    ensure_image_compatible,
)
from tfsops.build.hostfacts import (
    parse_cpuinfo,
    parse_gpu_query,
    parse_nvidia_smi_banner,
    read_host_facts,
)
from tfsops.build.plan import BuildHost, BuildRequest, plan_build
from tfsops.errors import ExitCode, InvalidInput

CPUINFO_SAMPLE = Path(__file__).parent / "golden" / "build" / "cpuinfo-amd-epyc.txt"

NO_DRIVER = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
AVX2_HOST = HostFacts(
    machine="x86_64",
    cpu_model="AMD EPYC",
    cpu_flags=frozenset({"sse3", "ssse3", "sse4.1", "sse4.2", "popcnt", "avx", "avx2", "fma"}),
)
H100 = GpuInfo(0, "NVIDIA H100 80GB HBM3", "9.0")
A100 = GpuInfo(1, "NVIDIA A100-SXM4-40GB", "8.0")
T4 = GpuInfo(2, "Tesla T4", "7.5")


def gpu_host(*gpus: GpuInfo, cuda: str | None = "12.4", driver: str = "550.54.15") -> HostFacts:
    return HostFacts(
        machine="x86_64",
        cpu_model="Intel Xeon",
        cpu_flags=AVX2_HOST.cpu_flags,
        nvidia_smi=True,
        driver_version=driver,
        cuda_version=cuda,
        gpus=gpus,
    )


def labels_for(**kwargs: object) -> dict[str, str]:
    host = BuildHost(cpu_flags=AVX2_HOST.cpu_flags, cpu_model="AMD EPYC")
    return dict(plan_build(BuildRequest(**kwargs), host).labels)  # type: ignore[arg-type]


# -- CPU ----------------------------------------------------------------------------


def test_portable_and_native_images_run_on_the_build_host() -> None:
    assert check_image_compat(labels_for(), AVX2_HOST).ok
    report = check_image_compat(labels_for(arch="native"), AVX2_HOST)
    assert report.ok and report.problems == ()
    assert report.needs["cpu_flags"] == [
        "sse3",
        "ssse3",
        "sse4.1",
        "sse4.2",
        "popcnt",
        "avx",
        "avx2",
        "fma",
    ]


def test_missing_cpu_flags_are_explained() -> None:
    labels = labels_for(arch="avx2,avx512f,avx512bw")
    report = check_image_compat(labels, AVX2_HOST)
    assert not report.ok
    (problem,) = report.problems
    assert "image needs CPU flags avx512f,avx512bw which this CPU (AMD EPYC) lacks" in problem
    assert "'Illegal instruction'" in problem


def test_native_image_on_an_older_cpu_names_the_build_cpu() -> None:
    labels = labels_for(arch="native")
    old = HostFacts(
        cpu_model="Intel Xeon E5-2670", cpu_flags=frozenset({"sse4.2", "avx", "popcnt"})
    )
    (problem,) = check_image_compat(labels, old).problems
    assert (
        "image needs CPU flags sse3,ssse3,sse4.1,avx2,fma which this CPU (Intel Xeon E5-2670)"
        in problem
    )
    assert "built for AMD EPYC" in problem


def test_arm_host_and_unknown_cpu_flags() -> None:
    arm = HostFacts(machine="aarch64", cpu_flags=frozenset())
    (problem,) = check_image_compat(labels_for(), arm).problems
    assert "aarch64" in problem and "exec format error" in problem
    unknown = check_image_compat(labels_for(arch="avx2"), HostFacts(cpu_flags=None))
    assert unknown.ok and "could not read this host's CPU flags" in unknown.warnings[0]
    odd = check_image_compat({p.LABEL_CPU_FLAGS: "avx2,avx10"}, AVX2_HOST)
    assert odd.ok and "avx10" in odd.warnings[0]


def test_images_without_build_labels_need_nothing() -> None:
    report = check_image_compat({"maintainer": "x"}, HostFacts(machine="aarch64"))
    assert report.ok and report.warnings == () and report.needs == {}


# -- GPU ----------------------------------------------------------------------------


def test_gpu_image_without_a_driver() -> None:
    labels = labels_for(gpu=True, cuda_capabilities="8.0,9.0")
    (problem,) = check_image_compat(labels, AVX2_HOST).problems
    assert problem.startswith("no NVIDIA driver found")
    assert "CUDA 12.2" in problem and "NVIDIA Container Toolkit" in problem


def test_gpu_image_when_nvidia_smi_fails_or_sees_no_gpu() -> None:
    labels = labels_for(gpu=True)
    broken = HostFacts(
        cpu_flags=AVX2_HOST.cpu_flags,
        nvidia_smi=True,
        nvidia_error="NVML: Driver/library version mismatch",
    )
    (problem,) = check_image_compat(labels, broken).problems
    assert "nvidia-smi failed (NVML: Driver/library version mismatch)" in problem
    empty = check_image_compat(labels, gpu_host())
    assert any("lists no GPUs" in x for x in empty.problems)


def test_gpu_image_on_a_matching_host() -> None:
    labels = labels_for(gpu=True, cuda_capabilities="8.0,9.0")
    report = check_image_compat(labels, gpu_host(H100, A100))
    assert report.ok, report.problems
    assert report.warnings == ()
    assert report.needs["cuda_version"] == "12.2"


def test_driver_too_old_for_the_image_cuda() -> None:
    labels = labels_for(gpu=True, version="2.20.0")  # CUDA 12.5
    (problem,) = check_image_compat(
        labels, gpu_host(H100, cuda="12.2", driver="535.104.05")
    ).problems
    assert "driver 535.104.05 supports CUDA up to 12.2, but the image needs CUDA 12.5" in problem
    assert "driver >= 555.42.02" in problem
    assert "CUDA driver version is insufficient" in problem
    newer = check_image_compat(labels, gpu_host(H100, cuda="13.0"))
    assert newer.ok


def test_compute_capability_coverage() -> None:
    labels = labels_for(gpu=True, cuda_capabilities="8.0,9.0")  # sm_80,sm_90,compute_90
    report = check_image_compat(labels, gpu_host(T4, A100, GpuInfo(3, "RTX 4090", "8.9")))
    (problem,) = report.problems  # sm_80 runs on 8.9; nothing runs on 7.5
    assert "GPU 2 (Tesla T4, compute capability 7.5) is not covered" in problem
    assert "no kernel image is available" in problem and "--cuda-capabilities 7.5" in problem


def test_ptx_only_coverage_is_a_warning() -> None:
    upstream = p.upstream_image_labels("2.19.0", gpu=True)  # sm_50,...,sm_80,compute_90
    report = check_image_compat(upstream, gpu_host(H100, GpuInfo(1, "B200", "10.0")))
    assert report.ok
    assert len(report.warnings) == 2
    assert all("slow, not a crash" in w and "compute_90 PTX" in w for w in report.warnings)


def test_blackwell_on_an_image_compiled_up_to_sm_90_is_slow_jit_not_a_crash() -> None:
    labels = labels_for(gpu=True, version="2.20.0", cuda_capabilities="8.0,9.0")
    blackwell = GpuInfo(0, "NVIDIA RTX PRO 6000 Blackwell Server Edition", "12.0")
    report = check_image_compat(labels, gpu_host(blackwell, cuda="12.8", driver="570.133.20"))
    assert report.ok, report.problems
    (warning,) = report.warnings
    assert warning.startswith(
        "GPU 0 (NVIDIA RTX PRO 6000 Blackwell Server Edition, compute capability 12.0) has no "
        "precompiled kernels in the image (sm_80,sm_90,compute_90): slow, not a crash"
    )
    assert "--cuda-capabilities 12.0" in warning
    # Without the PTX there is nothing to JIT: that one would crash.
    sass_only = {**labels, p.LABEL_CUDA_CAPABILITIES: "sm_80,sm_90"}
    (problem,) = check_image_compat(sass_only, gpu_host(blackwell, cuda="12.8")).problems
    assert "no kernel image is available" in problem


def test_devices_restrict_the_gpu_checks() -> None:
    labels = labels_for(gpu=True, cuda_capabilities="9.0")
    host = gpu_host(H100, T4)
    assert not check_image_compat(labels, host).ok
    assert check_image_compat(labels, host, devices=[0]).ok
    (problem,) = check_image_compat(labels, host, devices=[0, 5]).problems
    assert "GPU device(s) 5 not present" in problem


def test_unknown_compute_capability_and_cuda_version_are_warnings() -> None:
    labels = labels_for(gpu=True, cuda_capabilities="8.0")
    report = check_image_compat(labels, gpu_host(GpuInfo(0, "Old driver GPU", None), cuda=None))
    assert report.ok
    assert any("compute capability unknown" in w for w in report.warnings)
    assert any("could not read the CUDA version" in w for w in report.warnings)


# -- the functions deploy and doctor call -----------------------------------------------


def test_ensure_image_compatible_refuses_with_exit_3_and_a_force_hint() -> None:
    labels = labels_for(arch="avx512f", gpu=True, cuda_capabilities="9.0")
    with pytest.raises(InvalidInput) as err:
        ensure_image_compatible(labels, AVX2_HOST, force=False, image="me/tfs:opt")
    assert err.value.exit_code == ExitCode.INVALID
    assert err.value.message.startswith("image me/tfs:opt cannot run on this host:\n  - ")
    assert "avx512f" in err.value.message and "no NVIDIA driver found" in err.value.message
    assert err.value.hint is not None and "--force overrides" in err.value.hint
    assert len(err.value.details["problems"]) == 2


def test_ensure_image_compatible_with_force_returns_warnings() -> None:
    labels = labels_for(arch="avx512f")
    warnings = ensure_image_compatible(labels, AVX2_HOST, force=True)
    assert len(warnings) == 1 and warnings[0].startswith(
        "ignored (--force): image needs CPU flags avx512f"
    )
    assert ensure_image_compatible(labels_for(arch="avx2"), AVX2_HOST, force=False) == []


def test_stock_tensorflow_serving_images_are_checked_too() -> None:
    assert effective_labels({}, "tensorflow/serving:2.19.0")[p.LABEL_CPU_FLAGS] == "sse4.2,avx"
    assert (
        effective_labels({}, "docker.io/tensorflow/serving:2.20.0-gpu")[p.LABEL_CUDA_VERSION]
        == "12.5"
    )
    assert effective_labels({}, "tensorflow/serving:latest") == {}
    assert effective_labels({}, "tensorflow/serving:1.15.0") == {}
    assert effective_labels({}, "someone/else:2.19.0") == {}
    with pytest.raises(InvalidInput, match="no NVIDIA driver"):
        ensure_image_compatible({}, AVX2_HOST, force=False, image="tensorflow/serving:2.19.0-gpu")
    old_cpu = HostFacts(cpu_model="Core 2", cpu_flags=frozenset({"sse3", "ssse3", "sse4.1"}))
    with pytest.raises(InvalidInput, match=r"sse4\.2,avx"):
        ensure_image_compatible({}, old_cpu, force=False, image="tensorflow/serving:2.19.0")


def test_doctor_section() -> None:
    host = gpu_host(H100)
    section = doctor_section(host)
    assert section["image"] is None
    assert section["host"]["cpu_flags"] == [
        "sse3",
        "ssse3",
        "sse4.1",
        "sse4.2",
        "popcnt",
        "avx",
        "avx2",
        "fma",
    ]
    assert section["host"]["gpus"] == [{"index": 0, "name": H100.name, "compute_capability": "9.0"}]
    assert section["host"]["nvidia_driver_found"] is True
    assert section["host"]["cuda_version"] == "12.4"
    checked = doctor_section(host, labels_for(arch="avx512f"), image="me/tfs:opt")
    assert checked["image"]["ref"] == "me/tfs:opt" and checked["image"]["ok"] is False
    assert checked["image"]["labels"][p.LABEL_CPU_FLAGS] == "avx512f"
    stock = doctor_section(host, None, image="tensorflow/serving:2.19.0-gpu")
    assert stock["image"]["ok"] is True


# -- host facts ---------------------------------------------------------------------------


def test_parse_real_cpuinfo_sample() -> None:
    raw, model = parse_cpuinfo(CPUINFO_SAMPLE.read_text())
    assert model == "AMD EPYC"
    assert raw is not None and {"sse4_2", "avx2", "fma", "pni"} <= raw
    assert p.isa_flags_from_cpuinfo(raw) == frozenset(
        {
            "sse3",
            "ssse3",
            "sse4.1",
            "sse4.2",
            "popcnt",
            "avx",
            "avx2",
            "fma",
            "f16c",
            "bmi",
            "bmi2",
            "lzcnt",
            "movbe",
            "aes",
            "pclmul",
        }
    )


def test_parse_cpuinfo_intersects_processors_and_handles_arm() -> None:
    text = (
        "processor\t: 0\nmodel name\t: Hybrid CPU\nflags\t\t: sse4_2 avx avx2 avx512f\n\n"
        "processor\t: 1\nmodel name\t: Hybrid CPU\nflags\t\t: sse4_2 avx avx2\n"
    )
    raw, model = parse_cpuinfo(text)
    assert raw == frozenset({"sse4_2", "avx", "avx2"}) and model == "Hybrid CPU"
    raw, model = parse_cpuinfo(
        "processor\t: 0\nFeatures\t: fp asimd evtstrm aes\nCPU implementer\t: 0x41\n"
    )
    assert raw is None and model is None


def test_parse_nvidia_smi_outputs() -> None:
    gpus, driver = parse_gpu_query(
        "NVIDIA H100 80GB HBM3, 9.0, 550.54.15\nNVIDIA A100-SXM4-40GB, 8.0, 550.54.15\n"
    )
    assert driver == "550.54.15"
    assert gpus == [
        GpuInfo(0, "NVIDIA H100 80GB HBM3", "9.0"),
        GpuInfo(1, "NVIDIA A100-SXM4-40GB", "8.0"),
    ]
    old, driver = parse_gpu_query("Tesla K80, 470.82.01\n")
    assert old == [GpuInfo(0, "Tesla K80", None)] and driver == "470.82.01"
    banner = (
        "+------------------------------------------------------------------------------+\n"
        "| NVIDIA-SMI 550.54.15       Driver Version: 550.54.15      CUDA Version: 12.4 |\n"
    )
    assert parse_nvidia_smi_banner(banner) == ("550.54.15", "12.4")
    assert parse_nvidia_smi_banner("garbage") == (None, None)


def _fake_run(outputs: dict[str, str | Exception]):  # type: ignore[no-untyped-def]
    def run(argv: Sequence[str]) -> str:
        key = argv[1] if len(argv) > 1 else ""
        out = outputs[key]
        if isinstance(out, Exception):
            raise out
        return out

    return run


def test_read_host_facts_with_and_without_nvidia_smi(tmp_path: Path) -> None:
    no_gpu = read_host_facts(CPUINFO_SAMPLE, which=lambda _: None)
    assert no_gpu.nvidia_smi is False and no_gpu.gpus == ()
    assert no_gpu.cpu_flags is not None and "avx2" in no_gpu.cpu_flags
    missing = read_host_facts(tmp_path / "absent", which=lambda _: None)
    assert missing.cpu_flags is None

    run = _fake_run(
        {
            "--query-gpu=name,compute_cap,driver_version": "NVIDIA L4, 8.9, 535.104.05\n",
            "": "| NVIDIA-SMI 535.104.05   Driver Version: 535.104.05   CUDA Version: 12.2 |\n",
        }
    )
    facts = read_host_facts(CPUINFO_SAMPLE, which=lambda _: "/usr/bin/nvidia-smi", run=run)
    assert facts.gpus == (GpuInfo(0, "NVIDIA L4", "8.9"),)
    assert (facts.driver_version, facts.cuda_version, facts.nvidia_error) == (
        "535.104.05",
        "12.2",
        None,
    )

    old_driver = _fake_run(
        {
            "--query-gpu=name,compute_cap,driver_version": subprocess.CalledProcessError(
                2, "nvidia-smi"
            ),
            "--query-gpu=name,driver_version": "Tesla K80, 470.82.01\n",
            "": "Driver Version: 470.82.01 CUDA Version: 11.4",
        }
    )
    facts = read_host_facts(CPUINFO_SAMPLE, which=lambda _: "nvidia-smi", run=old_driver)
    assert facts.gpus == (GpuInfo(0, "Tesla K80", None),) and facts.cuda_version == "11.4"

    broken = _fake_run(
        {
            "--query-gpu=name,compute_cap,driver_version": subprocess.CalledProcessError(
                9,
                "nvidia-smi",
                stderr=NO_DRIVER,
            ),
            "--query-gpu=name,driver_version": subprocess.CalledProcessError(
                9,
                "nvidia-smi",
                stderr=NO_DRIVER,
            ),
        }
    )
    facts = read_host_facts(CPUINFO_SAMPLE, which=lambda _: "nvidia-smi", run=broken)
    assert facts.nvidia_smi and facts.nvidia_error is not None
    assert "couldn't communicate" in facts.nvidia_error
    (problem,) = check_image_compat(labels_for(gpu=True), facts).problems
    assert "nvidia-smi failed" in problem


def test_read_host_facts_on_this_machine() -> None:
    facts = read_host_facts()
    assert facts.machine
    if Path("/proc/cpuinfo").exists() and facts.machine == "x86_64":
        assert facts.cpu_flags is not None and "sse4.2" in facts.cpu_flags


# -- GPU pre-flight from nvidia-smi output -------------------------------------------------
#
# The files in golden/build/nvidia-smi/ follow the output of NVIDIA's nvidia-smi: "<host>.txt"
# is plain `nvidia-smi` (the table layout of drivers 535 and 550+; the Blackwell name truncated
# as nvidia-smi truncates long names), "<host>.csv" is `nvidia-smi
# --query-gpu=name,compute_cap,driver_version --format=csv,noheader` (compute_cap since
# driver ~510). No GPU is attached to the machines these tests run on.

SMI = Path(__file__).parent / "golden" / "build" / "nvidia-smi"


def smi_host(name: str) -> HostFacts:
    """read_host_facts through its nvidia-smi runner interface, fed a recorded output."""
    run = _fake_run(
        {
            "--query-gpu=name,compute_cap,driver_version": (SMI / f"{name}.csv").read_text(),
            "": (SMI / f"{name}.txt").read_text(),
        }
    )
    return read_host_facts(CPUINFO_SAMPLE, which=lambda _: "/usr/bin/nvidia-smi", run=run)


def test_recorded_nvidia_smi_outputs_are_parsed() -> None:
    t4 = smi_host("t4-535")
    assert (t4.driver_version, t4.cuda_version) == ("535.104.05", "12.2")
    assert t4.gpus == (GpuInfo(0, "Tesla T4", "7.5"),)
    h100 = smi_host("h100x2-550")
    assert (h100.driver_version, h100.cuda_version) == ("550.54.15", "12.4")
    assert [g.compute_capability for g in h100.gpus] == ["9.0", "9.0"]
    pro = smi_host("rtxpro6000-575")
    assert (pro.driver_version, pro.cuda_version) == ("575.57.08", "12.9")
    assert pro.gpus == (GpuInfo(0, "NVIDIA RTX PRO 6000 Blackwell Server Edition", "12.0"),)


def test_preflight_driver_too_old_for_the_2_20_image() -> None:
    with pytest.raises(InvalidInput) as err:
        ensure_image_compatible(
            {}, smi_host("t4-535"), force=False, image="tensorflow/serving:2.20.0-gpu"
        )
    assert err.value.exit_code == ExitCode.INVALID
    assert (
        "the NVIDIA driver 535.104.05 supports CUDA up to 12.2, but the image needs CUDA 12.5 "
        "(driver >= 555.42.02)" in err.value.message
    )
    # The same host runs 2.19's CUDA 12.2 image, with native sm_70 kernels for the T4 (7.5).
    assert (
        ensure_image_compatible(
            {}, smi_host("t4-535"), force=False, image="tensorflow/serving:2.19.0-gpu"
        )
        == []
    )


def test_preflight_blackwell_runs_2_19_through_ptx_jit() -> None:
    warnings = ensure_image_compatible(
        {}, smi_host("rtxpro6000-575"), force=False, image="tensorflow/serving:2.19.0-gpu"
    )
    (warning,) = warnings
    assert "compute capability 12.0" in warning and "slow, not a crash" in warning
    assert "compute_90 PTX" in warning
    labels = labels_for(gpu=True, cuda_capabilities="12.0")
    assert ensure_image_compatible(labels, smi_host("rtxpro6000-575"), force=False) == []


class _ImageOnlyRuntime:
    """The runtime side deploy's pre-flight uses before anything is created: image labels."""

    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels
        self.calls: list[str] = []

    def image_labels(self, ref: str) -> dict[str, str]:
        self.calls.append(f"image_labels {ref}")
        return self.labels


def test_deploy_preflight_refuses_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tfsops.executor import ApplyOptions, Executor
    from tfsops.plan.diff import compute_plan
    from tfsops.services import Services
    from tfsops.spec.load import spec_from_data

    monkeypatch.setenv("TFSOPS_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "models" / "m" / "1").mkdir(parents=True)
    spec = spec_from_data(
        {
            "name": "gpuapp",
            "version": "2.20.0",
            "gpu": {"devices": "all"},
            "models": [{"name": "m", "path": "models/m"}],
        },
        base_dir=tmp_path,
        source="test",
    )
    runtime = _ImageOnlyRuntime({})
    services = Services(
        runtime_factory=lambda: runtime,  # type: ignore[arg-type,return-value]
        serving_factory=None,  # type: ignore[arg-type]
        admin_factory=None,  # type: ignore[arg-type]
        host_facts=lambda: smi_host("t4-535"),
    )
    executor = Executor(services)
    files, desired, _state = executor.desired(spec)
    plan = compute_plan(desired, files.models_config, None, None)
    assert plan.container.image == "tensorflow/serving:2.20.0-gpu"
    with pytest.raises(InvalidInput, match=r"supports CUDA up to 12\.2, but the image needs"):
        executor._preflight(spec, plan, ApplyOptions())
    assert runtime.calls == ["image_labels tensorflow/serving:2.20.0-gpu"]


def test_stock_images_are_checked_with_their_own_releases_capabilities() -> None:
    """2.19's stock GPU image still has Maxwell kernels (sm_50); 2.20's does not."""
    m60 = gpu_host(GpuInfo(0, "Tesla M60", "5.2"), cuda="12.9", driver="575.57.08")
    assert (
        ensure_image_compatible({}, m60, force=False, image="tensorflow/serving:2.19.0-gpu") == []
    )
    with pytest.raises(InvalidInput, match=r"Tesla M60, compute capability 5\.2\) is not covered"):
        ensure_image_compatible({}, m60, force=False, image="tensorflow/serving:2.20.0-gpu")


def test_doctor_section_reports_the_gpu_preflight() -> None:
    old_driver = doctor_section(smi_host("t4-535"), None, image="tensorflow/serving:2.20.0-gpu")
    image = old_driver["image"]
    assert image["ok"] is False
    assert image["needs"]["cuda_version"] == "12.5"
    assert old_driver["host"]["cuda_version"] == "12.2"
    assert any("supports CUDA up to 12.2" in problem for problem in image["problems"])
    blackwell = doctor_section(
        smi_host("rtxpro6000-575"), None, image="tensorflow/serving:2.20.0-gpu"
    )
    assert blackwell["image"]["ok"] is True
    assert any("slow, not a crash" in w for w in blackwell["image"]["warnings"])
