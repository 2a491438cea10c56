"""``tfsops watch``: the long-running sync process."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tfsops.cli.app import app
from tfsops.cli.common import make_services, resolve_spec_path
from tfsops.cli.context import GlobalOptions, execute
from tfsops.cli.output import Result
from tfsops.cli.params import option_seconds, option_seconds_or_zero
from tfsops.errors import ExitCode


@app.command("watch")
def watch(
    ctx: typer.Context,
    discover: Annotated[
        list[Path] | None,
        typer.Option(
            "--discover",
            help="A models root: new model folders under it become models (repeatable).",
        ),
    ] = None,
    debounce: Annotated[
        float,
        typer.Option(
            "--debounce",
            help="Seconds of quiet before acting on a burst.",
            callback=option_seconds_or_zero,
        ),
    ] = 1.0,
    check_interval: Annotated[
        float,
        typer.Option(
            "--check-interval",
            help="Seconds between health looks (re-apply after a restart).",
            callback=option_seconds,
        ),
    ] = 10.0,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            help="Seconds to wait for AVAILABLE per change.",
            callback=option_seconds,
        ),
    ] = 300.0,
    once: Annotated[bool, typer.Option("--once", help="One sync pass, then exit (cron).")] = False,
) -> None:
    """Watch the spec file and the model folders; hot-reload on change (foreground).

    One log line per event on stdout (JSON lines with --json). Survives server
    restarts and engine hiccups (retry with backoff); SIGTERM/SIGINT end it with
    exit 0. Suitable for a systemd unit or a sidecar container.

    Example: tfsops watch --discover ./models --json
    """

    def action(opts: GlobalOptions) -> Result:
        from tfsops.watch import EventLog, Watcher, WatchOptions

        spec_path = resolve_spec_path(opts)
        from tfsops.errors import InvalidInput
        from tfsops.spec.load import load_spec

        if load_spec(spec_path).target == "swarm":
            raise InvalidInput(
                "watch drives one server's admin RPC; a swarm service changes by rolling update",
                hint="run `tfsops apply` after each spec change (e.g. from CI)",
            )

        def write(line: str) -> None:
            print(line, file=sys.stdout, flush=True)

        log = EventLog(opts.json, write)
        watcher = Watcher(
            spec_path,
            make_services(opts),
            WatchOptions(
                debounce=debounce,
                discover=[p.resolve() for p in discover or []],
                check_interval=check_interval,
                timeout=timeout,
                once=once,
            ),
            log,
        )
        code = watcher.run()
        # The event lines were the output; no envelope after them.
        raise typer.Exit(code if code in {int(c) for c in ExitCode} else 1)

    execute(ctx, "watch", action)
