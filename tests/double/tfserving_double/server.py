"""``tensorflow_model_server``: main.cc + server.cc start-up, then serve until a signal.

Start-up order is upstream's: validate flags, build the config, load every
configured model (ports stay closed meanwhile: connection refused means
"still starting"), then start gRPC, then REST. Any start-up error prints
``Failed to start server. Error: <status>`` on stdout and exits 255.
SIGTERM/SIGINT stop the server at once with status 0 (upstream ignores
SIGTERM; the double does not, so ``docker stop`` is quick).
"""

from __future__ import annotations

import importlib.metadata
import os
import signal
import sys
import threading
import time
from typing import Any

from . import __version__, config, flags, log, metrics, protos
from .status import ServingError

DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"


def _tf_version() -> str:
    for dist in ("tensorflow-cpu", "tensorflow"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


class Server:
    def __init__(self, options: flags.Options) -> None:
        self.o = options
        self.stop = threading.Event()
        self.core: Any = None
        self.grpc_server: Any = None
        self.rest_server: Any = None
        self._poller: threading.Thread | None = None

    # -- configuration -------------------------------------------------------

    def _model_server_config(self) -> Any:
        pb2 = protos.model_server_config_pb2()
        if not self.o.model_config_file:
            log.info(
                log.SERVER,
                "Building single TensorFlow model file config:  model_name: "
                f"{self.o.model_name} model_base_path: {self.o.model_base_path}",
            )
            cfg = pb2.ModelServerConfig()
            model = cfg.model_config_list.config.add()
            model.name = self.o.model_name
            model.base_path = self.o.model_base_path
            model.model_platform = "tensorflow"
            return cfg
        return config.parse_text(self.o.model_config_file, pb2.ModelServerConfig())

    def _batching(self) -> Any:
        extra = protos.extra_protos()
        if self.o.enable_batching:
            params = extra.BatchingParameters()
            if self.o.batching_parameters_file:
                config.parse_text(self.o.batching_parameters_file, params)
            else:
                params.thread_pool_name.value = "model_server_batch_threads"
            return params
        if self.o.batching_parameters_file:
            raise ServingError(
                "INVALID_ARGUMENT",
                "server_options.batching_parameters_file is set without setting "
                "server_options.enable_batching to true.",
            )
        return None

    def _session_config(self) -> Any:
        from tensorflow.core.protobuf import config_pb2

        cfg = config_pb2.ConfigProto()
        if self.o.tensorflow_session_config_file:
            config.parse_text(self.o.tensorflow_session_config_file, cfg)
        cfg.gpu_options.per_process_gpu_memory_fraction = self.o.per_process_gpu_memory_fraction
        intra, inter = (
            self.o.tensorflow_intra_op_parallelism,
            self.o.tensorflow_inter_op_parallelism,
        )
        if intra > 0 or inter > 0:
            cfg.intra_op_parallelism_threads = intra
            cfg.inter_op_parallelism_threads = inter
        else:
            cfg.intra_op_parallelism_threads = self.o.tensorflow_session_parallelism
            cfg.inter_op_parallelism_threads = self.o.tensorflow_session_parallelism
        return cfg

    # -- start-up ------------------------------------------------------------

    def build_and_start(self) -> None:
        o = self.o
        if o.port == 0 and not o.grpc_socket_path:
            raise ServingError("INVALID_ARGUMENT", "server_options.grpc_port is not set.")
        if o.use_alts_credentials and o.ssl_config_file:
            raise ServingError(
                "INVALID_ARGUMENT",
                "Either use_alts_credentials must be false or ssl_config_file must be empty.",
            )
        if not o.model_base_path and not o.model_config_file:
            raise ServingError(
                "INVALID_ARGUMENT",
                "Both server_options.model_base_path and server_options.model_config_file "
                "are empty!",
            )
        model_config = self._model_server_config()
        if o.platform_config_file:
            log.warning(
                log.SERVER, "--platform_config_file is accepted but ignored by the test double"
            )
            config.read_text(o.platform_config_file)
        batching = self._batching()
        if (
            o.tensorflow_intra_op_parallelism > 0
            and o.tensorflow_inter_op_parallelism > 0
            and o.tensorflow_session_parallelism > 0
        ):
            raise ServingError(
                "INVALID_ARGUMENT",
                "Either configure server_options.tensorflow_session_parallelism or "
                "(server_options.tensorflow_intra_op_parallelism, "
                "server_options.tensorflow_inter_op_parallelism) separately. "
                "You cannot configure all.",
            )
        # The expensive part: the real TensorFlow runtime, then the models.
        from . import servable as servable_mod
        from .core import ServerCore
        from .tflite import TfLiteServable, tflite_model_found

        servable_mod.tf()
        from .oplibs import load_op_libraries

        load_op_libraries()
        settings = servable_mod.LoadSettings(
            tags=tuple(o.saved_model_tags.split(",")),
            session_config=self._session_config(),
            enable_warmup=o.enable_model_warmup,
            warmup_iterations=max(o.num_request_iterations_for_warmup, 1),
            batching=batching,
            method_name_check=o.enable_signature_method_name_check,
            tensor_content=o.enable_serialization_as_tensor_content,
        )

        def load(name: str, version: int, path: str) -> Any:
            s: Any
            if o.prefer_tflite_model and tflite_model_found(path):
                s = TfLiteServable(name, version, path, settings)
            else:
                s = servable_mod.Servable(name, version, path, settings)
            start = time.monotonic()
            try:
                s.load()
            except ServingError:
                metrics.LOAD_ATTEMPT_COUNT.inc(path, "fail")
                raise
            metrics.LOAD_ATTEMPT_COUNT.inc(path, "success")
            metrics.LOAD_LATENCY.inc(path, by=int((time.monotonic() - start) * 1e6))
            return s

        self.core = ServerCore(
            load,
            file_system_poll_wait_seconds=o.file_system_poll_wait_seconds,
            max_num_load_retries=o.max_num_load_retries,
            load_retry_interval_micros=o.load_retry_interval_micros,
            allow_version_labels_for_unavailable_models=o.allow_version_labels_for_unavailable_models,
            load_threads=4 * flags.num_cpus(),
            stop=self.stop,
        )
        status = self.core.reload_config(model_config)
        if not status.ok:
            raise ServingError.of(status)
        if o.model_config_file_poll_wait_seconds > 0 and o.model_config_file:
            self._poller = threading.Thread(
                target=self._poll_config, name="config-poll", daemon=True
            )
            self._poller.start()
        self._start_grpc()
        self._start_rest()

    def _poll_config(self) -> None:
        """``Server::PollFilesystemAndReloadConfig`` every N seconds."""
        pb2 = protos.model_server_config_pb2()
        while not self.stop.wait(self.o.model_config_file_poll_wait_seconds):
            try:
                cfg = config.parse_text(self.o.model_config_file, pb2.ModelServerConfig())
            except ServingError as exc:
                log.error(
                    log.SERVER, f"Failed to read ModelServerConfig file: {exc.status.message}"
                )
                continue
            status = self.core.reload_config(cfg)
            if not status.ok:
                log.error(
                    log.SERVER,
                    f"PollFilesystemAndReloadConfig failed to ReloadConfig: {status.message}",
                )

    def _ssl_credentials(self) -> Any:
        import grpc

        extra = protos.extra_protos()
        ssl = extra.SSLConfig()
        try:
            config.parse_text(self.o.ssl_config_file, ssl)
        except ServingError as exc:
            # Upstream parses it with TF_CHECK_OK: a bad file aborts the process.
            log.error(
                log.SERVER,
                "Check failed: ::tensorflow::OkStatus() == "
                f"(ParseProtoTextFile(file, &ssl_config)) ({exc.status})",
            )
            sys.stderr.flush()
            os._exit(134)
        root = ssl.custom_ca.encode() if ssl.custom_ca else None
        return grpc.ssl_server_credentials(
            [(ssl.server_key.encode(), ssl.server_cert.encode())],
            root_certificates=root,
            require_client_auth=bool(ssl.client_verify),
        )

    def _start_grpc(self) -> None:
        from . import grpc_api

        o = self.o
        server = grpc_api.build_server(
            self.core,
            o.grpc_max_threads,
            o.grpc_channel_arguments,
            o.enable_serialization_as_tensor_content,
            health_stop=self.stop if o.enable_grpc_healthcheck_service else None,
        )
        creds = self._ssl_credentials() if o.ssl_config_file else None
        address = f"0.0.0.0:{o.port}"
        targets = [address] if o.port != 0 else []
        if o.grpc_socket_path:
            targets.append(f"unix:{o.grpc_socket_path}")
        for target in targets:
            try:
                bound = (
                    server.add_secure_port(target, creds)
                    if creds
                    else server.add_insecure_port(target)
                )
            except RuntimeError:
                bound = 0
            if not bound and not target.startswith("unix:"):
                raise ServingError("INVALID_ARGUMENT", "Failed to BuildAndStart gRPC server")
        server.start()
        self.grpc_server = server
        log.info(log.SERVER, f"Running gRPC ModelServer at {address} ...")
        if o.grpc_socket_path:
            log.info(
                log.SERVER, f"Running gRPC ModelServer at UNIX socket {o.grpc_socket_path} ..."
            )

    def _start_rest(self) -> None:
        o = self.o
        if o.rest_api_port == 0:
            return
        if o.rest_api_port == o.port:
            log.error(
                log.SERVER,
                "server_options.http_port cannot be same as grpc_port. Please use a different port "
                "for HTTP/REST API. Skipped exporting HTTP/REST API.",
            )
            return
        prometheus_path = None
        if o.monitoring_config_file:
            monitoring = protos.extra_protos().MonitoringConfig()
            config.parse_text(o.monitoring_config_file, monitoring)
            if monitoring.prometheus_config.enable:
                prometheus_path = monitoring.prometheus_config.path or DEFAULT_PROMETHEUS_PATH
        from .rest import RestApi, RestServer

        address = f"localhost:{o.rest_api_port}"
        try:
            server = RestServer(
                RestApi(self.core, o.rest_api_timeout_in_ms),
                o.rest_api_port,
                prometheus_path,
                o.rest_api_enable_cors_support,
            )
        except OSError as exc:
            log.error(log.SERVER, f"Failed to start HTTP Server at {address} ({exc.strerror})")
            return
        server.start()
        self.rest_server = server
        log.info(log.SERVER, f"Exporting HTTP/REST API at:{address} ...")

    def shutdown(self) -> None:
        self.stop.set()
        if self.grpc_server is not None:
            self.grpc_server.stop(0)
        if self.rest_server is not None:
            self.rest_server.stop()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    program = argv[0] if argv else "tensorflow_model_server"
    result = flags.parse(argv, log_error=lambda m: log.error(log.FLAGS, m))
    usage = flags.usage(program)
    if not result.ok:
        _out(usage)
        return 255
    if result.options.version:
        _out(f"TensorFlow ModelServer: {__version__}\nTensorFlow Library: {_tf_version()}\n")
        return 0
    if result.unknown:
        _out(f"unknown argument: {result.unknown[0]}\n{usage}")

    server = Server(result.options)

    def on_signal(signum: int, _frame: Any) -> None:
        log.info(log.SERVER, f"Received signal {signum}; shutting down.")
        try:
            server.shutdown()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)  # skip interpreter teardown (TF threads can make it slow)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server.build_and_start()
    except ServingError as exc:
        _out(f"Failed to start server. Error: {exc.status}\n")
        sys.stderr.flush()
        os._exit(255)
    while not server.stop.wait(3600):
        pass
    return 0
