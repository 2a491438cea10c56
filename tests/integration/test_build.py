"""``tfsops build`` against the real engine: the serving stage, built for real.

Compiling TF Serving (stage 1) takes hours and needs the network, so these
tests give ``--devel-image`` a small local "devel" image instead: the TF
Serving test image with its ``tensorflow_model_server`` copied to
``/usr/local/bin``, where upstream's devel images keep it. The test image also
serves as ``--runtime-base`` (``ubuntu:22.04`` cannot be pulled here). What
runs for real: the rendered serving Dockerfile, the SDK build path, progress
on stderr, the labels, Ctrl-C, and the resulting image serving a model.
"""

from __future__ import annotations

import contextlib
import io
import json
import queue
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_LABEL
from tests.integration.cli import Tfsops
from tfsops.build import plan as p
from tfsops.build.hostcompat import check_image_compat
from tfsops.build.hostfacts import read_host_facts

pytestmark = [pytest.mark.docker, pytest.mark.double, pytest.mark.slow]

FAKE_DEVEL = """\
FROM {base}
USER root
# Upstream's devel images keep the server at /usr/local/bin; copy the real file, not a link.
RUN src="$(command -v tensorflow_model_server)" && cp -L "$src" /tmp/tms && \\
    mv -f /tmp/tms /usr/local/bin/tensorflow_model_server
"""

# A runtime base whose CA bundle is missing and whose apt-get hangs, so the
# serving build sits in a RUN step long enough to be interrupted.
SLOW_BASE = """\
FROM {base}
USER root
RUN rm -f /etc/ssl/certs/ca-certificates.crt && \\
    printf '#!/bin/sh\\necho tfsops-ctrlc-marker-{run_id}\\nexec sleep 120\\n' \\
        > /usr/local/sbin/apt-get && \\
    chmod +x /usr/local/sbin/apt-get
"""


def _build_image(client: Any, dockerfile: str, tag: str) -> None:
    log: list[str] = []
    for message in client.api.build(
        fileobj=io.BytesIO(dockerfile.encode()),
        tag=tag,
        labels={TEST_LABEL: "1"},
        rm=True,
        forcerm=True,
        decode=True,
    ):
        log.append(str(message.get("stream", "")))
        if "error" in message:
            raise AssertionError(f"building {tag} failed: {message['error']}\n{''.join(log)}")


def _remove_image(client: Any, ref: str) -> None:
    import docker.errors

    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(ref, force=True)


@pytest.fixture(scope="module")
def fake_devel(docker_client: Any, serving_image: str, run_id: str) -> Iterator[str]:
    tag = f"tfsops-test-devel:{run_id}"
    _build_image(docker_client, FAKE_DEVEL.format(base=serving_image), tag)
    yield tag
    _remove_image(docker_client, tag)


@pytest.fixture
def built_tag(docker_client: Any, run_id: str) -> Iterator[str]:
    """A tag for the image under test, removed afterwards (with its untagged parent layers)."""
    tag = f"tfsops-test-build:{run_id}-{time.monotonic_ns() % 100000}"
    yield tag
    _remove_image(docker_client, tag)


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def _wait_available(base: str, model: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            status = _get(f"{base}/v1/models/{model}")
            last = status
            states = [v["state"] for v in status["model_version_status"]]
            if states and all(s == "AVAILABLE" for s in states):
                return status
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            last = exc  # ports open only after the initial load
        time.sleep(0.5)
    raise AssertionError(f"{model} not AVAILABLE after {timeout}s: {last}")


def test_serving_stage_builds_labels_and_serves(
    tfsops: Tfsops,
    docker_client: Any,
    fake_devel: str,
    serving_image: str,
    built_tag: str,
    models_dir: Path,
    tmp_path: Path,
    run_id: str,
) -> None:
    start = time.monotonic()
    run = tfsops(
        "--json",
        "build",
        "--devel-image",
        fake_devel,
        "--runtime-base",
        serving_image,
        "--tag",
        built_tag,
        "--arch",
        "avx2,fma",
        "-o",
        str(tmp_path / "plan"),
    )
    build_s = time.monotonic() - start
    assert run.code == 0, str(run)
    print(f"serving-stage build took {build_s:.1f}s")

    # The JSON result: the plan, the image and its duration.
    data = run.json["data"]
    (image,) = data["images"]
    assert image["name"] == "serving" and image["tags"] == [built_tag]
    assert image["duration_s"] > 0
    assert data["plan"]["steps"][0]["buildargs"]["TF_SERVING_BUILD_IMAGE"] == fake_devel
    assert any("no io.tfsops.build labels" in w for w in run.json["warnings"])
    assert (tmp_path / "plan" / "Dockerfile").is_file()

    # Progress on stderr: elapsed time and the Dockerfile step, as it happened.
    assert re.search(
        r"^\[serving \d+:\d\d step \d+/\d+\] COPY --from=build_image "
        r"/usr/local/bin/tensorflow_model_server",
        run.stderr,
        re.M,
    ), run.stderr
    assert re.search(rf"^\[serving \d+:\d\d\] built {re.escape(built_tag)} ", run.stderr, re.M)

    # The labels, read back from the engine.
    built = docker_client.images.get(built_tag)
    assert built.id == image["image_id"]
    labels = built.labels
    assert labels[p.LABEL_CPU_FLAGS] == "avx2,fma"
    assert labels[p.LABEL_BAZEL_OPTIONS] == "--copt=-mavx2 --copt=-mfma"
    assert labels[p.LABEL_VERSION] == "2.19.0"
    assert labels[p.LABEL_GPU] == "false"
    assert labels[p.LABEL_DEVEL_IMAGE] == fake_devel
    assert labels["tensorflow_serving_github_branchtag"] == "2.19.0"
    assert built.attrs["Config"]["Entrypoint"] == ["/usr/bin/tf_serving_entrypoint.sh"]

    # The labels against this host, as deploy will check them.
    host = read_host_facts()
    report = check_image_compat(labels, host)
    if host.cpu_flags is not None and {"avx2", "fma"} <= host.cpu_flags:
        assert report.ok, report.problems
    else:
        assert not report.ok

    # The image serves: upstream's entrypoint contract (MODEL_NAME under /models).
    container = docker_client.containers.run(
        built_tag,
        detach=True,
        labels={TEST_LABEL: run_id},
        environment={"MODEL_NAME": "half_plus_two", "TF_CPP_MIN_LOG_LEVEL": "2"},
        volumes={
            str(models_dir / "half_plus_two"): {"bind": "/models/half_plus_two", "mode": "ro"}
        },
        ports={"8501/tcp": ("127.0.0.1", None)},
    )
    try:
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["8501/tcp"][0]["HostPort"]
        base = f"http://127.0.0.1:{port}"
        status = _wait_available(base, "half_plus_two")
        assert status["model_version_status"][0]["version"] == "2"
        answer = _post(f"{base}/v1/models/half_plus_two:predict", {"instances": [1.0, 2.0, 5.0]})
        assert answer["predictions"] == [2.5, 3.0, 4.5]
        print(f"build + serve took {time.monotonic() - start:.1f}s")
    finally:
        container.remove(force=True)


def test_failed_build_is_exit_5_with_the_log_tail(
    tfsops: Tfsops, fake_devel: str, built_tag: str, run_id: str
) -> None:
    run = tfsops(
        "--json",
        "build",
        "--devel-image",
        fake_devel,
        "--runtime-base",
        f"tfsops-test-no-such-base:{run_id}",
        "--tag",
        built_tag,
        timeout=180,
    )
    assert run.code == 5, str(run)
    error = run.json["error"]
    assert error["type"] == "OperationFailed"
    assert "serving image build failed at Step 4/" in error["message"]
    assert f"tfsops-test-no-such-base:{run_id}" in error["message"]
    assert error["details"]["last_lines"]
    assert "error: the serving image build failed" in run.stderr


def test_ctrl_c_stops_the_build_and_says_what_was_left(
    tfsops: Tfsops,
    docker_client: Any,
    fake_devel: str,
    serving_image: str,
    built_tag: str,
    run_id: str,
) -> None:
    slow_base = f"tfsops-test-slowbase:{run_id}"
    marker = f"tfsops-ctrlc-marker-{run_id}"
    _build_image(docker_client, SLOW_BASE.format(base=serving_image, run_id=run_id), slow_base)
    proc: subprocess.Popen[str] | None = None
    try:
        proc = tfsops.popen(
            "build", "--devel-image", fake_devel, "--runtime-base", slow_base, "--tag", built_tag
        )
        lines: queue.Queue[str] = queue.Queue()
        assert proc.stderr is not None
        stderr = proc.stderr

        def pump() -> None:
            for line in stderr:
                lines.put(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        seen: list[str] = []
        deadline = time.monotonic() + 120
        while not any(marker in line for line in seen):
            assert time.monotonic() < deadline, "".join(seen)
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                assert proc.poll() is None, "".join(seen)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        reader.join(timeout=5)
        while not lines.empty():
            seen.append(lines.get())
        text = "".join(seen)
        assert code == 130, text
        assert "error: interrupted during the serving build at Step 10/" in text
        assert f"not built: serving ({built_tag})" in text

        # The engine stops the RUN step once the client is gone: its container goes away.
        def build_containers() -> list[Any]:
            # Intermediate build containers run images derived from the slow base.
            return docker_client.containers.list(all=True, filters={"ancestor": slow_base})  # type: ignore[no-any-return]

        deadline = time.monotonic() + 30
        while build_containers():
            assert time.monotonic() < deadline, "the interrupted build's container is still there"
            time.sleep(0.5)
        import docker.errors

        with pytest.raises(docker.errors.ImageNotFound):
            docker_client.images.get(built_tag)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        _remove_image(docker_client, slow_base)
