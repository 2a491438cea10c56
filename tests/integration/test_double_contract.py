"""The serving contract shared by ``FakeServing`` and the adapters, against the double's image.

``run_serving_contract`` (tests/unit/fakes.py) holds the fake and the REST
and gRPC adapters to one behaviour; here the same assertions run against a
real server, so the fake, the adapters and the double agree. The scene of
``contract_scene`` is built on the server: ``half`` versions 1 and 2 with
label ``stable`` -> 1, a broken version 3 (END), and a model ``loading``
whose load never finishes (its variables index is a FIFO nobody writes).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.integration import double_support as ds
from tests.unit.fakes import run_serving_contract
from tfsops.adapters.serving_grpc import GrpcServingClient
from tfsops.adapters.serving_rest import RestServingClient
from tfsops.ports import Endpoint

pytestmark = [pytest.mark.double, pytest.mark.docker]


def _models(models_dir: Path, root: Path) -> Path:
    for version in (1, 2):
        shutil.copytree(models_dir / "half_plus_two" / str(version), root / "half" / str(version))
    (root / "half" / "3").mkdir()
    (root / "half" / "3" / "saved_model.pb").write_bytes(b"not a SavedModel")
    loading = root / "loading" / "1"
    shutil.copytree(models_dir / "half_plus_two" / "1", loading)
    index = loading / "variables" / "variables.index"
    index.unlink()
    os.mkfifo(index)
    ds.world_readable(root)
    return root


def _config(versions: str, loading: bool) -> str:
    # Labels only once their version is AVAILABLE (upstream refuses them at start-up).
    label = '    version_labels { key: "stable" value: 1 }\n' if loading else ""
    text = (
        "model_config_list {\n"
        '  config { name: "half" base_path: "/models/half" model_platform: "tensorflow"\n'
        f"    model_version_policy {{ specific {{ {versions} }} }}\n{label}  }}\n"
    )
    if loading:
        text += (
            '  config { name: "loading" base_path: "/models/loading" '
            'model_platform: "tensorflow" }\n'
        )
    return text + "}\n"


@pytest.fixture(scope="module")
def scene(
    docker_client: Any,
    serving_image: str,
    models_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ds.Serving]:
    import grpc
    from google.protobuf import text_format
    from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

    root = _models(models_dir, tmp_path_factory.mktemp("contract") / "models")
    conf = root.parent / "conf"
    conf.mkdir()
    (conf / "models.config").write_text(_config("versions: 1 versions: 2", loading=False))
    ds.world_readable(conf)
    s = ds.start(
        docker_client,
        serving_image,
        args=["--model_config_file=/conf/models.config", "--max_num_load_retries=0"],
        mounts={str(root): "/models", str(conf): "/conf"},
    )
    try:
        ds.wait_ready(s, "half")
        request = model_management_pb2.ReloadConfigRequest()
        text_format.Parse(
            _config("versions: 1 versions: 2 versions: 3", loading=True), request.config
        )
        stub = model_service_pb2_grpc.ModelServiceStub(s.grpc_channel())
        # The RPC waits for "loading", which never loads: the deadline ends the call, not the load.
        with pytest.raises(grpc.RpcError) as exc_info:
            stub.HandleReloadConfigRequest(request, timeout=5)
        assert exc_info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        ds.wait_state(s, "half", {1: "AVAILABLE", 2: "AVAILABLE", 3: "END"})
        ds.wait_state(s, "loading", {1: "LOADING"})
        yield s
    finally:
        ds.stop(s)


def _failure(serving: ds.Serving) -> tuple[str, str]:
    status = serving.get("/v1/models/half/versions/3").json()["model_version_status"][0]["status"]
    return str(status["error_code"]), str(status["error_message"])


def test_grpc_adapter_and_double_pass_the_serving_contract(scene: ds.Serving) -> None:
    endpoint = Endpoint("127.0.0.1", scene.rest_port, scene.grpc_port)
    failure = _failure(scene)
    assert failure[0] == "DATA_LOSS" and "saved_model.pb" in failure[1], failure
    client = GrpcServingClient(endpoint)
    try:
        run_serving_contract(None, client, failure=failure)  # "starting" is checked over REST
    finally:
        client.close()


def test_rest_adapter_and_double_pass_the_serving_contract(scene: ds.Serving) -> None:
    @contextmanager
    def stopped() -> Iterator[object]:
        scene.container.stop(timeout=1)  # ports closed: what a starting server looks like
        yield scene

    with RestServingClient(Endpoint("127.0.0.1", scene.rest_port, scene.grpc_port)) as client:
        run_serving_contract(None, client, failure=_failure(scene), starting=stopped)
