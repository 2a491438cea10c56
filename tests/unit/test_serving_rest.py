"""RestServingClient against real local HTTP servers (port 0), never a mocked ``requests``.

``ScriptedServer`` answers with upstream's exact shapes and error texts
(reference/tfserving.md §2); ``FakeBackedServer`` serves a ``FakeServing``
through the same routes so the contract shared with the fake is checked.
Also: predict.py's request building and formatting.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from tests.unit.fakes import FakeServing, contract_scene, run_serving_contract
from tfsops.adapters.serving_rest import RestServingClient, model_path
from tfsops.errors import (
    ExitCode,
    InvalidInput,
    ModelNotFound,
    NotReady,
    OperationFailed,
    ServerStarting,
    TfsopsError,
)
from tfsops.ports import AVAILABLE, END, Endpoint, ExpectedModel, VersionStatus
from tfsops.predict import build_body, format_response, read_json_value, response_table

# Upstream bodies, verbatim (http_rest_api_handler_test.cc / g3doc/api_rest.md).
STATUS_OK = """{
 "model_version_status": [
  {
   "version": "123",
   "state": "AVAILABLE",
   "status": {
    "error_code": "OK",
    "error_message": ""
   }
  }
 ]
}"""
METADATA = """{
 "model_spec": {
  "name": "saved_model_half_plus_two_2_versions",
  "signature_name": "",
  "version": "123"
 },
 "metadata": {
  "signature_def": {
   "signature_def": {
    "serving_default": {
     "inputs": {
      "x": {
       "dtype": "DT_FLOAT",
       "tensor_shape": {
        "dim": [ { "size": "-1", "name": "" }, { "size": "1", "name": "" } ],
        "unknown_rank": false
       },
       "name": "x:0"
      }
     },
     "outputs": {
      "y": { "dtype": "DT_FLOAT", "tensor_shape": { "dim": [ { "size": "-1", "name": "" },
             { "size": "1", "name": "" } ], "unknown_rank": false }, "name": "y:0" }
     },
     "method_name": "tensorflow/serving/predict",
     "defaults": {}
    }
   }
  }
 }
}"""
MODEL = "saved_model_half_plus_two_2_versions"

Answer = tuple[int, str | bytes, str]  # status, body, content type
Handler = Callable[["_Handler"], Answer | None]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        self.server.seen.append((self.command, self.path, self.body))
        answer = self.server.respond(self)
        if answer is None:  # drop the connection without a word
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        status, body, content_type = answer
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = _serve
    do_POST = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    respond: Callable[[_Handler], Answer | None]
    seen: list[tuple[str, str, bytes]]


class LocalServer:
    """A real HTTP server on 127.0.0.1:0 in a thread; ``respond`` decides every answer."""

    def __init__(self, respond: Callable[[_Handler], Answer | None]) -> None:
        self.release = threading.Event()  # hung handlers wait on this
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.respond = respond
        self.httpd.seen = []
        self.thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.02},  # shutdown() waits up to one interval
            daemon=True,
        )
        self.thread.start()
        self.endpoint = Endpoint("127.0.0.1", self.httpd.server_address[1], None)

    @property
    def seen(self) -> list[tuple[str, str, bytes]]:
        return self.httpd.seen

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class ScriptedServer(LocalServer):
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler | Answer | None] = {}
        super().__init__(self._respond)

    def answer(
        self, method: str, path: str, status: int, body: Any, ctype: str = "application/json"
    ) -> None:
        text = body if isinstance(body, (str, bytes)) else json.dumps(body)
        self.routes[(method, path)] = (status, text, ctype)

    def hang(self, method: str, path: str) -> None:
        def wait(_h: _Handler) -> Answer:
            self.release.wait(10)
            return (200, "{}", "application/json")

        self.routes[(method, path)] = wait

    def _respond(self, handler: _Handler) -> Answer | None:
        route = self.routes.get((handler.command, handler.path), "missing")
        if route == "missing":
            # libevent's own page for anything unrouted: not JSON
            return (404, "<html><body>Not Found</body></html>", "text/html")
        if callable(route):
            return route(handler)
        return route  # type: ignore[return-value]


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    s = ScriptedServer()
    yield s
    s.close()


@pytest.fixture
def client(server: ScriptedServer) -> Iterator[RestServingClient]:
    with RestServingClient(server.endpoint) as c:
        yield c


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# ---------------------------------------------------------------------------
# happy paths with upstream's shapes


def test_model_status_parses_upstream_answer(
    server: ScriptedServer, client: RestServingClient
) -> None:
    server.answer("GET", f"/v1/models/{MODEL}", 200, STATUS_OK)
    assert client.model_status(MODEL) == [VersionStatus(123, AVAILABLE, "OK", "")]


def test_model_status_keeps_failed_versions_and_sorts(
    server: ScriptedServer, client: RestServingClient
) -> None:
    body = {
        "model_version_status": [
            {
                "version": "3",
                "state": "END",
                "status": {"error_code": "NOT_FOUND", "error_message": "no .pb"},
            },
            {
                "version": "2",
                "state": "LOADING",
                "status": {"error_code": "OK", "error_message": ""},
            },
            {"version": 1, "state": "END", "status": {"error_code": 0, "error_message": ""}},
        ]
    }
    server.answer("GET", "/v1/models/m", 200, body)
    assert client.model_status("m") == [
        VersionStatus(1, END),
        VersionStatus(2, "LOADING"),
        VersionStatus(3, END, "NOT_FOUND", "no .pb"),
    ]


def test_label_version_uses_the_metadata_route(
    server: ScriptedServer, client: RestServingClient
) -> None:
    server.answer("GET", f"/v1/models/{MODEL}/labels/stable/metadata", 200, METADATA)
    assert client.label_version(MODEL, "stable") == 123
    assert server.seen[0][:2] == ("GET", f"/v1/models/{MODEL}/labels/stable/metadata")


def test_metadata_by_version(server: ScriptedServer, client: RestServingClient) -> None:
    server.answer("GET", f"/v1/models/{MODEL}/versions/123/metadata", 200, METADATA)
    meta = client.metadata(MODEL, version=123)
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["inputs"]["x"]["dtype"] == "DT_FLOAT"


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [
        ({}, f"/v1/models/{MODEL}:predict"),
        ({"version": 123}, f"/v1/models/{MODEL}/versions/123:predict"),
        ({"label": "Version_Label"}, f"/v1/models/{MODEL}/labels/Version_Label:predict"),
    ],
)
def test_predict_routes_and_body(
    server: ScriptedServer, client: RestServingClient, kwargs: dict[str, Any], path: str
) -> None:
    server.answer("POST", path, 200, '{ "predictions": [2.5, 3.0, 4.5] }')
    body = {"signature_name": "serving_default", "instances": [1.0, 2.0, 5.0]}
    assert client.predict(MODEL, body, **kwargs) == {"predictions": [2.5, 3.0, 4.5]}
    method, _, sent = server.seen[0]
    assert method == "POST"
    assert json.loads(sent) == body


def test_predict_columnar_and_non_finite_floats(
    server: ScriptedServer, client: RestServingClient
) -> None:
    server.answer("POST", "/v1/models/m:predict", 200, '{ "outputs": [NaN, Infinity, -Infinity] }')
    out = client.predict("m", {"inputs": [float("nan"), 1e308 * 10, 0.0]})
    assert server.seen[0][2] == b'{"inputs": [NaN, Infinity, 0.0]}'  # tokens TF Serving accepts
    assert str(out["outputs"]) == "[nan, inf, -inf]"


def test_names_are_url_escaped(server: ScriptedServer, client: RestServingClient) -> None:
    server.answer("GET", "/v1/models/my%20model%3Av%2F1", 200, STATUS_OK)
    server.answer("GET", "/v1/models/m/labels/a%2Fb/metadata", 200, METADATA)
    assert client.model_status("my model:v/1")[0].version == 123
    assert client.label_version("m", "a/b") == 123
    assert model_path("m", version=0) == "/v1/models/m/versions/0"


def test_version_and_label_together_are_refused(client: RestServingClient) -> None:
    with pytest.raises(InvalidInput):
        client.predict("m", {"instances": [1]}, version=1, label="stable")
    with pytest.raises(InvalidInput):
        client.metadata("m", version=-1)


def test_environment_proxy_is_ignored(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{closed_port()}")
    server.answer("GET", "/v1/models/m", 200, STATUS_OK)
    with RestServingClient(server.endpoint) as c:
        assert c.model_status("m")[0].state == AVAILABLE


# ---------------------------------------------------------------------------
# upstream error texts


def test_unknown_model_is_model_not_found(
    server: ScriptedServer, client: RestServingClient
) -> None:
    server.answer(
        "GET", "/v1/models/ghost", 404, '{ "error": "Could not find any versions of model ghost" }'
    )
    with pytest.raises(ModelNotFound) as exc_info:
        client.model_status("ghost")
    err = exc_info.value
    assert err.details["server_message"] == "Could not find any versions of model ghost"
    assert err.details["http_status"] == 404
    assert "Could not find any versions of model ghost" in err.message


def test_servable_not_found_on_predict(server: ScriptedServer, client: RestServingClient) -> None:
    server.answer(
        "POST",
        "/v1/models/half:predict",
        404,
        '{ "error": "Servable not found for request: Latest(half)" }',
    )
    with pytest.raises(ModelNotFound) as exc_info:
        client.predict("half", {"instances": [1.0]})
    assert exc_info.value.hint is not None
    assert "AVAILABLE" in exc_info.value.hint


def test_unknown_label(server: ScriptedServer, client: RestServingClient) -> None:
    server.answer(
        "GET",
        "/v1/models/m/labels/canary/metadata",
        400,
        {"error": "Unrecognized servable version label: canary"},
    )
    with pytest.raises(ModelNotFound) as exc_info:
        client.label_version("m", "canary")
    err = exc_info.value
    assert (
        err.message
        == "model 'm' has no version label 'canary': Unrecognized servable version label: canary"
    )
    assert err.hint is not None
    assert "version_labels" in err.hint


def test_label_map_not_initialised(server: ScriptedServer, client: RestServingClient) -> None:
    server.answer(
        "GET", "/v1/models/m/labels/s/metadata", 503, {"error": "Model labels does not init yet.s"}
    )
    with pytest.raises(NotReady):
        client.label_version("m", "s")


def test_other_server_errors_carry_the_servers_text(
    server: ScriptedServer, client: RestServingClient
) -> None:
    text = 'Serving signature name: "nope" not found in signature def'
    server.answer("POST", "/v1/models/m:predict", 400, {"error": text})
    with pytest.raises(OperationFailed) as exc_info:
        client.predict("m", {"signature_name": "nope", "instances": [1.0]})
    err = exc_info.value
    assert err.exit_code == ExitCode.FAILED
    assert err.message == f"predict on model 'm' failed (HTTP 400): {text}"
    assert err.details["server_message"] == text


# ---------------------------------------------------------------------------
# not TF Serving, not answering


@pytest.mark.parametrize(
    ("status", "body", "ctype"),
    [
        (200, "<html>hello</html>", "text/html"),  # a web page
        (200, '{"foo": 1}', "application/json"),  # JSON, wrong shape
        (
            200,
            '{"model_version_status": [{"version": "x", "state": "AVAILABLE"}]}',
            "application/json",
        ),
        (200, '{"model_version_status": [{"version": "1", "state": "READY"}]}', "application/json"),
        (200, "", "application/json"),  # empty
        (200, b"\xff\xfe\x00garbage", "application/octet-stream"),
        (500, "Internal Server Error", "text/plain"),  # an error that is not TF Serving's JSON
        (502, '{"message": "bad gateway"}', "application/json"),
    ],
)
def test_foreign_answers_are_reported_not_raised_raw(
    server: ScriptedServer, client: RestServingClient, status: int, body: str | bytes, ctype: str
) -> None:
    server.answer("GET", "/v1/models/m", status, body, ctype)
    with pytest.raises(OperationFailed) as exc_info:
        client.model_status("m")
    assert "is not TF Serving's" in exc_info.value.message


def test_unrouted_path_gives_libevent_html(
    server: ScriptedServer, client: RestServingClient
) -> None:
    with pytest.raises(OperationFailed, match=r"\(HTTP 404\) is not TF Serving's"):
        client.metadata("m")


def test_wrong_shapes_for_labels_and_predict(
    server: ScriptedServer, client: RestServingClient
) -> None:
    server.answer("GET", "/v1/models/m/labels/s/metadata", 200, {"model_spec": {"version": None}})
    server.answer("POST", "/v1/models/m:predict", 200, {"result": [1]})
    with pytest.raises(OperationFailed, match="not TF Serving's"):
        client.label_version("m", "s")
    with pytest.raises(OperationFailed, match="not TF Serving's"):
        client.predict("m", {"instances": [1]})


def test_connection_refused_means_starting() -> None:
    endpoint = Endpoint("127.0.0.1", closed_port(), None)
    with RestServingClient(endpoint) as c, pytest.raises(ServerStarting) as exc_info:
        c.model_status("m", timeout=2)
    assert exc_info.value.exit_code == ExitCode.NOT_READY
    assert exc_info.value.hint is not None


def test_dropped_connection_means_starting(
    server: ScriptedServer, client: RestServingClient
) -> None:
    server.routes[("GET", "/v1/models/m")] = lambda _h: None
    with pytest.raises(ServerStarting):
        client.model_status("m", timeout=2)


def test_server_that_never_answers_times_out(
    server: ScriptedServer, client: RestServingClient
) -> None:
    server.hang("GET", "/v1/models/m")
    started = time.monotonic()
    with pytest.raises(NotReady, match=r"did not answer within 0.3s"):
        client.model_status("m", timeout=0.3)
    assert time.monotonic() - started < 2


def test_grpc_port_by_mistake_is_not_starting() -> None:
    from tests.unit.test_serving_grpc import GrpcTestServer

    grpc_server = GrpcTestServer()
    try:
        endpoint = Endpoint("127.0.0.1", grpc_server.endpoint.grpc_port, None)
        with RestServingClient(endpoint) as c, pytest.raises(OperationFailed) as exc_info:
            c.model_status("m", timeout=3)
        assert "not HTTP/1.x" in exc_info.value.message
    finally:
        grpc_server.close()


def test_unresolvable_host_is_not_starting(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dns(*_a: Any, **_k: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)  # no real DNS in unit tests
    endpoint = Endpoint("tfsops-server.invalid", 8501, None)
    with RestServingClient(endpoint) as c, pytest.raises(OperationFailed, match="cannot resolve"):
        c.model_status("m", timeout=2)


# ---------------------------------------------------------------------------
# the contract shared with FakeServing, over real HTTP

_CODE_TO_HTTP = {
    "NOT_FOUND": 404,
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "UNAVAILABLE": 503,
    "UNKNOWN": 500,
}
_GET = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?(/metadata)?$")
_POST = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?:predict$")


def fake_backed(fake: FakeServing) -> Callable[[_Handler], Answer | None]:
    """Serve ``fake`` with TF Serving's REST routes, shapes and error codes."""

    def respond(h: _Handler) -> Answer | None:
        if fake.starting:
            return None  # ports closed during the initial load
        match = (_GET if h.command == "GET" else _POST).match(h.path)
        if match is None:
            return (
                400,
                json.dumps({"error": f"Malformed request: {h.command} {h.path}"}),
                "application/json",
            )
        name = unquote(match.group(1))
        version = int(match.group(2)) if match.group(2) else None
        label = unquote(match.group(3)) if match.group(3) else None
        try:
            if h.command == "POST":
                payload: Any = fake.predict(name, json.loads(h.body), version=version, label=label)
            elif match.group(4):
                payload = fake.metadata(name, version=version, label=label)
            else:
                statuses = fake.model_status(name)  # labels in the status URL are ignored upstream
                payload = {
                    "model_version_status": [
                        {
                            "version": str(s.version),
                            "state": s.state,
                            "status": {
                                "error_code": s.error_code,
                                "error_message": s.error_message,
                            },
                        }
                        for s in statuses
                        if version is None or s.version == version
                    ]
                }
        except TfsopsError as exc:
            code = _CODE_TO_HTTP[exc.details["code"]]
            return (code, json.dumps({"error": exc.details["server_message"]}), "application/json")
        return (200, json.dumps(payload, indent=1), "application/json")

    return respond


def test_rest_client_passes_the_serving_contract() -> None:
    fake = FakeServing()
    contract_scene(fake)
    server = LocalServer(fake_backed(fake))
    try:
        with RestServingClient(server.endpoint) as c:
            run_serving_contract(fake, c)
    finally:
        server.close()


def test_health_over_rest_checks_models_concurrently() -> None:
    fake = FakeServing()
    for i in range(6):
        fake.add_model(f"m{i}", [1])
    inner = fake_backed(fake)

    def slow(h: _Handler) -> Answer | None:
        time.sleep(0.2)
        return inner(h)

    from tfsops.health import check_health

    server = LocalServer(slow)
    try:
        with RestServingClient(server.endpoint) as c:
            started = time.monotonic()
            report = check_health(c, [ExpectedModel(f"m{i}", frozenset({1})) for i in range(6)])
            assert report.ok
            assert time.monotonic() - started < 0.2 * 3
    finally:
        server.close()


# ---------------------------------------------------------------------------
# predict.py: options -> body, answer -> table


def test_build_body_row_and_columnar() -> None:
    assert build_body(instances="[1.0, 2.0, 5.0]") == {"instances": [1.0, 2.0, 5.0]}
    assert build_body(inputs='{"x": [[1.0]]}', signature="s") == {
        "signature_name": "s",
        "inputs": {"x": [[1.0]]},
    }
    assert build_body(inputs="3.5") == {"inputs": 3.5}


def test_build_body_from_file_and_whole_documents(tmp_path: Path) -> None:
    doc = tmp_path / "req.json"
    doc.write_text('{"signature_name": "tensorflow/serving/regress", "instances": [{"x": 1.0}]}')
    assert build_body(instances=f"@{doc}") == {
        "signature_name": "tensorflow/serving/regress",
        "instances": [{"x": 1.0}],
    }
    assert build_body(instances=f"@{doc}", signature="other")["signature_name"] == "other"
    with pytest.raises(InvalidInput, match="use --instances"):
        build_body(inputs=f"@{doc}")


def test_build_body_from_stdin() -> None:
    import io

    assert build_body(instances="@-", stdin=io.StringIO("[1]")) == {"instances": [1]}


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({}, "exactly one of --instances"),
        ({"instances": "[1]", "inputs": "[1]"}, "exactly one of --instances"),
        ({"instances": "{}"}, "non-empty JSON list"),
        ({"instances": "[]"}, "non-empty JSON list"),
        ({"inputs": "null"}, "null is not a tensor"),
        ({"instances": "@"}, "must be followed by a file name"),
        ({"instances": "@/no/such/file.json"}, "cannot read /no/such/file.json"),
        ({"instances": "  "}, "empty"),
        ({"instances": "[1.0,", "signature": "s"}, r"line 1 column 6 \(char 5\)"),
        ({"inputs": "[1]", "signature": ""}, "--signature must not be empty"),
    ],
)
def test_build_body_errors(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(InvalidInput, match=pattern):
        build_body(**kwargs)


def test_json_error_points_at_the_position() -> None:
    with pytest.raises(InvalidInput) as exc_info:
        read_json_value('{"x": [1, 2,, 3]}', option="--inputs")
    assert exc_info.value.message == (
        "--inputs: not valid JSON: Expecting value at line 1 column 13 (char 12)\n"
        '  {"x": [1, 2,, 3]}\n'
        "              ^"
    )


def test_response_tables() -> None:
    assert response_table({"predictions": [2.5, 3.0]}) == (
        ["#", "prediction"],
        [["0", "2.5"], ["1", "3.0"]],
    )
    multi = {
        "predictions": [{"scores": [0.1, 0.9], "label": "cat"}, {"scores": [1, 0], "label": "dog"}]
    }
    assert response_table(multi) == (
        ["#", "label", "scores"],
        [["0", "cat", "[0.1,0.9]"], ["1", "dog", "[1,0]"]],
    )
    assert response_table({"outputs": {"a": [1, 2], "b": [3, 4]}}) == (
        ["#", "a", "b"],
        [["0", "1", "3"], ["1", "2", "4"]],
    )
    assert response_table({"outputs": {"a": 1, "b": [3, 4]}}) == (
        ["output", "value"],
        [["a", "1"], ["b", "[3,4]"]],
    )
    assert response_table({"outputs": 7.0}) == (["output", "value"], [["output", "7.0"]])
    assert response_table({"results": [[["", 7]]]}) == (
        ["key", "value"],
        [["results", '[[["",7]]]']],
    )


def test_format_response_is_aligned_and_cuts_long_cells() -> None:
    text = format_response({"predictions": [[0.5] * 40, [1.5]]})
    lines = text.splitlines()
    assert lines[0] == "#  prediction"
    assert lines[1].startswith("0  [0.5,0.5,")
    assert lines[1].endswith("...")
    assert len(lines[1]) == 3 + 60
    assert lines[2] == "1  [1.5]"
    assert format_response({"predictions": []}) == "(no predictions: the batch was empty)"
    assert format_response({"predictions": [float("nan")]}).splitlines()[1] == "0  nan"
