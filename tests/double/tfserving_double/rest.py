"""HTTP/REST API (``http_rest_api_handler.cc`` on top of ``http_server.cc``).

``/v1/...`` answers JSON with the upstream status mapping; other paths get
the web server's plain HTML 404, except the Prometheus page when
monitoring is configured.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format

from . import jsontensor, metrics, protos, routing
from .core import STATE_NUMBERS, ServerCore
from .servable import DEFAULT_SIGNATURE
from .status import ServingError, invalid_argument

NOT_FOUND_HTML = (
    "<HTML><HEAD>\n<TITLE>404 Not Found</TITLE>\n</HEAD><BODY>\n"
    "<H1>Not Found</H1>\n</BODY></HTML>\n"
)


def status_response(core: ServerCore, name: str, version: int | None) -> Any:
    """``GetModelStatusImpl::GetModelStatusWithModelSpec`` as a proto."""
    get_model_status_pb2 = protos.load("tensorflow_serving.apis.get_model_status_pb2")
    response = get_model_status_pb2.GetModelStatusResponse()
    for v, vs in core.model_status(name, version):
        entry = response.model_version_status.add()
        entry.version = v
        entry.state = STATE_NUMBERS[vs.state]
        entry.status.error_code = vs.status.code_number
        entry.status.error_message = vs.status.message
    return response


def metadata_response(core: ServerCore, name: str, version: int | None, label: str | None) -> Any:
    """``GetModelMetadataImpl::GetModelMetadata`` for the signature_def field."""
    metadata_pb2 = protos.load("tensorflow_serving.apis.get_model_metadata_pb2")
    response = metadata_pb2.GetModelMetadataResponse()
    with core.servable(name, version, label) as servable:
        response.model_spec.name = name
        response.model_spec.version.value = servable.version
        sigmap = metadata_pb2.SignatureDefMap()
        for key, sig in servable.signatures.items():
            sigmap.signature_def[key].CopyFrom(sig)
    response.metadata["signature_def"].Pack(sigmap)
    return response, sigmap


def _to_json(message: Any, preserve: bool) -> str:
    return json_format.MessageToJson(
        message,
        indent=1,
        preserving_proto_field_name=preserve,
        always_print_fields_with_no_presence=True,
    )


def make_examples(
    context: dict[str, jsontensor.Feature] | None, examples: list[dict[str, jsontensor.Feature]]
) -> list[bytes]:
    example_pb2 = protos.load("tensorflow.core.example.example_pb2")

    def build(features: Mapping[str, jsontensor.Feature]) -> bytes:
        ex = example_pb2.Example()
        for name, feat in features.items():
            f = ex.features.feature[name]
            if feat.kind == "bytes":
                f.bytes_list.value.extend(feat.values or [])
            elif feat.kind == "float":
                f.float_list.value.extend(feat.values or [])
            elif feat.kind == "int64":
                f.int64_list.value.extend(feat.values or [])
        return bytes(ex.SerializeToString())

    prefix = build(context) if context is not None else b""
    return [prefix + build(e) for e in examples]


class RestApi:
    """The request processor, separate from the HTTP plumbing so it is easy to test."""

    def __init__(self, core: ServerCore, timeout_ms: int) -> None:
        self.core = core
        self.timeout_ms = max(timeout_ms, 0)

    def process(self, method: str, path: str, body: bytes) -> tuple[int, str]:
        try:
            return 200, self._process(method, path, body)
        except ServingError as exc:
            return exc.status.http_status, routing.error_body(exc.status.message)

    def _process(self, method: str, path: str, body: bytes) -> str:
        route = routing.route(method, path)
        if route.kind == "status":
            return _to_json(status_response(self.core, route.model, route.version), preserve=False)
        if route.kind == "metadata":
            response, sigmap = metadata_response(self.core, route.model, route.version, route.label)
            # http_rest_api_util.cc::ToJsonString concatenates two printed messages.
            spec = _to_json(response.model_spec, preserve=True)
            sigs = _to_json(sigmap, preserve=True)
            return '{\n"model_spec":' + spec + ',\n"metadata": {"signature_def": ' + sigs + "}\n}\n"
        start = time.monotonic()
        code = "OK"
        try:
            if route.kind == "predict":
                return self._predict(route, body)
            return self._classify_regress(route, body)
        except ServingError as exc:
            code = exc.status.code
            raise
        finally:
            metrics.REQUEST_COUNT.inc(route.model, code)
            metrics.REQUEST_LATENCY.observe(
                (time.monotonic() - start) * 1e6, route.model, route.kind, "REST"
            )

    def _predict(self, route: routing.Route, body: bytes) -> str:
        doc = jsontensor.parse_json(body)
        signame = jsontensor.signature_name(doc)
        with self.core.servable(route.model, route.version, route.label) as servable:
            name = signame or DEFAULT_SIGNATURE
            sig = servable.signatures.get(name)
            if sig is None:
                raise invalid_argument(
                    f'Serving signature name: "{name}" not found in signature def'
                )
            infos = {
                alias: jsontensor.InputInfo(int(info.dtype)) for alias, info in sig.inputs.items()
            }
            fmt, arrays = jsontensor.predict_inputs(doc, infos, signame)
            start = time.monotonic()
            _, outputs = servable.predict(signame, arrays, (), self.timeout_ms)
            metrics.RUNTIME_LATENCY.observe(
                (time.monotonic() - start) * 1e6, route.model, "Predict", "TF1"
            )
        return jsontensor.predict_response(fmt, outputs)

    def _classify_regress(self, route: routing.Route, body: bytes) -> str:
        doc = jsontensor.parse_json(body)
        signame = jsontensor.signature_name(doc)
        context, examples = jsontensor.classify_regress_inputs(doc)
        serialized = make_examples(context, examples)
        with self.core.servable(route.model, route.version, route.label) as servable:
            if route.kind == "classify":
                _, results = servable.classify(signame, serialized, self.timeout_ms)
                return jsontensor.classify_response(results)
            _, values = servable.regress(signame, serialized, self.timeout_ms)
            return jsontensor.regress_response(values)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class _Http4Server(_HttpServer):
    address_family = socket.AF_INET


def _make_handler(
    api: RestApi, prometheus_path: str | None, cors: bool
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # One segment per response, sent at once: with Nagle on and unbuffered
        # writes, headers and body went out as two segments and each request on
        # a kept-alive connection waited for the client's delayed ACK (~40 ms).
        disable_nagle_algorithm = True
        wbufsize = -1  # handle_one_request flushes after each response

        def log_message(self, format: str, *args: Any) -> None:
            pass  # upstream does not log requests

        def _body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""

        def _send(
            self, code: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
        ) -> None:
            self.send_response_only(code)
            self.send_header("Date", self.date_time_string())
            self.send_header("Content-Type", content_type)
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _handle(self) -> None:
            body = self._body()
            path = self.path.split("?", 1)[0]
            if prometheus_path is not None and path == prometheus_path:
                self._send(200, metrics.render().encode(), "text/plain; charset=utf-8")
                return
            if not routing.is_api_path(path):
                self._send(404, NOT_FOUND_HTML.encode(), "text/html")
                return
            headers = {}
            if cors:
                headers = {
                    "Access-Control-Allow-Origin": "*",
                    "Access-Control-Allow-Methods": "POST, GET",
                    "Access-Control-Allow-Headers": "Content-Type",
                }
                if self.command == "OPTIONS":
                    origin = self.headers.get("Origin", "")
                    if not origin.startswith(("http://", "https://")):
                        self._send(
                            400,
                            routing.error_body(
                                "Origin header is missing in CORS preflight"
                            ).encode(),
                            "application/json",
                        )
                        return
                    self._send(204, b"", "application/json", headers)
                    return
            code, text = api.process(self.command, path, body)
            self._send(code, text.encode("utf-8", "surrogateescape"), "application/json", headers)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _handle

    return Handler


class RestServer:
    def __init__(
        self,
        api: RestApi,
        port: int,
        prometheus_path: str | None,
        cors: bool,
    ) -> None:
        handler = _make_handler(api, prometheus_path, cors)
        server: _HttpServer
        try:
            server = _HttpServer(("::", port), handler)
        except OSError:
            server = _Http4Server(("0.0.0.0", port), handler)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="rest", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


__all__ = ["RestApi", "RestServer"]
