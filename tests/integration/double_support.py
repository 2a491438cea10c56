"""Helpers for the TF Serving conformance tests: start a serving container, wait, talk.

Works with the double (``tfsops-double:latest``) and with the real
``tensorflow/serving`` image (``TFSOPS_TEST_IMAGE``), since both start the
same way: ``MODEL_NAME``/``MODEL_BASE_PATH`` and extra flags after the image.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.conftest import TEST_LABEL  # the session cleanup removes what carries it

REST_PORT, GRPC_PORT = "8501/tcp", "8500/tcp"


@dataclass
class Serving:
    """A running serving container with its published loopback ports."""

    container: Any
    rest_port: int = 0
    grpc_port: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def ip(self) -> str:
        self.container.reload()
        networks = self.container.attrs["NetworkSettings"]["Networks"]
        return str(next(iter(networks.values()))["IPAddress"])

    def logs(self) -> str:
        return bytes(self.container.logs(stdout=True, stderr=True)).decode("utf-8", "replace")

    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(self.rest + path, timeout=kw.pop("timeout", 30), **kw)

    def post(
        self, path: str, body: Any = None, *, data: bytes | str | None = None
    ) -> requests.Response:
        if data is None:
            return requests.post(self.rest + path, json=body, timeout=60)
        return requests.post(self.rest + path, data=data, timeout=60)

    def grpc_channel(self) -> Any:
        import grpc

        return grpc.insecure_channel(self.grpc_target)


def start(
    client: Any,
    image: str,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    mounts: Mapping[str, str] | None = None,
    publish: bool = True,
    label: str = "double-conformance",
) -> Serving:
    """``docker run -d -p 127.0.0.1::8500 -p 127.0.0.1::8501 [-v h:c:ro] [-e k=v] IMAGE args``."""
    volumes = {host: {"bind": target, "mode": "ro"} for host, target in (mounts or {}).items()}
    ports = {GRPC_PORT: ("127.0.0.1", None), REST_PORT: ("127.0.0.1", None)} if publish else {}
    container = client.containers.run(
        image,
        list(args),
        detach=True,
        environment=dict(env or {}),
        volumes=volumes,
        ports=ports,
        labels={TEST_LABEL: label},
        name=f"tfsops-test-double-{uuid.uuid4().hex[:8]}",
    )
    serving = Serving(container)
    if publish:
        container.reload()
        bound = container.attrs["NetworkSettings"]["Ports"]
        serving.rest_port = int(bound[REST_PORT][0]["HostPort"])
        serving.grpc_port = int(bound[GRPC_PORT][0]["HostPort"])
    return serving


def wait_ready(serving: Serving, model: str, timeout: float = 120.0) -> None:
    """Until the REST port answers. Upstream opens its ports only after the initial
    load, so a refused (or, through docker-proxy, reset) connection means "starting"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            serving.get(f"/v1/models/{model}", timeout=5)
            return
        except requests.ConnectionError:
            serving.container.reload()
            if serving.container.status == "exited":
                raise AssertionError(f"server exited while starting:\n{serving.logs()}") from None
            time.sleep(0.25)
    raise AssertionError(f"server not ready after {timeout} s:\n{serving.logs()}")


def wait_state(
    serving: Serving, model: str, want: Mapping[int, str], timeout: float = 60.0
) -> dict[int, str]:
    """Poll the REST status until every wanted version has the wanted state."""
    deadline = time.monotonic() + timeout
    states: dict[int, str] = {}
    while time.monotonic() < deadline:
        try:
            r = serving.get(f"/v1/models/{model}")
        except requests.ConnectionError:
            # docker-proxy may drop a connection; a vanished container fails below.
            serving.container.reload()
            time.sleep(0.25)
            continue
        if r.status_code == 200:
            states = {int(v["version"]): v["state"] for v in r.json()["model_version_status"]}
            if all(states.get(v) == s for v, s in want.items()):
                return states
        time.sleep(0.25)
    raise AssertionError(f"{model}: wanted {dict(want)}, last seen {states}\n{serving.logs()}")


def wait_exit(container: Any, timeout: float = 120.0) -> tuple[int, str]:
    result = container.wait(timeout=timeout)
    logs = bytes(container.logs(stdout=True, stderr=True)).decode("utf-8", "replace")
    return int(result["StatusCode"]), logs


def is_double(serving: Serving) -> bool:
    """True for the tfsops double (it answers ``--version`` with its own build tag)."""
    tags = serving.container.image.tags or []
    labels = serving.container.image.labels or {}
    return "io.tfsops.double.inputs-hash" in labels or any("tfsops-double" in t for t in tags)


def assert_startup_error(logs: str, body: str) -> None:
    """``Failed to start server. Error: <status>`` with ``body`` in the status message.

    The code prefix printed before the message depends on the TF version
    (``Invalid argument: `` vs ``INVALID_ARGUMENT: ``), so only the body is compared.
    """
    lines = [ln for ln in logs.splitlines() if ln.startswith("Failed to start server. Error: ")]
    assert lines, logs
    assert body in lines[-1], logs


def stop(serving: Serving) -> None:
    with contextlib.suppress(Exception):
        serving.container.remove(force=True)


def connection_refused(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect((host, port))
        except ConnectionRefusedError:
            return True
        return False


def world_readable(root: Path) -> None:
    """Containers may run as another user: make mounted files readable."""
    root.chmod(0o755)
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)


def config_text(models: Sequence[Mapping[str, Any]]) -> str:
    """A text ``ModelServerConfig`` (reference §4.4) for models given as dicts."""
    out = ["model_config_list {"]
    for m in models:
        out.append("  config {")
        out.append(f'    name: "{m["name"]}"')
        out.append(f'    base_path: "{m["base_path"]}"')
        out.append(f'    model_platform: "{m.get("platform", "tensorflow")}"')
        policy = m.get("policy")
        if policy == "all":
            out.append("    model_version_policy { all {} }")
        elif isinstance(policy, (list, tuple)):
            versions = " ".join(f"versions: {v}" for v in policy)
            out.append(f"    model_version_policy {{ specific {{ {versions} }} }}")
        for label, version in (m.get("labels") or {}).items():
            out.append(f'    version_labels {{ key: "{label}" value: {version} }}')
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


def reload_request(models: Sequence[Mapping[str, Any]]) -> Any:
    """``ReloadConfigRequest`` with a complete model list (empty list = unload all)."""
    from google.protobuf import text_format
    from tensorflow_serving.apis import model_management_pb2
    from tensorflow_serving.config import model_server_config_pb2

    request = model_management_pb2.ReloadConfigRequest()
    config = text_format.Parse(config_text(models), model_server_config_pb2.ModelServerConfig())
    request.config.CopyFrom(config)
    request.config.model_config_list.SetInParent()
    return request


_STRING_MODEL = r"""
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf

class Strings(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="s")])
    def serve(self, s):
        # "_bytes" suffix: the REST API writes this output as {"b64": ...}.
        return {"echo_bytes": tf.identity(s), "length": tf.strings.length(s)}

m = Strings()
tf.saved_model.save(m, sys.argv[1], signatures={"serving_default": m.serve})
"""


def make_string_model(version_dir: Path) -> Path:
    """A TF2 SavedModel with a DT_STRING input and a ``*_bytes`` output."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    subprocess.run(
        [sys.executable, "-c", _STRING_MODEL, str(version_dir)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return version_dir


@dataclass
class Launcher:
    """Starts serving containers labelled ``io.tfsops.test=<run id>`` for this session."""

    client: Any
    image: str
    run_id: str

    def start(self, **kw: Any) -> Serving:
        return start(self.client, self.image, label=self.run_id, **kw)

    @contextlib.contextmanager
    def running(self, **kw: Any) -> Iterator[Serving]:
        serving = self.start(**kw)
        try:
            yield serving
        finally:
            stop(serving)

    def exit_of(self, args: Sequence[str], **kw: Any) -> tuple[int, str]:
        """Run a container that is expected to exit; its status and output."""
        serving = self.start(args=args, publish=False, **kw)
        try:
            return wait_exit(serving.container)
        finally:
            stop(serving)
