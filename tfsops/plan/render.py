"""Render the files TF Serving reads, from jinja2 templates in ``templates/``.

Pure: text in, text out. Every rendered config is parsed with the official
protos before anyone may write it, so a renderer bug fails loudly here
instead of reaching a server.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tfsops.plan.layout import Layout, layout_for
from tfsops.spec.model import DeploymentSpec

if TYPE_CHECKING:
    import jinja2


class RenderError(Exception):
    """A rendered file did not parse with its proto: a bug in tfsops, not user input."""


def proto_string(value: object) -> str:
    """A text-format string literal (C escapes), safe for any input."""
    out = ['"']
    for ch in str(value):
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\{code:03o}")
        elif code > 0x7F:
            out.extend(f"\\{b:03o}" for b in ch.encode("utf-8"))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


@functools.cache
def _env() -> jinja2.Environment:
    import jinja2

    from tfsops.resources import template_dir

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # text protos, not HTML; strings go through |pbstr
    )
    env.filters["pbstr"] = proto_string
    return env


def _render(template: str, **context: Any) -> str:
    text = _env().get_template(template).render(**context)
    return text.rstrip("\n") + "\n"


def _check(text: str, message: Any, what: str) -> Any:
    from tfsops.adapters.protos import text_format

    try:
        return text_format().Parse(text, message)
    except Exception as exc:  # text_format.ParseError and friends
        raise RenderError(
            f"rendered {what} does not parse as {message.DESCRIPTOR.full_name}: {exc}"
        ) from exc


def render_models_config(spec: DeploymentSpec, layout: Layout | None = None) -> str:
    layout = layout or layout_for(spec)
    models = [
        {
            "name": m.name,
            "base_path": layout.base_paths[m.name],
            "policy": m.policy_kind,
            "labels": dict(m.labels),
        }
        for m in spec.models
    ]
    text = _render("models.config.j2", deployment=spec.name, models=models)
    from tfsops.adapters.protos import model_server_config_pb2

    parsed = _check(text, model_server_config_pb2().ModelServerConfig(), "models.config")
    _verify_models(parsed, models)
    return text


def _verify_models(parsed: Any, models: list[dict[str, Any]]) -> None:
    # Round-trip check: what the server will read is what the spec says.
    got = [(c.name, c.base_path, dict(c.version_labels)) for c in parsed.model_config_list.config]
    want = [(m["name"], m["base_path"], m["labels"]) for m in models]
    if got != want:
        raise RenderError(f"models.config round-trip mismatch: {got} != {want}")


def render_batching_config(spec: DeploymentSpec) -> str | None:
    if spec.batching is None or not spec.batching.enabled:
        return None
    text = _render("batching.config.j2", deployment=spec.name, b=spec.batching.model_dump())
    from tfsops.adapters.extra_protos import BatchingParameters

    _check(text, BatchingParameters(), "batching.config")
    return text


def render_monitoring_config(spec: DeploymentSpec) -> str | None:
    if spec.monitoring is None or not spec.monitoring.prometheus:
        return None
    text = _render(
        "monitoring.config.j2",
        deployment=spec.name,
        prometheus=spec.monitoring.prometheus,
        path=spec.monitoring.path,
    )
    from tfsops.adapters.extra_protos import MonitoringConfig

    _check(text, MonitoringConfig(), "monitoring.config")
    return text


def render_ssl_config(spec: DeploymentSpec) -> str | None:
    """The SSLConfig text with the key and certificates inlined (secret: 0600, never printed)."""
    if spec.tls is None:
        return None

    def read(path: Any, what: str) -> str:
        from tfsops.inputs import text_file

        return text_file(path, f"tls.{what}")

    text = _render(
        "ssl.config.j2",
        server_key=read(spec.tls.key, "key"),
        server_cert=read(spec.tls.cert, "cert"),
        custom_ca=read(spec.tls.ca, "ca") if spec.tls.ca else "",
        client_verify=spec.tls.client_verify,
    )
    from tfsops.adapters.extra_protos import SSLConfig

    _check(text, SSLConfig(), "ssl.config")
    return text


@dataclass(frozen=True)
class RenderedFiles:
    """The config folder's content, file name -> text (``None``: not used)."""

    models_config: str
    batching_config: str | None
    monitoring_config: str | None
    ssl_config: str | None

    def files(self) -> dict[str, str]:
        out = {"models.config": self.models_config}
        if self.batching_config is not None:
            out["batching.config"] = self.batching_config
        if self.monitoring_config is not None:
            out["monitoring.config"] = self.monitoring_config
        if self.ssl_config is not None:
            out["ssl.config"] = self.ssl_config
        return out


def render_all(spec: DeploymentSpec, *, with_secrets: bool = True) -> RenderedFiles:
    layout = layout_for(spec)
    return RenderedFiles(
        models_config=render_models_config(spec, layout),
        batching_config=render_batching_config(spec),
        monitoring_config=render_monitoring_config(spec),
        ssl_config=render_ssl_config(spec) if with_secrets else None,
    )
