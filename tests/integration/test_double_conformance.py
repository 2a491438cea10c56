"""Conformance of the serving image (the double, or ``TFSOPS_TEST_IMAGE``) with TF Serving.

Every expectation is an upstream fact from ``reference/tfserving.md``:
texts and HTTP codes from ``http_rest_api_handler.cc`` / ``json_tensor.cc``
/ ``server_core.cc``, the docker.md example, version policies, reload
semantics. Models are the generated TF2 SavedModels of ``tests/modelgen.py``
(y = a*x + b), so computed values follow from their coefficients.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.integration import double_support as ds

pytestmark = [pytest.mark.double, pytest.mark.docker]


@pytest.fixture(scope="module")
def launcher(docker_client: Any, serving_image: str, run_id: str) -> ds.Launcher:
    return ds.Launcher(docker_client, serving_image, run_id)


def half_plus_two(x: float) -> float:
    return 0.5 * x + 2.0


# ---------------------------------------------------------------------------
# A: single-model mode, started exactly like docker.md


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("monitoring")
    (folder / "monitoring.config").write_text(
        'prometheus_config: {\n  enable: true,\n  path: "/monitoring/prometheus/metrics"\n}\n'
    )
    ds.world_readable(folder)
    return folder


@pytest.fixture(scope="module")
def single(launcher: ds.Launcher, models_dir: Path, monitored: Path) -> Iterator[ds.Serving]:
    # docker.md: -v <model>:/models/half_plus_two -e MODEL_NAME=half_plus_two, plus a flag
    # after the image (appended to the entrypoint's defaults).
    with launcher.running(
        env={"MODEL_NAME": "half_plus_two"},
        mounts={str(models_dir / "half_plus_two"): "/models/half_plus_two", str(monitored): "/cfg"},
        args=["--monitoring_config_file=/cfg/monitoring.config"],
    ) as serving:
        ds.wait_ready(serving, "half_plus_two")
        yield serving


def test_docker_md_example_predicts(single: ds.Serving) -> None:
    r = single.post("/v1/models/half_plus_two:predict", {"instances": [1.0, 2.0, 5.0]})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == {"predictions": [2.5, 3.0, 4.5]}


def test_default_policy_serves_only_the_latest_version(single: ds.Serving) -> None:
    # The upstream REST status test expects exactly this document (for version 123).
    r = single.get("/v1/models/half_plus_two")
    assert r.status_code == 200
    assert r.json() == {
        "model_version_status": [
            {
                "version": "2",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    assert single.get("/v1/models/half_plus_two/versions/2").status_code == 200


def test_label_in_status_url_is_ignored(single: ds.Serving) -> None:
    r = single.get("/v1/models/half_plus_two/labels/no_such_label")
    assert r.status_code == 200
    assert [v["version"] for v in r.json()["model_version_status"]] == ["2"]


def test_metadata_shape(single: ds.Serving) -> None:
    r = single.get("/v1/models/half_plus_two/metadata")
    assert r.status_code == 200
    doc = r.json()
    assert doc["model_spec"] == {"name": "half_plus_two", "signature_name": "", "version": "2"}
    sigs = doc["metadata"]["signature_def"]["signature_def"]
    default = sigs["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    x = default["inputs"]["x"]
    assert x["dtype"] == "DT_FLOAT"
    assert x["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]
    assert x["tensor_shape"]["unknown_rank"] is False
    assert set(default["outputs"]) == {"y"}
    assert {"twice", "serving_default"} <= set(sigs)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"instances": [3.0, 4.0], "signature_name": "serving_default"},
            {"predictions": [3.5, 4.0]},
        ),
        ({"inputs": [3.0, 4.0], "signature_name": "serving_default"}, {"outputs": [3.5, 4.0]}),
        ({"inputs": {"x": [1.0]}}, {"outputs": [2.5]}),
        ({"instances": [{"x": 1.0}, {"x": 2.0}]}, {"predictions": [2.5, 3.0]}),
        # Several outputs: a list of objects (row) or one object (columnar).
        (
            {"signature_name": "twice", "instances": [1.0, 2.0]},
            {"predictions": [{"x_echo": 1.0, "y": 5.0}, {"x_echo": 2.0, "y": 6.0}]},
        ),
        (
            {"signature_name": "twice", "inputs": [1.0, 2.0]},
            {"outputs": {"x_echo": [1.0, 2.0], "y": [5.0, 6.0]}},
        ),
        # Integers are valid DT_FLOAT values.
        ({"instances": [2, 4]}, {"predictions": [3.0, 4.0]}),
    ],
)
def test_predict_request_formats(single: ds.Serving, body: dict[str, Any], expected: Any) -> None:
    r = single.post("/v1/models/half_plus_two:predict", body)
    assert r.status_code == 200, r.text
    assert r.json() == expected


def test_predict_by_version(single: ds.Serving) -> None:
    r = single.post("/v1/models/half_plus_two/versions/2:predict", {"instances": [1.0, 2.0]})
    assert r.json() == {"predictions": [2.5, 3.0]}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("POST", "/v1/models/nope:predict", {"instances": [1.0]}, 404,
         "Servable not found for request: Latest(nope)"),
        ("POST", "/v1/models/half_plus_two/versions/99:predict", {"instances": [1.0]}, 404,
         "Servable not found for request: Specific(half_plus_two, 99)"),
        ("POST", "/v1/models/half_plus_two/labels/nope:predict", {"instances": [1.0]}, 400,
         "Unrecognized servable version label: nope"),
        ("POST", "/v1/models/half_plus_two:predict", {"signature_name": "nope", "instances": [1.0]},
         400, 'Serving signature name: "nope" not found in signature def'),
        ("POST", "/v1/models/half_plus_two:predict", {"signature_name": "serving_default"}, 400,
         "Missing 'inputs' or 'instances' key"),
        ("GET", "/v1/models", None, 400, "Missing model name in request."),
        ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
        ("GET", "/v1/models/half_plus_two/versions/99", None, 404,
         "Could not find version 99 of model half_plus_two"),
        ("GET", "/v1/models/half_plus_two/labels/nope/metadata", None, 400,
         "Unrecognized servable version label: nope"),
        ("GET", "/v1/models/nope/metadata", None, 404,
         "Servable not found for request: Latest(nope)"),
        ("GET", "/v1/models/half_plus_two:predict", None, 400,
         "Malformed request: GET /v1/models/half_plus_two:predict"),
        ("POST", "/v1/models/half_plus_two/metadata", {}, 400,
         "Malformed request: POST /v1/models/half_plus_two/metadata"),
        ("GET", "/v1/models/half_plus_two/versions/HELLO", None, 400,
         "Malformed request: GET /v1/models/half_plus_two/versions/HELLO"),
        ("GET", "/v1/models/half_plus_two/versions/2/labels/x", None, 400,
         "Malformed request: GET /v1/models/half_plus_two/versions/2/labels/x"),
    ],
)  # fmt: skip
def test_error_texts_and_codes(
    single: ds.Serving, method: str, path: str, body: Any, status: int, message: str
) -> None:
    r = single.get(path) if method == "GET" else single.post(path, body)
    assert r.status_code == status
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == {"error": message}


def test_json_errors(single: ds.Serving) -> None:
    path = "/v1/models/half_plus_two:predict"
    r = single.post(path, data=b"")
    assert (r.status_code, r.json()["error"]) == (400, "JSON Parse error: The document is empty")
    r = single.post(path, data=b"{not json")
    assert r.status_code == 400
    assert r.json()["error"].startswith("JSON Parse error: ")
    r = single.post(path, data=b"[1.0")
    assert r.status_code == 400
    assert r.json()["error"].startswith("JSON Parse error: ")
    r = single.post(path, data=b'{"instances": ]}')
    assert r.json()["error"].startswith("JSON Parse error: Invalid value")
    r = single.post(path, {"instances": [1.0], "inputs": [1.0]})
    assert r.status_code == 400
    assert r.json()["error"].endswith(
        "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist "
    )
    r = single.post(path, {"instances": ["a"]})
    assert r.status_code == 400
    assert 'JSON Value: "a" Type: String is not of expected type: float' in r.json()["error"]


def test_non_api_path_is_a_plain_404(single: ds.Serving) -> None:
    r = single.get("/healthz")
    assert r.status_code == 404
    assert "application/json" not in r.headers.get("Content-Type", "")


def test_prometheus_page(single: ds.Serving) -> None:
    single.post("/v1/models/half_plus_two:predict", {"instances": [1.0]})
    r = single.get("/monitoring/prometheus/metrics")
    assert r.status_code == 200
    assert "# TYPE" in r.text  # upstream testPrometheusEndpoint
    assert ":tensorflow:serving:request_count" in r.text


def test_grpc_predict_status_metadata(single: ds.Serving) -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    with single.grpc_channel() as channel:
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "half_plus_two"
        request.inputs["x"].CopyFrom(tf.make_tensor_proto([1.0, 2.0, 5.0], dtype=tf.float32))
        response = predict.Predict(request, timeout=30)
        assert tf.make_ndarray(response.outputs["y"]).tolist() == [2.5, 3.0, 4.5]
        assert response.model_spec.version.value == 2
        assert response.model_spec.signature_name == "serving_default"

        request.model_spec.signature_name = "nope"
        with pytest.raises(grpc.RpcError) as err:
            predict.Predict(request, timeout=30)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert err.value.details() == 'Serving signature key "nope" not found.'

        # Upstream's WaitForServerReady: a missing model answers with "Servable" in the details.
        request.model_spec.name = "intentionally_missing_model"
        with pytest.raises(grpc.RpcError) as err:
            predict.Predict(request, timeout=30)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert "Servable" in err.value.details()

        meta = get_model_metadata_pb2.GetModelMetadataRequest()
        meta.model_spec.name = "half_plus_two"
        meta.metadata_field.append("signature_def")
        md = predict.GetModelMetadata(meta, timeout=30)
        sigmap = get_model_metadata_pb2.SignatureDefMap()
        md.metadata["signature_def"].Unpack(sigmap)
        assert "serving_default" in sigmap.signature_def
        assert md.model_spec.version.value == 2

        status = model_service_pb2_grpc.ModelServiceStub(channel)
        req = get_model_status_pb2.GetModelStatusRequest()
        req.model_spec.name = "half_plus_two"
        result = status.GetModelStatus(req, timeout=5)
        assert [(v.version, v.state, v.status.error_code) for v in result.model_version_status] == [
            (2, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0)
        ]


# ---------------------------------------------------------------------------
# B: config-file mode, driven by HandleReloadConfigRequest


@pytest.fixture(scope="module")
def reload_models(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("reload-models")
    for name in ("half_plus_two", "half_plus_three", "times_two_plus_one"):
        shutil.copytree(models_dir / name, root / name)
    (root / "empty").mkdir()  # a model without any version dir
    (root / "broken" / "1").mkdir(parents=True)  # a version that cannot load
    (root / "broken" / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    (root / "models.config").write_text(
        ds.config_text([{"name": "half_plus_two", "base_path": "/models/half_plus_two"}])
    )
    ds.world_readable(root)
    return root


@pytest.fixture(scope="module")
def reloading(launcher: ds.Launcher, reload_models: Path) -> Iterator[ds.Serving]:
    with launcher.running(
        mounts={str(reload_models): "/models"},
        args=["--model_config_file=/models/models.config", "--max_num_load_retries=0"],
    ) as serving:
        ds.wait_ready(serving, "half_plus_two")
        yield serving


def _reload(serving: ds.Serving, models: list[dict[str, Any]], timeout: float = 60) -> Any:
    from tensorflow_serving.apis import model_service_pb2_grpc

    with serving.grpc_channel() as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        return stub.HandleReloadConfigRequest(ds.reload_request(models), timeout=timeout)


HP2 = {"name": "half_plus_two", "base_path": "/models/half_plus_two"}
HP3 = {"name": "half_plus_three", "base_path": "/models/half_plus_three"}


def test_reload_adds_a_model_and_returns_when_available(reloading: ds.Serving) -> None:
    response = _reload(reloading, [HP2, HP3])
    assert response.status.error_code == 0
    # The RPC waits for newly named models: no polling needed afterwards.
    r = reloading.get("/v1/models/half_plus_three")
    assert r.json()["model_version_status"][0]["state"] == "AVAILABLE"
    r = reloading.post("/v1/models/half_plus_three:predict", {"instances": [1.0, 2.0, 5.0]})
    assert r.json() == {"predictions": [3.5, 4.0, 5.5]}  # api_rest.md, half_plus_three


def test_reload_omitting_a_model_unloads_it(reloading: ds.Serving) -> None:
    _reload(reloading, [HP2, HP3])
    _reload(reloading, [HP2])
    ds.wait_state(reloading, "half_plus_three", {1: "END"})
    r = reloading.post("/v1/models/half_plus_three:predict", {"instances": [1.0]})
    assert (r.status_code, r.json()) == (
        404,
        {"error": "Servable not found for request: Latest(half_plus_three)"},
    )


def test_all_policy_serves_every_version(reloading: ds.Serving) -> None:
    _reload(
        reloading, [HP2, {"name": "hp2_all", "base_path": "/models/half_plus_two", "policy": "all"}]
    )
    ds.wait_state(reloading, "hp2_all", {1: "AVAILABLE", 2: "AVAILABLE"})
    for version in (1, 2):
        r = reloading.post(f"/v1/models/hp2_all/versions/{version}:predict", {"instances": [2.0]})
        assert r.json() == {"predictions": [half_plus_two(2.0)]}


def test_labels_via_reload(reloading: ds.Serving) -> None:
    specific = {"name": "labelled", "base_path": "/models/half_plus_two", "policy": [1, 2]}
    _reload(reloading, [HP2, specific])
    ds.wait_state(reloading, "labelled", {1: "AVAILABLE", 2: "AVAILABLE"})
    _reload(reloading, [HP2, {**specific, "labels": {"stable": 1, "canary": 2}}])
    r = reloading.get("/v1/models/labelled/labels/stable/metadata")
    assert r.json()["model_spec"]["version"] == "1"
    r = reloading.post("/v1/models/labelled/labels/canary:predict", {"instances": [1.0, 2.0]})
    assert r.json() == {"predictions": [2.5, 3.0]}

    # A label on a version that is not available is refused (FAILED_PRECONDITION).
    with pytest.raises(grpc.RpcError) as err:
        _reload(reloading, [HP2, {**specific, "labels": {"stable": 1, "canary": 7}}])
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.details() == (
        "Request to assign label to version 7 of model labelled, which is not currently "
        "available for inference"
    )


@pytest.mark.parametrize(
    ("models", "code", "details"),
    [
        ([HP2, HP2], grpc.StatusCode.INVALID_ARGUMENT,
         "Illegal to list model half_plus_two multiple times in config list"),
        ([HP2, {"name": "rel", "base_path": "relative/path"}], grpc.StatusCode.INVALID_ARGUMENT,
         "Expected model rel to have an absolute path or URI; got base_path()=relative/path"),
        ([HP2, {"name": "odd", "base_path": "/models/half_plus_three", "platform": "caffe"}],
         grpc.StatusCode.INVALID_ARGUMENT, "Model odd requests unsupported platform caffe"),
    ],
)  # fmt: skip
def test_reload_validation_errors(
    reloading: ds.Serving, models: list[dict[str, Any]], code: grpc.StatusCode, details: str
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        _reload(reloading, models)
    assert err.value.code() == code
    assert err.value.details() == details


def test_reload_rejects_a_non_list_config(reloading: ds.Serving) -> None:
    from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

    with reloading.grpc_channel() as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == (
        "ServerModelConfig type not supported by HandleReloadConfigRequest. Only ModelConfigList "
        "is currently supported"
    )


def test_reload_of_a_failing_model_reports_it(reloading: ds.Serving) -> None:
    with pytest.raises(grpc.RpcError) as err:
        _reload(reloading, [HP2, {"name": "broken", "base_path": "/models/broken"}])
    assert err.value.code() == grpc.StatusCode.UNKNOWN
    assert err.value.details().startswith(
        "1 model(s) did not become available: {{name: broken version: 1} due to error: "
    )
    status = reloading.get("/v1/models/broken").json()["model_version_status"][0]
    assert status["state"] == "END"
    assert status["status"]["error_code"] != "OK"


def test_reload_of_a_model_without_versions_hangs_until_the_deadline(reloading: ds.Serving) -> None:
    # Last test of this container: upstream keeps waiting (and holding the config lock).
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        _reload(reloading, [HP2, {"name": "empty", "base_path": "/models/empty"}], timeout=4)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started >= 3.5
    assert "No versions of servable empty found under base path /models/empty" in reloading.logs()


# ---------------------------------------------------------------------------
# C: start-up behaviour


def test_ports_closed_during_initial_load_and_version_discovery(
    launcher: ds.Launcher, tmp_path: Path, models_dir: Path
) -> None:
    base = tmp_path / "m"
    base.mkdir()
    (base / "not_a_version").mkdir()  # non-numeric: ignored
    ds.world_readable(tmp_path)
    with launcher.running(env={"MODEL_NAME": "m"}, mounts={str(tmp_path): "/models"}) as serving:
        # No numeric version dir: start-up waits forever, ports closed, warning logged.
        deadline = time.monotonic() + 60
        while "No versions of servable m found under base path /models/m" not in serving.logs():
            assert time.monotonic() < deadline, serving.logs()
            time.sleep(0.5)
        assert ds.connection_refused(serving.ip, 8501)
        assert ds.connection_refused(serving.ip, 8500)
        # Publish a version the safe way (copy under a non-numeric name, rename).
        shutil.copytree(models_dir / "half_plus_two" / "1", base / "tmp-00000007")
        ds.world_readable(tmp_path)
        (base / "tmp-00000007").rename(base / "00000007")
        ds.wait_ready(serving, "m")
        assert ds.wait_state(serving, "m", {7: "AVAILABLE"}) == {7: "AVAILABLE"}

        # A newer version rolls over (latest policy), the older one ends.
        shutil.copytree(models_dir / "half_plus_two" / "2", base / "tmp-8")
        ds.world_readable(tmp_path)
        (base / "tmp-8").rename(base / "8")
        ds.wait_state(serving, "m", {8: "AVAILABLE", 7: "END"})
        # Removing the served version's dir unloads it.
        shutil.rmtree(base / "8")
        ds.wait_state(serving, "m", {8: "END"})

        started = time.monotonic()
        serving.container.stop(timeout=30)
        if ds.is_double(serving):
            # Upstream ignores SIGTERM (issue #1853); the double's entrypoint execs and the
            # server exits at once with status 0.
            assert time.monotonic() - started < 10
            serving.container.reload()
            assert serving.container.attrs["State"]["ExitCode"] == 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--enable_batching=1"], "Couldn't interpret value =1 for flag enable_batching."),
        (["--rest_api_port=abc"], "Couldn't interpret value abc for flag rest_api_port."),
        (["--batching_parameters_file=/tmp/b.txt"],
         "server_options.batching_parameters_file is set without setting "
         "server_options.enable_batching to true."),
        (["--model_base_path="], "Both server_options.model_base_path and "
         "server_options.model_config_file are empty!"),
        (["--tensorflow_intra_op_parallelism=1", "--tensorflow_inter_op_parallelism=1",
          "--tensorflow_session_parallelism=1"],
         "Either configure server_options.tensorflow_session_parallelism or "
         "(server_options.tensorflow_intra_op_parallelism, "
         "server_options.tensorflow_inter_op_parallelism) separately. You cannot configure all."),
    ],
)  # fmt: skip
def test_startup_errors_exit_255(launcher: ds.Launcher, args: list[str], expected: str) -> None:
    code, logs = launcher.exit_of(args)
    assert code == 255, logs
    if "Couldn't interpret" in expected:
        assert expected in logs
        assert "usage: " in logs  # main.cc prints the usage after a parse failure
    else:
        ds.assert_startup_error(logs, expected)


def test_unknown_argument_is_reported_and_ignored(launcher: ds.Launcher, models_dir: Path) -> None:
    with launcher.running(
        env={"MODEL_NAME": "half_plus_two"},
        mounts={str(models_dir / "half_plus_two"): "/models/half_plus_two"},
        args=["--no_such_flag=1"],
    ) as serving:
        ds.wait_ready(serving, "half_plus_two")
        assert "unknown argument: --no_such_flag=1" in serving.logs()
        r = serving.post("/v1/models/half_plus_two:predict", {"instances": [4.0]})
        assert r.json() == {"predictions": [half_plus_two(4.0)]}


def test_version_flag(launcher: ds.Launcher) -> None:
    code, logs = launcher.exit_of(["--version"])
    assert code == 0
    assert "TensorFlow ModelServer: " in logs
    assert "TensorFlow Library: " in logs


def test_startup_fails_when_the_initial_model_fails(
    launcher: ds.Launcher, reload_models: Path
) -> None:
    code, logs = launcher.exit_of(
        ["--max_num_load_retries=0"],
        env={"MODEL_NAME": "broken"},
        mounts={str(reload_models): "/models"},
    )
    assert code == 255, logs
    ds.assert_startup_error(
        logs, "1 servable(s) did not become available: {{name: broken version: 1} due to error: "
    )


def test_startup_labels_need_the_allow_flag(
    launcher: ds.Launcher, tmp_path: Path, models_dir: Path
) -> None:
    shutil.copytree(models_dir / "half_plus_two", tmp_path / "hp2")
    (tmp_path / "models.config").write_text(
        ds.config_text(
            [{"name": "hp2", "base_path": "/models/hp2", "policy": [1, 2], "labels": {"stable": 2}}]
        )
    )
    ds.world_readable(tmp_path)
    args = ["--model_config_file=/models/models.config"]
    code, logs = launcher.exit_of(args, mounts={str(tmp_path): "/models"})
    assert code == 255, logs
    ds.assert_startup_error(
        logs,
        "Request to assign label to version 2 of model hp2, which is not currently available "
        "for inference",
    )

    with launcher.running(
        mounts={str(tmp_path): "/models"},
        args=[*args, "--allow_version_labels_for_unavailable_models"],
    ) as serving:
        ds.wait_ready(serving, "hp2")
        ds.wait_state(serving, "hp2", {1: "AVAILABLE", 2: "AVAILABLE"})
        r = serving.get("/v1/models/hp2/labels/stable/metadata")
        assert r.json()["model_spec"]["version"] == "2"


# ---------------------------------------------------------------------------
# D: strings and base64


@pytest.fixture(scope="module")
def string_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("strings")
    ds.make_string_model(root / "strings" / "1")
    ds.world_readable(root)
    return root


def test_b64_in_and_out(launcher: ds.Launcher, string_model: Path) -> None:
    with launcher.running(
        env={"MODEL_NAME": "strings"},
        mounts={str(string_model / "strings"): "/models/strings"},
    ) as serving:
        ds.wait_ready(serving, "strings")
        # json_tensor_test.cc: {"b64": "aGVsbG8="} is the DT_STRING "hello".
        body = {"instances": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}]}
        r = serving.post("/v1/models/strings:predict", body)
        assert r.status_code == 200, r.text
        # Outputs whose name ends in "_bytes" come back as {"b64": ...}.
        assert r.json() == {
            "predictions": [
                {"echo_bytes": {"b64": "aGVsbG8="}, "length": 5},
                {"echo_bytes": {"b64": "d29ybGQ="}, "length": 5},
            ]
        }
        r = serving.post("/v1/models/strings:predict", {"inputs": ["abc"]})
        assert r.json() == {
            "outputs": {"echo_bytes": [{"b64": base64.b64encode(b"abc").decode()}], "length": [3]}
        }


# ---------------------------------------------------------------------------
# E: gRPC over TLS (--ssl_config_file) and the config-file poller


def _self_signed(folder: Path) -> tuple[str, str]:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem"),
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return (folder / "key.pem").read_text(), (folder / "cert.pem").read_text()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
def test_tls_grpc_and_config_file_polling(
    launcher: ds.Launcher, tmp_path: Path, models_dir: Path
) -> None:
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    cfg = tmp_path / "cfg"
    cfg.mkdir()
    key, cert = _self_signed(cfg)
    # SSLConfig text proto; JSON string escapes are valid text-format escapes.
    (cfg / "ssl.config").write_text(
        f"server_key: {json.dumps(key)}\nserver_cert: {json.dumps(cert)}\nclient_verify: false\n"
    )
    hp2 = {"name": "half_plus_two", "base_path": "/models/half_plus_two"}
    (cfg / "models.config").write_text(ds.config_text([hp2]))
    ds.world_readable(cfg)
    args = [
        "--model_config_file=/cfg/models.config",
        "--model_config_file_poll_wait_seconds=1",
        "--ssl_config_file=/cfg/ssl.config",
    ]
    mounts = {str(cfg): "/cfg", str(models_dir): "/models"}
    with launcher.running(args=args, mounts=mounts) as serving:
        ds.wait_ready(serving, "half_plus_two")
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "half_plus_two"
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.encode())
        options = [("grpc.ssl_target_name_override", "localhost")]
        with grpc.secure_channel(serving.grpc_target, credentials, options) as channel:
            result = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
                request, timeout=10
            )
            assert result.model_version_status[0].version == 2
        with serving.grpc_channel() as channel, pytest.raises(grpc.RpcError):
            model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=3)

        # The poller re-reads the file: a model added there gets loaded.
        hp3 = {"name": "half_plus_three", "base_path": "/models/half_plus_three"}
        (cfg / "models.tmp").write_text(ds.config_text([hp2, hp3]))
        (cfg / "models.tmp").chmod(0o644)
        (cfg / "models.tmp").replace(cfg / "models.config")
        ds.wait_state(serving, "half_plus_three", {1: "AVAILABLE"})
