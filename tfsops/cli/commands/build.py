"""``tfsops build``: optimized and GPU TF Serving images, in two stages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tfsops.cli.app import app
from tfsops.cli.context import GlobalOptions, execute
from tfsops.cli.output import Result, table


@app.command("build")
def build(
    ctx: typer.Context,
    arch: Annotated[
        str,
        typer.Option(
            "--arch",
            help="CPU target: 'portable' (upstream's --config=release: AVX, SSE4.2), 'native' "
            "(-march=native: this CPU only) or a list such as avx,avx2,fma,sse4.2,avx512f.",
        ),
    ] = "portable",
    gpu: Annotated[
        bool, typer.Option("--gpu", help="Build the CUDA image (--config=cuda_clang).")
    ] = False,
    mkl: Annotated[
        bool,
        typer.Option(
            "--mkl",
            help="Build with oneDNN (--config=mkl), as upstream's Dockerfile.devel-mkl; "
            "CPU only, refused (exit 3) where tfsops's release table has no such file.",
        ),
    ] = False,
    cuda_capabilities: Annotated[
        str | None,
        typer.Option(
            "--cuda-capabilities",
            help="GPU compute capabilities to compile for, e.g. 8.0,9.0 (default: this host's "
            "GPUs from nvidia-smi, else upstream's list for --version, from its .bazelrc).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        str, typer.Option("--version", help="TF Serving release to build.")
    ] = "2.19.0",
    tag: Annotated[
        str | None,
        typer.Option(
            "--tag",
            "-t",
            help="Serving image tag (the devel image gets '<tag>-devel'); default "
            "tfsops/tensorflow-serving:<version>[-<arch>][-gpu|-mkl].",
            show_default=False,
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            help="Parallel bazel jobs (--jobs=N); lower it if the build runs out of memory.",
            min=1,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print (or with -o write) the plan and Dockerfiles; build nothing."
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="Write Dockerfile.devel, Dockerfile and build-plan.json here.",
            show_default=False,
        ),
    ] = None,
    devel_image: Annotated[
        str | None,
        typer.Option(
            "--devel-image",
            help="Use this existing devel image; skip the (long) devel build.",
            show_default=False,
        ),
    ] = None,
    runtime_base: Annotated[
        str | None,
        typer.Option(
            "--runtime-base",
            help="Base of the final serving stage (default: upstream's ubuntu or "
            "nvidia/cuda base for the version).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Build an optimized (or GPU) TF Serving image in two stages.

    Stage 1 compiles tensorflow_model_server in a devel image (tag
    '<tag>-devel') with the bazel options for --arch / --gpu; stage 2 copies
    the binary into a slim serving image (TF_SERVING_BUILD_IMAGE). Both carry
    io.tfsops.build.* labels recording the CPU flags, CUDA version and GPU
    capabilities they need; deploy refuses hosts that lack them.

    Compiling TF Serving takes hours and tens of GB of RAM and disk.
    Progress goes to stderr; Ctrl-C stops the build.
    """

    def action(opts: GlobalOptions) -> Result:
        from tfsops.build.plan import BuildRequest
        from tfsops.build.service import make_plan, run_plan, write_plan

        request = BuildRequest(
            arch=arch,
            gpu=gpu,
            cuda_capabilities=cuda_capabilities,
            version=version,
            tag=tag,
            jobs=jobs,
            devel_image=devel_image,
            runtime_base=runtime_base,
            mkl=mkl,
        )
        plan = make_plan(request, opts.docker_host)
        data: dict[str, Any] = {"dry_run": dry_run, "plan": plan.to_dict()}
        if dry_run:
            if output is not None:
                written = write_plan(plan, output)
                data["written"] = [str(p) for p in written]
                text = "wrote " + ", ".join(str(p) for p in written)
            else:
                data["dockerfiles"] = dict(plan.dockerfiles)
                text = _plan_text(plan)
            return Result(data=data, text=text, warnings=list(plan.warnings))

        progress = opts.progress
        for warning in plan.warnings:  # up front too: a build takes hours
            progress(f"warning: {warning}")
        outcome = run_plan(plan, progress, docker_host=opts.docker_host, out_dir=output)
        data.update(outcome.to_dict())
        rows = [
            [
                s.name,
                ", ".join(s.tags),
                s.image_id.removeprefix("sha256:")[:12],
                f"{s.duration_s:.1f}s",
            ]
            for s in outcome.steps
        ]
        text = table(["STEP", "IMAGE", "ID", "TIME"], rows)
        return Result(data=data, text=text, warnings=[*plan.warnings, *outcome.warnings])

    execute(ctx, "build", action)


def _plan_text(plan: Any) -> str:
    lines = [
        f"TF Serving {plan.version}  arch={plan.arch}  cpu-flags={','.join(plan.cpu_flags) or '-'}"
        + (
            f"  gpu cuda={plan.bases.cuda} capabilities={plan.cuda_capabilities}"
            if plan.gpu
            else ""
        )
        + ("  mkl" if plan.mkl else "")
        + f"  (release table row {plan.bases.tag})",
        f"bazel options: {' '.join(p for p in (plan.bazel_options, plan.build_options) if p)}",
        "",
    ]
    if not plan.builds_devel:
        lines += [f"# devel image: {plan.devel_tag} (given; not built)", ""]
    for step in plan.steps:
        lines += [f"# {step.name}", step.docker_cli(), ""]
    lines.append("(-o DIR writes Dockerfile.devel, Dockerfile and build-plan.json)")
    return "\n".join(lines)
