"""Differences between the double and TF Serving that were closed, each proven on the image.

gRPC health service, ``MultiInference``, ``tensor_shape`` on scalar outputs,
TensorFlow's ``GetInputValues`` checks with signature ``defaults``, REST
keep-alive latency and an image without python/curl/wget on PATH. The model
is a TF1-style export made here (regress, classify and a predict signature
with a default input), so nothing depends on ``../shared``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration import double_support as ds

pytestmark = [pytest.mark.double, pytest.mark.docker]

MODEL = "gaps"

# y = x * k (k defaults to 10), total = sum(x): a scalar; regress/classify: 0.5 x + 2 per Example.
EXPORT = r"""
import sys
import tensorflow as tf
import tensorflow.compat.v1 as tf1

tf1.disable_eager_execution()
graph = tf1.Graph()
with graph.as_default():
    serialized = tf1.placeholder(tf.string, [None], name="tf_example")
    feats = tf1.parse_example(serialized, {"x": tf1.FixedLenFeature([1], tf.float32)})
    half_plus_two = tf.add(tf.multiply(feats["x"], 0.5), 2.0, name="half_plus_two")
    x = tf1.placeholder(tf.float32, [None], name="x")
    k = tf1.placeholder(tf.float32, [], name="k")
    y = tf.multiply(x, k, name="y")
    total = tf.reduce_sum(x, name="total")
    predict = tf1.saved_model.predict_signature_def({"x": x, "k": k}, {"y": y, "total": total})
    predict.defaults["k"].CopyFrom(tf.make_tensor_proto(10.0, dtype=tf.float32))
    with tf1.Session(graph=graph) as sess:
        builder = tf1.saved_model.Builder(sys.argv[1])
        builder.add_meta_graph_and_variables(
            sess,
            ["serve"],
            signature_def_map={
                "serving_default": predict,
                "regress_x_to_y": tf1.saved_model.regression_signature_def(
                    serialized, half_plus_two
                ),
                "classify_x_to_y": tf1.saved_model.classification_signature_def(
                    serialized, None, half_plus_two
                ),
            },
        )
        builder.save()
"""


@pytest.fixture(scope="module")
def gaps_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gaps")
    subprocess.run(
        [sys.executable, "-c", EXPORT, str(root / MODEL / "1")],
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
    )
    ds.world_readable(root)
    return root / MODEL


@pytest.fixture(scope="module")
def serving(docker_client: Any, serving_image: str, gaps_model: Path) -> Iterator[ds.Serving]:
    s = ds.start(
        docker_client,
        serving_image,
        args=["--enable_grpc_healthcheck_service"],
        env={"MODEL_NAME": MODEL},
        mounts={str(gaps_model): f"/models/{MODEL}"},
    )
    try:
        ds.wait_ready(s, MODEL)
        yield s
    finally:
        ds.stop(s)


def _stub(serving: ds.Serving) -> Any:
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    return prediction_service_pb2_grpc.PredictionServiceStub(serving.grpc_channel())


def _predict(serving: ds.Serving, **inputs: Any) -> Any:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    for alias, value in inputs.items():
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(value, dtype=tf.float32))
    return _stub(serving).Predict(request, timeout=30)


def _health_check(serving: ds.Serving, service: str) -> Any:
    from tests.double.tfserving_double import health

    request_cls, response_cls = health.messages()
    check = serving.grpc_channel().unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=request_cls.SerializeToString,
        response_deserializer=response_cls.FromString,
    )
    return check(request_cls(service=service), timeout=10)


def test_grpc_health_check_answers_serving(serving: ds.Serving) -> None:
    import grpc

    for service in ("", "ModelService", "PredictionService"):
        assert _health_check(serving, service).status == 1, service  # SERVING
    with pytest.raises(grpc.RpcError) as exc_info:
        _health_check(serving, "tensorflow.serving.Nope")
    assert exc_info.value.code() == grpc.StatusCode.NOT_FOUND


def test_grpc_health_service_absent_without_the_flag(
    docker_client: Any, serving_image: str, gaps_model: Path
) -> None:
    import grpc

    s = ds.start(
        docker_client,
        serving_image,
        env={"MODEL_NAME": MODEL},
        mounts={str(gaps_model): f"/models/{MODEL}"},
    )
    try:
        ds.wait_ready(s, MODEL)
        with pytest.raises(grpc.RpcError) as exc_info:
            _health_check(s, "")
        assert exc_info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        ds.stop(s)


def test_multi_inference_regress_and_classify(serving: ds.Serving) -> None:
    from tensorflow_serving.apis import inference_pb2

    request = inference_pb2.MultiInferenceRequest()
    for signature, method in (
        ("regress_x_to_y", "tensorflow/serving/regress"),
        ("classify_x_to_y", "tensorflow/serving/classify"),
    ):
        task = request.tasks.add(method_name=method)
        task.model_spec.name = MODEL
        task.model_spec.signature_name = signature
    for x in (2.0, 4.0):
        request.input.example_list.examples.add().features.feature["x"].float_list.value.append(x)
    result = _stub(serving).MultiInference(request, timeout=30)
    assert [r.model_spec.signature_name for r in result.results] == [
        "regress_x_to_y",
        "classify_x_to_y",
    ]
    assert all(r.model_spec.version.value == 1 for r in result.results)
    assert [v.value for v in result.results[0].regression_result.regressions] == [3.0, 4.0]
    scores = [
        [c.score for c in cls.classes]
        for cls in result.results[1].classification_result.classifications
    ]
    assert scores == [[3.0], [4.0]]


def test_multi_inference_refuses_mixed_models_and_predict_tasks(serving: ds.Serving) -> None:
    import grpc
    from tensorflow_serving.apis import inference_pb2

    stub = _stub(serving)
    mixed = inference_pb2.MultiInferenceRequest()
    for name in (MODEL, "other"):
        task = mixed.tasks.add(method_name="tensorflow/serving/regress")
        task.model_spec.name = name
    with pytest.raises(grpc.RpcError) as exc_info:
        stub.MultiInference(mixed, timeout=30)
    assert exc_info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc_info.value.details() == (
        "All ModelSpecs in a MultiInferenceRequest must access the same model name."
    )
    predict = inference_pb2.MultiInferenceRequest()
    task = predict.tasks.add(method_name="tensorflow/serving/predict")
    task.model_spec.name = MODEL
    with pytest.raises(grpc.RpcError) as exc_info:
        stub.MultiInference(predict, timeout=30)
    assert exc_info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_scalar_output_has_a_tensor_shape(serving: ds.Serving) -> None:
    result = _predict(serving, x=[1.0, 2.0], k=3.0)
    total = result.outputs["total"]
    assert total.HasField("tensor_shape")
    assert list(total.tensor_shape.dim) == []
    assert list(total.float_val) == [3.0]
    assert [d.size for d in result.outputs["y"].tensor_shape.dim] == [2]
    assert list(result.outputs["y"].float_val) == [3.0, 6.0]


def test_missing_input_takes_the_signature_default(serving: ds.Serving) -> None:
    result = _predict(serving, x=[1.0, 2.0])  # k from the signature's defaults: 10
    assert list(result.outputs["y"].float_val) == [10.0, 20.0]


def test_missing_and_extra_inputs_use_get_input_values_texts(serving: ds.Serving) -> None:
    import grpc

    with pytest.raises(grpc.RpcError) as exc_info:
        _predict(serving, k=2.0)
    assert exc_info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc_info.value.details() == (
        "Signature input alias: x(feed name: x:0) not found in request and no default value "
        "provided. Inputs expected to be in the request {k}, or default input alias set: k"
    )
    with pytest.raises(grpc.RpcError) as exc_info:
        _predict(serving, x=[1.0], z=1.0)
    assert exc_info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc_info.value.details() == (
        "Inputs contains invalid name. Used request inputs: x, request input: x,z"
    )


def test_rest_has_no_multi_inference_route(serving: ds.Serving) -> None:
    r = serving.post(f"/v1/models/{MODEL}:multiInference", {"tasks": []})
    assert r.status_code in (400, 404), r.text
    assert "error" in r.json()


def _median_get(url: str, session: requests.Session | None, n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        r = (session or requests).get(url, timeout=10)
        times.append(time.perf_counter() - start)
        assert r.status_code == 200
    return statistics.median(times)


def test_keep_alive_requests_are_as_quick_as_fresh_connections(serving: ds.Serving) -> None:
    url = f"{serving.rest}/v1/models/{MODEL}"
    with requests.Session() as session:
        session.get(url, timeout=10)  # connection open
        kept = _median_get(url, session, 30)
    fresh = _median_get(url, None, 30)
    # Before: ~43 ms per kept-alive request (Nagle + delayed ACK) against ~2 ms fresh.
    assert kept <= 2 * fresh + 0.002, (kept, fresh)


def test_image_has_no_python_curl_or_wget_on_path(docker_client: Any, serving_image: str) -> None:
    out = docker_client.containers.run(
        serving_image,
        ["-c", "for t in python3 python curl wget; do command -v $t; done; echo checked"],
        entrypoint="bash",
        remove=True,
        labels={"io.tfsops.test": "double-gaps"},
    )
    assert out.decode().split() == ["checked"]
