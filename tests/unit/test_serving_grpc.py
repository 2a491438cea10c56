"""GrpcServingClient against a real in-process ``grpc.server`` on port 0.

Servicers are written here from the generated ``*_pb2_grpc`` modules (loaded
through ``protos.load``, never through ``tensorflow``); they answer with
upstream's texts and codes (reference/tfserving.md §3). A fake-backed pair of
servicers runs the contract shared with ``FakeServing``.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.unit.fakes import FakeServing, contract_scene, run_serving_contract
from tfsops.adapters import protos
from tfsops.adapters.serving_grpc import (
    GrpcServingClient,
    build_predict_request,
    predict_response_to_json,
    tensor_to_value,
    to_tensor_proto,
)
from tfsops.errors import (
    ExitCode,
    InvalidInput,
    ModelNotFound,
    NotReady,
    OperationFailed,
    ServerStarting,
    TfsopsError,
)
from tfsops.ports import AVAILABLE, END, Endpoint, VersionStatus

model_service_grpc = protos.load("tensorflow_serving.apis.model_service_pb2_grpc")
prediction_service_grpc = protos.load("tensorflow_serving.apis.prediction_service_pb2_grpc")
status_pb2 = protos.load("tensorflow_serving.apis.get_model_status_pb2")
metadata_pb2 = protos.load("tensorflow_serving.apis.get_model_metadata_pb2")
predict_pb2 = protos.load("tensorflow_serving.apis.predict_pb2")
management_pb2 = protos.load("tensorflow_serving.apis.model_management_pb2")
meta_graph_pb2 = protos.load("tensorflow.core.protobuf.meta_graph_pb2")
tensor_pb2 = protos.load("tensorflow.core.framework.tensor_pb2")
types_pb2 = protos.load("tensorflow.core.framework.types_pb2")

Behaviour = Callable[[Any, Any], Any]  # (request, context) -> response


_ModelServiceBase: Any = model_service_grpc.ModelServiceServicer
_PredictionServiceBase: Any = prediction_service_grpc.PredictionServiceServicer


class ModelService(_ModelServiceBase):  # type: ignore[misc]
    def __init__(self, owner: GrpcTestServer) -> None:
        self.owner = owner

    def GetModelStatus(self, request: Any, context: Any) -> Any:
        return self.owner.dispatch("GetModelStatus", request, context)

    def HandleReloadConfigRequest(self, request: Any, context: Any) -> Any:
        return self.owner.dispatch("HandleReloadConfigRequest", request, context)


class PredictionService(_PredictionServiceBase):  # type: ignore[misc]
    def __init__(self, owner: GrpcTestServer) -> None:
        self.owner = owner

    def GetModelMetadata(self, request: Any, context: Any) -> Any:
        return self.owner.dispatch("GetModelMetadata", request, context)

    def Predict(self, request: Any, context: Any) -> Any:
        return self.owner.dispatch("Predict", request, context)


class GrpcTestServer:
    """A real gRPC server on 127.0.0.1:0; ``on[method]`` decides each answer."""

    def __init__(self, credentials: Any = None) -> None:
        self.on: dict[str, Behaviour] = {}
        self.requests: list[tuple[str, Any, float | None]] = []  # (method, request, time left)
        self.release = threading.Event()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        model_service_grpc.add_ModelServiceServicer_to_server(ModelService(self), self.server)
        prediction_service_grpc.add_PredictionServiceServicer_to_server(
            PredictionService(self), self.server
        )
        if credentials is None:
            port = self.server.add_insecure_port("127.0.0.1:0")
        else:
            port = self.server.add_secure_port("127.0.0.1:0", credentials)
        self.server.start()
        self.endpoint = Endpoint("127.0.0.1", None, port)

    def dispatch(self, method: str, request: Any, context: Any) -> Any:
        self.requests.append((method, request, context.time_remaining()))
        behaviour = self.on.get(method)
        if behaviour is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} not scripted")
        return behaviour(request, context)  # type: ignore[misc]

    def close(self) -> None:
        self.release.set()
        self.server.stop(0)


@pytest.fixture
def server() -> Iterator[GrpcTestServer]:
    s = GrpcTestServer()
    yield s
    s.close()


@pytest.fixture
def client(server: GrpcTestServer) -> Iterator[GrpcServingClient]:
    with GrpcServingClient(server.endpoint) as c:
        yield c


def abort(code: grpc.StatusCode, text: str) -> Behaviour:
    def behaviour(_request: Any, context: Any) -> Any:
        context.abort(code, text)

    return behaviour


def status_response(*entries: tuple[int, int, int, str]) -> Any:
    response = status_pb2.GetModelStatusResponse()
    for version, state, code, message in entries:
        e = response.model_version_status.add(version=version, state=state)
        e.status.error_code = code
        e.status.error_message = message
    return response


def signature_def(inputs: dict[str, int], outputs: dict[str, int]) -> Any:
    sig = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    for name, dtype in inputs.items():
        sig.inputs[name].dtype = dtype
        sig.inputs[name].name = f"{name}:0"
    for name, dtype in outputs.items():
        sig.outputs[name].dtype = dtype
        sig.outputs[name].name = f"{name}:0"
    return sig


def metadata_response(model: str, version: int, signatures: dict[str, Any]) -> Any:
    response = metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = model
    response.model_spec.version.value = version
    sigmap = metadata_pb2.SignatureDefMap()
    for name, sig in signatures.items():
        sigmap.signature_def[name].CopyFrom(sig)
    response.metadata["signature_def"].Pack(sigmap)
    return response


HALF = signature_def({"x": types_pb2.DT_FLOAT}, {"y": types_pb2.DT_FLOAT})


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# ---------------------------------------------------------------------------
# status, metadata, labels


def test_model_status(server: GrpcTestServer, client: GrpcServingClient) -> None:
    server.on["GetModelStatus"] = lambda req, ctx: status_response(
        (2, 30, 0, ""), (1, 50, 2, "Could not load: bad graph")
    )
    assert client.model_status("half", timeout=3) == [
        VersionStatus(1, END, "UNKNOWN", "Could not load: bad graph"),
        VersionStatus(2, AVAILABLE),
    ]
    _method, request, time_left = server.requests[0]
    assert request.model_spec.name == "half"
    assert not request.model_spec.HasField("version")
    assert time_left is not None
    assert time_left <= 3


def test_unknown_model(server: GrpcTestServer, client: GrpcServingClient) -> None:
    server.on["GetModelStatus"] = abort(
        grpc.StatusCode.NOT_FOUND, "Could not find any versions of model ghost"
    )
    with pytest.raises(ModelNotFound) as exc_info:
        client.model_status("ghost")
    assert exc_info.value.details["server_message"] == "Could not find any versions of model ghost"
    assert exc_info.value.details["grpc_code"] == "NOT_FOUND"


def test_label_version_and_metadata(server: GrpcTestServer, client: GrpcServingClient) -> None:
    server.on["GetModelMetadata"] = lambda req, ctx: metadata_response(
        req.model_spec.name,
        4 if req.model_spec.version_label == "canary" else 3,
        {"serving_default": HALF},
    )
    assert client.label_version("half", "canary") == 4
    assert server.requests[0][1].model_spec.version_label == "canary"
    assert list(server.requests[0][1].metadata_field) == ["signature_def"]
    meta = client.metadata("half", version=3)
    assert server.requests[1][1].model_spec.version.value == 3
    assert meta["model_spec"] == {"name": "half", "signature_name": "", "version": "3"}
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["inputs"]["x"]["dtype"] == "DT_FLOAT"


def test_unknown_label(server: GrpcTestServer, client: GrpcServingClient) -> None:
    server.on["GetModelMetadata"] = abort(
        grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized servable version label: canary"
    )
    with pytest.raises(ModelNotFound, match="has no version label 'canary'"):
        client.label_version("half", "canary")


def test_metadata_without_signatures_is_not_tf_serving(
    server: GrpcTestServer, client: GrpcServingClient
) -> None:
    server.on["GetModelMetadata"] = lambda req, ctx: metadata_pb2.GetModelMetadataResponse()
    with pytest.raises(OperationFailed, match="holds no signature_def map"):
        client.metadata("half")


def test_connection_refused_means_starting() -> None:
    with GrpcServingClient(Endpoint("127.0.0.1", None, closed_port())) as c:
        started = time.monotonic()
        with pytest.raises(ServerStarting) as exc_info:
            c.model_status("m", timeout=3)
    assert time.monotonic() - started < 3
    assert exc_info.value.exit_code == ExitCode.NOT_READY


def test_rest_port_by_mistake_is_not_starting() -> None:
    from tests.unit.test_serving_rest import LocalServer

    http = LocalServer(lambda _h: (404, "<html></html>", "text/html"))
    try:
        endpoint = Endpoint("127.0.0.1", None, http.endpoint.rest_port)
        with GrpcServingClient(endpoint) as c, pytest.raises(OperationFailed) as exc_info:
            c.model_status("m", timeout=3)
        assert "does not speak gRPC" in exc_info.value.message
    finally:
        http.close()


def test_status_that_never_answers_is_not_ready(
    server: GrpcTestServer, client: GrpcServingClient
) -> None:
    def hang(_req: Any, _ctx: Any) -> Any:
        server.release.wait(10)
        return status_response()

    server.on["GetModelStatus"] = hang
    with pytest.raises(NotReady, match=r"did not answer within 0\.3s"):
        client.model_status("m", timeout=0.3)


# ---------------------------------------------------------------------------
# reload

CONFIG = """
model_config_list {
  config {
    name: "half"
    base_path: "/models/half"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 2 } }
    version_labels { key: "stable" value: 1 }
  }
}
"""


def test_reload_sends_the_whole_config(server: GrpcTestServer, client: GrpcServingClient) -> None:
    server.on["HandleReloadConfigRequest"] = lambda req, ctx: management_pb2.ReloadConfigResponse()
    client.reload_config(CONFIG, timeout=7)
    method, request, time_left = server.requests[0]
    assert method == "HandleReloadConfigRequest"
    configs = request.config.model_config_list.config
    assert [c.name for c in configs] == ["half"]
    assert list(configs[0].model_version_policy.specific.versions) == [1, 2]
    assert dict(configs[0].version_labels) == {"stable": 1}
    assert time_left is not None
    assert 0 < time_left <= 7.5  # always under a deadline (the clocks differ by a little)


def test_reload_of_an_empty_list_is_sent_as_present(
    server: GrpcTestServer, client: GrpcServingClient
) -> None:
    server.on["HandleReloadConfigRequest"] = lambda req, ctx: management_pb2.ReloadConfigResponse()
    client.reload_config("model_config_list {}", timeout=2)
    assert server.requests[0][1].config.WhichOneof("config") == "model_config_list"


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (
            grpc.StatusCode.INVALID_ARGUMENT,
            "Illegal to list model half multiple times in config list",
        ),
        (
            grpc.StatusCode.FAILED_PRECONDITION,
            "Request to assign label to version 2 of model half, which is not currently "
            "available for inference",
        ),
        (
            grpc.StatusCode.UNKNOWN,
            "1 model(s) did not become available: {{name: half version: 2} due to error: "
            "Not found: bad graph}, }",
        ),
    ],
)
def test_reload_errors_carry_the_servers_text(
    server: GrpcTestServer, client: GrpcServingClient, code: grpc.StatusCode, text: str
) -> None:
    server.on["HandleReloadConfigRequest"] = abort(code, text)
    with pytest.raises(OperationFailed) as exc_info:
        client.reload_config(CONFIG, timeout=5)
    err = exc_info.value
    assert err.exit_code == ExitCode.FAILED
    assert err.message == f"reload failed ({code.name}): {text}"
    assert err.details["server_message"] == text


def test_reload_that_never_answers_fails_at_the_deadline(
    server: GrpcTestServer, client: GrpcServingClient
) -> None:
    def hang(_req: Any, _ctx: Any) -> Any:
        server.release.wait(10)  # as upstream does for a new model without a version dir
        return management_pb2.ReloadConfigResponse()

    server.on["HandleReloadConfigRequest"] = hang
    started = time.monotonic()
    with pytest.raises(OperationFailed) as exc_info:
        client.reload_config(CONFIG, timeout=0.3)
    assert time.monotonic() - started < 2
    err = exc_info.value
    assert err.message.startswith("reload did not finish within 0.3s: ")
    assert err.hint is not None
    assert "#1447" in err.hint
    assert "#1565" in err.hint


def test_reload_while_starting(client: GrpcServingClient) -> None:
    with (
        GrpcServingClient(Endpoint("127.0.0.1", None, closed_port())) as c,
        pytest.raises(ServerStarting),
    ):
        c.reload_config(CONFIG, timeout=2)


def test_reload_with_an_error_status_in_the_response(
    server: GrpcTestServer, client: GrpcServingClient
) -> None:
    def answer(_req: Any, _ctx: Any) -> Any:
        response = management_pb2.ReloadConfigResponse()
        response.status.error_code = 3
        response.status.error_message = "odd"
        return response

    server.on["HandleReloadConfigRequest"] = answer
    with pytest.raises(OperationFailed, match="reload failed: odd"):
        client.reload_config(CONFIG, timeout=2)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("model_config_list { config { nme: 'x' } }", "does not parse"),
        ("", "holds no model_config_list"),
    ],
)
def test_reload_text_is_checked_before_sending(
    server: GrpcTestServer, client: GrpcServingClient, text: str, pattern: str
) -> None:
    with pytest.raises(InvalidInput, match=pattern):
        client.reload_config(text, timeout=2)
    assert server.requests == []


# ---------------------------------------------------------------------------
# predict


def echo_half_plus_two(request: Any, _context: Any) -> Any:
    x = tensor_to_value(request.inputs["x"])

    def f(v: Any) -> Any:
        return [f(i) for i in v] if isinstance(v, list) else 0.5 * v + 2

    response = predict_pb2.PredictResponse()
    y = to_tensor_proto(f(x), "DT_FLOAT", name="y")
    # Real servers often answer with packed tensor_content: decode that path too.
    packed = tensor_pb2.TensorProto(dtype=y.dtype, tensor_shape=y.tensor_shape)
    packed.tensor_content = struct.pack(f"<{len(y.float_val)}f", *y.float_val)
    response.outputs["y"].CopyFrom(packed)
    return response


def test_predict_row_format_uses_signature_dtypes(
    server: GrpcTestServer, client: GrpcServingClient
) -> None:
    server.on["GetModelMetadata"] = lambda req, ctx: metadata_response(
        "half", 1, {"serving_default": HALF}
    )
    server.on["Predict"] = echo_half_plus_two
    assert client.predict("half", {"instances": [1, 2, 5]}) == {"predictions": [2.5, 3.0, 4.5]}
    request = server.requests[1][1]
    assert request.inputs["x"].dtype == types_pb2.DT_FLOAT  # ints sent as floats, as REST does
    assert [d.size for d in request.inputs["x"].tensor_shape.dim] == [3]
    # the signature is read once per client
    client.predict("half", {"inputs": [[0.1]]})
    assert [m for m, _r, _t in server.requests] == ["GetModelMetadata", "Predict", "Predict"]


def test_predict_columnar_with_version(server: GrpcTestServer, client: GrpcServingClient) -> None:
    server.on["GetModelMetadata"] = lambda req, ctx: metadata_response(
        "half", 2, {"serving_default": HALF}
    )
    server.on["Predict"] = echo_half_plus_two
    assert client.predict("half", {"inputs": {"x": [[0.1], [3.0]]}}, version=2) == {
        "outputs": [[2.05], [3.5]]
    }
    assert server.requests[1][1].model_spec.version.value == 2


def test_predict_multiple_outputs_and_strings(
    server: GrpcTestServer, client: GrpcServingClient
) -> None:
    sig = signature_def(
        {"text": types_pb2.DT_STRING, "n": types_pb2.DT_INT64},
        {"upper": types_pb2.DT_STRING, "raw_bytes": types_pb2.DT_STRING, "len": types_pb2.DT_INT32},
    )

    def answer(request: Any, _context: Any) -> Any:
        texts = tensor_to_value(request.inputs["text"])
        response = predict_pb2.PredictResponse()
        response.outputs["upper"].CopyFrom(to_tensor_proto([t.upper() for t in texts], "DT_STRING"))
        response.outputs["raw_bytes"].CopyFrom(
            to_tensor_proto([t.encode() for t in texts], "DT_STRING")
        )
        response.outputs["len"].CopyFrom(to_tensor_proto([len(t) for t in texts], "DT_INT32"))
        return response

    server.on["GetModelMetadata"] = lambda req, ctx: metadata_response(
        "m", 1, {"serving_default": sig}
    )
    server.on["Predict"] = answer
    body = {"instances": [{"text": "ab", "n": 1}, {"text": {"b64": "Y2Rl"}, "n": 2}]}
    assert client.predict("m", body) == {
        "predictions": [
            {"len": 2, "raw_bytes": {"b64": "YWI="}, "upper": "AB"},
            {"len": 3, "raw_bytes": {"b64": "Y2Rl"}, "upper": "CDE"},
        ]
    }
    assert client.predict("m", {"inputs": {"text": ["x"], "n": [1]}}) == {
        "outputs": {"len": [1], "raw_bytes": [{"b64": "eA=="}], "upper": ["X"]}
    }


def test_predict_unknown_signature_and_bad_inputs(
    server: GrpcTestServer, client: GrpcServingClient
) -> None:
    server.on["GetModelMetadata"] = lambda req, ctx: metadata_response(
        "half", 1, {"serving_default": HALF}
    )
    with pytest.raises(
        OperationFailed, match=r'"nope" not found in signature def .*serving_default'
    ):
        client.predict("half", {"signature_name": "nope", "instances": [1.0]})
    with pytest.raises(InvalidInput, match="has no input 'z'"):
        client.predict("half", {"inputs": {"z": [1.0]}})
    with pytest.raises(InvalidInput, match="not of expected type DT_FLOAT"):
        client.predict("half", {"instances": ["a"]})
    with pytest.raises(InvalidInput, match="exactly one of 'instances'"):
        client.predict("half", {})


def test_predict_error_from_the_server(server: GrpcTestServer, client: GrpcServingClient) -> None:
    server.on["GetModelMetadata"] = lambda req, ctx: metadata_response(
        "half", 1, {"serving_default": HALF}
    )
    server.on["Predict"] = abort(
        grpc.StatusCode.INVALID_ARGUMENT, "input tensor alias not found in signature: x2"
    )
    with pytest.raises(OperationFailed, match=r"failed \(INVALID_ARGUMENT\): input tensor alias"):
        client.predict("half", {"instances": [1.0]})


def test_large_answers_pass_the_default_4mb_limit(
    server: GrpcTestServer, client: GrpcServingClient
) -> None:
    n = 2 * 1024 * 1024  # 8 MiB of floats

    def answer(_request: Any, _context: Any) -> Any:
        response = predict_pb2.PredictResponse()
        t = response.outputs["y"]
        t.dtype = types_pb2.DT_FLOAT
        t.tensor_shape.dim.add(size=n)
        t.tensor_content = bytes(4 * n)
        return response

    server.on["GetModelMetadata"] = lambda req, ctx: metadata_response(
        "half", 1, {"serving_default": HALF}
    )
    server.on["Predict"] = answer
    out = client.predict("half", {"instances": [1.0]})
    assert len(out["predictions"]) == n


# ---------------------------------------------------------------------------
# tensor conversion


@pytest.mark.parametrize(
    ("value", "dtype", "expected"),
    [
        ([[1.0, 2.0], [3.0, 4.0]], "DT_FLOAT", [[1.0, 2.0], [3.0, 4.0]]),
        (0.1, "DT_FLOAT", 0.1),  # float32 shown as the shortest decimal, not 0.10000000149
        ([1, -2, 3], "DT_INT32", [1, -2, 3]),
        ([2**40], "DT_INT64", [2**40]),
        ([[True], [False]], "DT_BOOL", [[True], [False]]),
        ([1.5, -0.25], "DT_HALF", [1.5, -0.25]),
        ([1.5, 3.0], "DT_BFLOAT16", [1.5, 3.0]),
        ([0.1], "DT_DOUBLE", [0.1]),
        ([255], "DT_UINT8", [255]),
        ([2**63], "DT_UINT64", [2**63]),
        (["héllo", {"b64": "AP8="}], "DT_STRING", ["héllo", {"b64": "AP8="}]),
        ([], "DT_FLOAT", []),
        ([[], []], "DT_FLOAT", [[], []]),
    ],
)
def test_tensor_round_trip(value: Any, dtype: str, expected: Any) -> None:
    assert tensor_to_value(to_tensor_proto(value, dtype)) == expected


def test_inferred_dtypes() -> None:
    assert to_tensor_proto([1, 2]).dtype == types_pb2.DT_INT64
    assert to_tensor_proto([1, 2.5]).dtype == types_pb2.DT_FLOAT
    assert to_tensor_proto([True]).dtype == types_pb2.DT_BOOL
    assert to_tensor_proto(["a", {"b64": "YQ=="}]).dtype == types_pb2.DT_STRING


@pytest.mark.parametrize(
    ("value", "dtype", "pattern"),
    [
        ([[1.0], [2.0, 3.0]], "DT_FLOAT", "different lengths"),
        ([1.5], "DT_INT32", "not of expected type DT_INT32"),
        ([True], "DT_FLOAT", "not of expected type DT_FLOAT"),
        ([300], "DT_INT8", "does not fit DT_INT8"),
        ([-1], "DT_UINT64", "does not fit DT_UINT64"),
        ([{"a": 1}], "DT_FLOAT", "unexpected object"),
        ([{"b64": "%%%"}], "DT_STRING", "invalid base64"),
        ([1], "DT_COMPLEX64", "not supported"),
    ],
)
def test_bad_tensor_values(value: Any, dtype: str, pattern: str) -> None:
    with pytest.raises(InvalidInput, match=pattern):
        to_tensor_proto(value, dtype)


def test_short_val_lists_repeat_the_last_value() -> None:
    t = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    t.tensor_shape.dim.add(size=2)
    t.tensor_shape.dim.add(size=2)
    t.float_val.append(7.0)
    assert tensor_to_value(t) == [[7.0, 7.0], [7.0, 7.0]]


def test_bad_tensors_from_the_server() -> None:
    t = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=b"\x00" * 3)
    t.tensor_shape.dim.add(size=1)
    with pytest.raises(OperationFailed, match="content bytes"):
        tensor_to_value(t)
    with pytest.raises(OperationFailed, match="DT_COMPLEX64"):
        tensor_to_value(tensor_pb2.TensorProto(dtype=types_pb2.DT_COMPLEX64))


def test_rows_need_a_shared_batch_dimension() -> None:
    response = predict_pb2.PredictResponse()
    response.outputs["a"].CopyFrom(to_tensor_proto([1.0, 2.0], "DT_FLOAT"))
    response.outputs["b"].CopyFrom(to_tensor_proto(3.0, "DT_FLOAT"))
    with pytest.raises(OperationFailed, match="first \\(batch\\) dimension") as exc_info:
        predict_response_to_json(response, row=True)
    assert exc_info.value.hint is not None
    assert "--inputs" in exc_info.value.hint
    assert predict_response_to_json(response, row=False) == {"outputs": {"a": [1.0, 2.0], "b": 3.0}}


def test_build_predict_request_without_a_signature_needs_names() -> None:
    request, row = build_predict_request("m", {"inputs": {"a": [1]}}, None, label="stable")
    assert not row
    assert request.model_spec.version_label == "stable"
    assert request.inputs["a"].dtype == types_pb2.DT_INT64
    with pytest.raises(InvalidInput, match="exactly one input"):
        build_predict_request("m", {"instances": [1]}, None)


# ---------------------------------------------------------------------------
# TLS


def _make_cert(tmp: Path, cn: str) -> tuple[bytes, bytes]:
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", f"/CN={cn}",
            "-addext", f"subjectAltName=DNS:{cn}",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return key.read_bytes(), cert.read_bytes()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_tls_with_ca_and_server_name_override(tmp_path: Path) -> None:
    key, cert = _make_cert(tmp_path, "tfsops-serving.test")
    creds = grpc.ssl_server_credentials([(key, cert)])
    server = GrpcTestServer(creds)
    server.on["GetModelStatus"] = lambda req, ctx: status_response((1, 30, 0, ""))
    try:
        port = server.endpoint.grpc_port
        good = Endpoint(
            "127.0.0.1", None, port, tls_ca=cert.decode(), tls_server_name="tfsops-serving.test"
        )
        with GrpcServingClient(good) as c:
            assert c.model_status("m", timeout=5) == [VersionStatus(1, AVAILABLE)]
        (tmp_path / "other").mkdir()
        _other_key, other_cert = _make_cert(tmp_path / "other", "x.test")
        wrong = Endpoint(
            "127.0.0.1",
            None,
            port,
            tls_ca=other_cert.decode(),
            tls_server_name="tfsops-serving.test",
        )
        with GrpcServingClient(wrong) as c, pytest.raises(TfsopsError) as exc_info:
            c.model_status("m", timeout=5)
        assert not isinstance(
            exc_info.value, ServerStarting
        )  # a TLS problem is not "still starting"
        assert "TLS" in exc_info.value.message
    finally:
        server.close()


# ---------------------------------------------------------------------------
# the contract shared with FakeServing, over real gRPC

_CODES = {
    "NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "INVALID_ARGUMENT": grpc.StatusCode.INVALID_ARGUMENT,
    "FAILED_PRECONDITION": grpc.StatusCode.FAILED_PRECONDITION,
    "UNKNOWN": grpc.StatusCode.UNKNOWN,
    "UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
}


def fake_backed(server: GrpcTestServer, fake: FakeServing) -> None:
    """Serve ``fake`` through TF Serving's gRPC methods, codes and texts."""
    from google.protobuf import json_format

    def guard(fn: Behaviour) -> Behaviour:
        def behaviour(request: Any, context: Any) -> Any:
            if fake.starting:
                context.abort(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses")
            try:
                return fn(request, context)
            except TfsopsError as exc:
                context.abort(_CODES[exc.details["code"]], exc.details["server_message"])

        return behaviour

    def spec_of(request: Any) -> tuple[str, int | None, str | None]:
        spec = request.model_spec
        version = spec.version.value if spec.HasField("version") else None
        return spec.name, version, spec.version_label or None

    def get_status(request: Any, _context: Any) -> Any:
        response = status_pb2.GetModelStatusResponse()
        for s in fake.model_status(request.model_spec.name):
            e = response.model_version_status.add(
                version=s.version, state=status_pb2.ModelVersionStatus.State.Value(s.state)
            )
            e.status.error_code = protos.load(
                "tensorflow.core.protobuf.error_codes_pb2"
            ).Code.Value(s.error_code)
            e.status.error_message = s.error_message
        return response

    def get_metadata(request: Any, _context: Any) -> Any:
        name, version, label = spec_of(request)
        meta = fake.metadata(name, version=version, label=label)
        sigmap = json_format.ParseDict(
            meta["metadata"]["signature_def"],
            metadata_pb2.SignatureDefMap(),
            ignore_unknown_fields=True,
        )
        return metadata_response(
            name, int(meta["model_spec"]["version"]), dict(sigmap.signature_def)
        )

    def predict(request: Any, _context: Any) -> Any:
        name, version, label = spec_of(request)
        inputs = {k: tensor_to_value(v) for k, v in request.inputs.items()}
        answer = fake.predict(name, {"inputs": inputs}, version=version, label=label)
        response = predict_pb2.PredictResponse()
        response.outputs["y"].CopyFrom(to_tensor_proto(answer["outputs"], "DT_FLOAT"))
        return response

    server.on["GetModelStatus"] = guard(get_status)
    server.on["GetModelMetadata"] = guard(get_metadata)
    server.on["Predict"] = guard(predict)


def test_grpc_client_passes_the_serving_contract(
    server: GrpcTestServer, client: GrpcServingClient
) -> None:
    fake = FakeServing()
    contract_scene(fake)
    fake_backed(server, fake)
    run_serving_contract(fake, client)


def test_reload_errors_match_the_fake(server: GrpcTestServer, client: GrpcServingClient) -> None:
    """The fake's reload errors look like the adapter's translation of the server's."""
    from google.protobuf import text_format

    fake = FakeServing(disk={"/m": [1]})
    text = (
        'model_config_list { config { name: "m" base_path: "/m" model_platform: "tensorflow" } '
        'config { name: "m" base_path: "/m" model_platform: "tensorflow" } }'
    )
    with pytest.raises(OperationFailed) as from_fake:
        fake.reload_config(text, timeout=5)

    def reload(request: Any, context: Any) -> Any:
        try:
            fake.reload_config(text_format.MessageToString(request.config), timeout=5)
        except TfsopsError as exc:
            context.abort(_CODES[exc.details["code"]], exc.details["server_message"])
        return management_pb2.ReloadConfigResponse()

    server.on["HandleReloadConfigRequest"] = reload
    with pytest.raises(OperationFailed) as from_adapter:
        client.reload_config(text, timeout=5)
    assert from_adapter.value.message == from_fake.value.message
    assert from_adapter.value.details["server_message"] == from_fake.value.details["server_message"]
