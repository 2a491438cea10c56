"""Conformance against TF Serving's own test models and expected outputs (optional).

Uses ``../shared/testdata/tfserving`` (copied from tensorflow/serving's
testdata); skipped when it is absent. Expected values are those of
upstream's ``http_rest_api_handler_test.cc``, ``g3doc/docker.md``,
``g3doc/api_rest.md`` and ``saved_model_half_plus_two_2_versions_metadata.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import double_support as ds

pytestmark = [pytest.mark.double, pytest.mark.docker]


@pytest.fixture(scope="module")
def launcher(docker_client: Any, serving_image: str, run_id: str) -> ds.Launcher:
    return ds.Launcher(docker_client, serving_image, run_id)


@pytest.fixture(scope="module")
def two_versions(launcher: ds.Launcher, upstream_testdata: Path) -> Iterator[ds.Serving]:
    # The reference's own example: docker run -p 8501:8501
    #   -v .../saved_model_half_plus_two_2_versions:/models/m -e MODEL_NAME=m tensorflow/serving
    with launcher.running(
        env={"MODEL_NAME": "m"},
        mounts={str(upstream_testdata / "saved_model_half_plus_two_2_versions"): "/models/m"},
    ) as serving:
        ds.wait_ready(serving, "m")
        yield serving


def test_latest_policy_loads_only_124(two_versions: ds.Serving) -> None:
    r = two_versions.get("/v1/models/m")
    assert r.json() == {
        "model_version_status": [
            {
                "version": "124",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }


def test_docker_md_predict_on_a_tf1_export(two_versions: ds.Serving) -> None:
    # x:0 is declared [-1, 1]; the server feeds shape [3] anyway (docker.md).
    r = two_versions.post("/v1/models/m:predict", {"instances": [1.0, 2.0, 5.0]})
    assert r.json() == {"predictions": [2.5, 3.0, 4.5]}
    r = two_versions.post("/v1/models/m:predict", {"instances": [[1.0, 2.0], [3.0, 4.0]]})
    assert r.json() == {"predictions": [[2.5, 3.0], [3.5, 4.0]]}


def test_classify_and_regress(two_versions: ds.Serving) -> None:
    r = two_versions.post(
        "/v1/models/m:regress", {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]}
    )
    assert r.json() == {"results": [42]}
    r = two_versions.post(
        "/v1/models/m:classify", {"signature_name": "classify_x_to_y", "examples": [{"x": 20.0}]}
    )
    assert r.json() == {"results": [[["", 12]]]}
    # Context features are merged into every example.
    r = two_versions.post(
        "/v1/models/m:regress",
        {"signature_name": "regress_x_to_y", "context": {"x": 80.0}, "examples": [{}, {}]},
    )
    assert r.json() == {"results": [42, 42]}
    r = two_versions.post("/v1/models/m:classify", {"signature_name": "classify_x_to_y"})
    assert r.status_code == 400
    assert r.json()["error"].endswith(
        "When method is classify, key 'examples' is expected and was not found"
    )


def test_b64_tf_example_through_predict(two_versions: ds.Serving) -> None:
    import base64

    from tensorflow.core.example import example_pb2

    example = example_pb2.Example()
    example.features.feature["x"].float_list.value.append(10.0)
    blob = base64.b64encode(example.SerializeToString()).decode()
    r = two_versions.post(
        "/v1/models/m:predict", {"signature_name": "regress_x_to_y", "instances": [{"b64": blob}]}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [[7.0]]}


def test_metadata_matches_upstream_file(two_versions: ds.Serving, upstream_testdata: Path) -> None:
    expected = json.loads(
        (upstream_testdata / "saved_model_half_plus_two_2_versions_metadata.json").read_text()
    )
    got = two_versions.get("/v1/models/m/versions/124/metadata").json()
    expected["model_spec"]["name"] = "m"
    expected["model_spec"]["version"] = "124"
    assert got == expected


def test_grpc_classify_and_regress(two_versions: ds.Serving) -> None:
    from tensorflow_serving.apis import (
        classification_pb2,
        prediction_service_pb2_grpc,
        regression_pb2,
    )

    with two_versions.grpc_channel() as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = regression_pb2.RegressionRequest()
        request.model_spec.name = "m"
        request.model_spec.signature_name = "regress_x_to_y"
        request.input.example_list.examples.add().features.feature["x"].float_list.value.append(
            80.0
        )
        response = stub.Regress(request, timeout=30)
        assert [r.value for r in response.result.regressions] == [42.0]
        assert response.model_spec.version.value == 124

        crequest = classification_pb2.ClassificationRequest()
        crequest.model_spec.name = "m"
        crequest.model_spec.signature_name = "classify_x_to_y"
        crequest.input.example_list.examples.add().features.feature["x"].float_list.value.append(
            10.0
        )
        cresponse = stub.Classify(crequest, timeout=30)
        classes = cresponse.result.classifications[0].classes
        assert [(c.label, c.score) for c in classes] == [("", 7.0)]


@pytest.fixture(scope="module")
def config_mode(
    launcher: ds.Launcher,
    upstream_testdata: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ds.Serving]:
    folder = tmp_path_factory.mktemp("upstream-config")
    (folder / "models.config").write_text(
        ds.config_text(
            [
                {"name": "half_plus_three", "base_path": "/testdata/saved_model_half_plus_three"},
                {
                    "name": "both",
                    "base_path": "/testdata/saved_model_half_plus_two_2_versions",
                    "policy": "all",
                },
            ]
        )
    )
    ds.world_readable(folder)
    with launcher.running(
        mounts={str(upstream_testdata): "/testdata", str(folder): "/cfg"},
        args=[
            "--model_config_file=/cfg/models.config",
            "--monitoring_config_file=/testdata/monitoring_config.txt",
            # Upstream's batching_config.txt must parse and leave serving working.
            "--enable_batching",
            "--batching_parameters_file=/testdata/batching_config.txt",
        ],
    ) as serving:
        ds.wait_ready(serving, "half_plus_three")
        yield serving


def test_all_policy_loads_both_upstream_versions(config_mode: ds.Serving) -> None:
    states = ds.wait_state(config_mode, "both", {123: "AVAILABLE", 124: "AVAILABLE"})
    assert states == {123: "AVAILABLE", 124: "AVAILABLE"}


def test_api_rest_md_half_plus_three(config_mode: ds.Serving) -> None:
    r = config_mode.post("/v1/models/half_plus_three:predict", {"instances": [1.0, 2.0, 5.0]})
    assert r.json() == {"predictions": [3.5, 4.0, 5.5]}
    r = config_mode.post(
        "/v1/models/half_plus_three:regress",
        {"signature_name": "tensorflow/serving/regress", "examples": [{"x": 1.0}, {"x": 2.0}]},
    )
    assert r.json() == {"results": [3.5, 4.0]}


def test_upstream_monitoring_config(config_mode: ds.Serving) -> None:
    r = config_mode.get("/monitoring/prometheus/metrics")
    assert r.status_code == 200
    assert "# TYPE" in r.text


def test_bad_model_config_fails_startup(launcher: ds.Launcher, upstream_testdata: Path) -> None:
    code, logs = launcher.exit_of(
        ["--model_config_file=/testdata/bad_model_config.txt"],
        mounts={str(upstream_testdata): "/testdata"},
    )
    assert code == 255
    # tensorflow_model_server_test.py::testBadModelConfig
    assert "Error parsing text-format tensorflow.serving.ModelServerConfig" in logs
    ds.assert_startup_error(logs, "Invalid protobuf file: '/testdata/bad_model_config.txt'")


def test_bad_model_fails_startup(launcher: ds.Launcher, upstream_testdata: Path) -> None:
    code, logs = launcher.exit_of(
        ["--max_num_load_retries=0"],
        env={"MODEL_NAME": "bad_half_plus_two"},
        mounts={str(upstream_testdata / "bad_half_plus_two"): "/models/bad_half_plus_two"},
    )
    assert code == 255, logs
    ds.assert_startup_error(
        logs,
        "1 servable(s) did not become available: {{name: bad_half_plus_two version: 123} "
        "due to error: ",
    )
