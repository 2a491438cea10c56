"""``tfsops doctor``: is this host ready to serve, and is a deployment safe?"""

from __future__ import annotations

from typing import Any

import typer

from tfsops.cli.app import app
from tfsops.cli.context import GlobalOptions, execute
from tfsops.cli.output import Result
from tfsops.errors import ExitCode


@app.command("doctor")
def doctor(ctx: typer.Context) -> None:
    """Check the engine (reachable, API version, runtimes, GPU support), this host's CPU
    flags and GPUs against the image's needs, the spec's ports, and exposure.

    Uses the spec when one is found (-f, -d, ./tfsops.yaml); exit 0 when nothing is wrong,
    4 when the engine is unreachable, 3 when the spec's image or ports will not work here.
    Warnings (e.g. a deployment reachable from other hosts) do not change the exit code.
    """

    def action(opts: GlobalOptions) -> Result:
        from tfsops.build.hostcompat import doctor_section
        from tfsops.build.hostfacts import read_host_facts
        from tfsops.errors import EngineUnreachable, TfsopsError

        problems: list[str] = []
        warnings: list[str] = []
        lines: list[str] = []
        data: dict[str, Any] = {}
        code = ExitCode.OK

        from tfsops.cli.common import load_spec, make_services

        services = make_services(opts)
        runtime = services.runtime_factory()
        engine: dict[str, Any] = {"reachable": False, **runtime.engine.to_dict()}
        lines.append(f"engine   {_selection_line(runtime.engine)}")
        try:
            engine.update(runtime.info(), reachable=True)
            gpu_problem = runtime.gpu_support_problem()
            engine["gpu_runtime"] = gpu_problem is None
            lines.append(
                f"engine   {engine['url']}: Docker {engine['server_version']} (API {engine['api_version']}), "
                f"runtimes {', '.join(engine['runtimes'])}, swarm {engine['swarm']}"
            )
            if gpu_problem:
                lines.append(
                    "         no NVIDIA runtime: GPU deployments need nvidia-container-toolkit"
                )
        except EngineUnreachable as exc:
            problems.append(exc.message)
            lines.append(f"engine   UNREACHABLE: {exc.message}")
            code = ExitCode.ENGINE
        data["engine"] = engine

        spec = None
        try:
            spec, _ = load_spec(opts)
        except TfsopsError as exc:
            data["spec"] = {"found": False, "reason": exc.message}
        image = spec.image_ref if spec is not None else None
        labels = None
        if image is not None and engine["reachable"]:
            labels = runtime.image_labels(image)
            data["image_present"] = labels is not None
        host = (services.host_facts or read_host_facts)()
        section = doctor_section(host, labels, image=image)
        data.update(section)
        h = section["host"]
        lines.append(f"cpu      {h['cpu_model'] or '?'}: {' '.join(h['cpu_flags'])}")
        gpus = ", ".join(f"{g.get('name')} (sm {g.get('compute_capability')})" for g in h["gpus"])
        lines.append(
            "gpus     "
            + (
                f"{gpus}; driver {h['driver_version']}, CUDA {h['cuda_version']}"
                if gpus
                else "none found"
            )
        )
        if section["image"] is not None:
            img = section["image"]
            verdict = "fits this host" if img["ok"] else "does NOT fit this host"
            lines.append(
                f"image    {image}: {verdict}"
                + ("" if labels is not None else " (not present locally)")
            )
            needs = img["needs"]
            if needs.get("gpu"):
                lines.append(
                    f"         needs CUDA {needs.get('cuda_version') or '?'} (driver supports "
                    f"{h['cuda_version'] or '?'}), kernels {needs.get('cuda_capabilities') or '?'}"
                )
            for p in img["problems"]:
                problems.append(p)
                lines.append(f"         - {p}")
            warnings += img["warnings"]
            if not img["ok"] and code == ExitCode.OK:
                code = ExitCode.INVALID
        if spec is not None and engine["reachable"]:
            port_data = _ports(spec, runtime)
            data["ports"] = port_data
            for entry in port_data:
                lines.append(
                    f"port     {entry['bind']}:{entry['port']} ({entry['purpose']}): {entry['status']}"
                )
                if entry["status"].startswith("taken"):
                    problems.append(f"port {entry['port']} is {entry['status']}")
                    if code == ExitCode.OK:
                        code = ExitCode.INVALID
        if engine["reachable"]:
            exposed = _exposed(runtime)
            data["exposed"] = exposed
            for name, where in exposed:
                warnings.append(f"deployment {name} is reachable from other hosts ({where})")
        data["problems"] = problems
        runtime.close()
        lines.append("ok" if not problems else f"{len(problems)} problem(s)")
        return Result(data=data, text="\n".join(lines), warnings=warnings, exit_code=code)

    execute(ctx, "doctor", action)


def _selection_line(engine: Any) -> str:
    """Which engine, by which transport, from where, and how the server is reached."""
    where = "local" if engine.local else "remote"
    reach = (
        "servers reached through the engine (relay)"
        if engine.relay
        else "servers reached on their published ports"
    )
    tls = f", TLS files in {engine.tls.folder}" if engine.tls else ""
    return f"{engine.url} over {engine.transport} ({where}, from {engine.source}{tls}); {reach}"


def _ports(spec: Any, runtime: Any) -> list[dict[str, Any]]:
    from tfsops.adapters.docker_runtime import host_port_free

    holders = runtime.port_holders()
    out = []
    for purpose, port in (("rest", spec.ports.rest), ("grpc", spec.ports.grpc)):
        if port is None:
            continue
        holder = holders.get(port)
        if holder == spec.container_name:
            status = "used by this deployment"
        elif holder:
            status = f"taken by container {holder}"
        elif not host_port_free(spec.ports.bind, port):
            status = "taken by another program"
        else:
            status = "free"
        out.append({"purpose": purpose, "bind": spec.ports.bind, "port": port, "status": status})
    return out


def _exposed(runtime: Any) -> list[tuple[str, str]]:
    out = []
    for info in runtime.list_deployments():
        for ip, port, _cport in info.ports:
            if ip in ("0.0.0.0", "::", ""):
                out.append(
                    (
                        info.labels.get("io.tfsops.deployment", info.name),
                        f"{ip or '0.0.0.0'}:{port}",
                    )
                )
    return out
