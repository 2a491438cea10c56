"""gRPC PredictionService and ModelService from the official generated stubs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc

from . import log, metrics, protos
from .core import ServerCore
from .rest import metadata_response, status_response
from .servable import (
    CLASSIFY_METHOD,
    DEFAULT_SIGNATURE,
    REGRESS_METHOD,
    ndarray_from_proto,
    ndarray_to_proto,
    serialized_examples,
)
from .status import ServingError, invalid_argument

ERROR_MESSAGE_LIMIT = 1024


def _abort(context: grpc.ServicerContext, exc: ServingError) -> None:
    message = exc.status.message
    if len(message) > ERROR_MESSAGE_LIMIT:
        # grpc_status_util.cc::ToGRPCStatus
        message = message[:ERROR_MESSAGE_LIMIT] + "...TRUNCATED"
    context.abort(grpc.StatusCode[exc.status.code], message)


def _spec(request: Any) -> tuple[str, int | None, str | None]:
    if not request.HasField("model_spec"):
        raise invalid_argument("Missing ModelSpec")
    spec = request.model_spec
    version = spec.version.value if spec.HasField("version") else None
    label = spec.version_label if spec.WhichOneof("version_choice") == "version_label" else None
    return spec.name, version, label


def _multi_inference_tasks(request: Any) -> list[Any]:
    """``multi_inference.cc``: one model, distinct signatures, classify/regress only."""
    tasks = list(request.tasks)
    if not tasks:
        raise invalid_argument("Expected at least one task")
    model_name = ""
    signatures: set[str] = set()
    for task in tasks:
        if not task.model_spec.name:
            raise invalid_argument("Found ModelSpec with an empty model name.")
        if not model_name:
            model_name = task.model_spec.name
        elif task.model_spec.name != model_name:
            raise invalid_argument(
                "All ModelSpecs in a MultiInferenceRequest must access the same model name."
            )
        signature = task.model_spec.signature_name or DEFAULT_SIGNATURE
        if signature in signatures:
            raise invalid_argument(f"Duplicate evaluation of signature: {signature}")
        signatures.add(signature)
        if task.method_name not in (CLASSIFY_METHOD, REGRESS_METHOD):
            raise ServingError(
                "UNIMPLEMENTED", f"Unsupported signature method_name: {task.method_name}"
            )
    return tasks


def multi_inference(
    servable: Any, name: str, tasks: list[Any], input_proto: Any, inference_pb2: Any
) -> Any:
    """Every task over the same examples; results in task order.

    Each signature runs on its own here (upstream feeds one input tensor and
    fetches every output at once); upstream's suite sends a TF2 export whose
    signatures have distinct input tensors, which current servers accept.
    """
    for task in tasks:
        signature = task.model_spec.signature_name or DEFAULT_SIGNATURE
        if signature not in servable.signatures:
            raise invalid_argument(f"Requested signature not found in model graph: {signature}")
    examples = serialized_examples(input_proto)
    response = inference_pb2.MultiInferenceResponse()
    for task in tasks:
        result = response.results.add()
        if task.method_name == CLASSIFY_METHOD:
            signame, rows = servable.classify(task.model_spec.signature_name, examples)
            for row in rows:
                classifications = result.classification_result.classifications.add()
                for cls_label, score in row:
                    classifications.classes.add(
                        label=cls_label.decode("utf-8", "replace"), score=score
                    )
        else:
            signame, values = servable.regress(task.model_spec.signature_name, examples)
            for value in values:
                result.regression_result.regressions.add(value=value)
        result.model_spec.name = name
        result.model_spec.version.value = servable.version
        result.model_spec.signature_name = signame
    return response


class _Base:
    def __init__(self, core: ServerCore) -> None:
        self.core = core

    @contextmanager
    def _rpc(self, context: grpc.ServicerContext, model: str, api: str) -> Iterator[None]:
        start = time.monotonic()
        code = "OK"
        try:
            yield
        except ServingError as exc:
            code = exc.status.code
            _abort(context, exc)
        finally:
            if api:
                metrics.REQUEST_COUNT.inc(model, code)
                metrics.REQUEST_LATENCY.observe(
                    (time.monotonic() - start) * 1e6, model, api, "GRPC"
                )


def build_servicers(core: ServerCore, tensor_content: bool) -> tuple[Any, Any]:
    prediction_service_pb2_grpc = protos.load("tensorflow_serving.apis.prediction_service_pb2_grpc")
    model_service_pb2_grpc = protos.load("tensorflow_serving.apis.model_service_pb2_grpc")
    predict_pb2 = protos.load("tensorflow_serving.apis.predict_pb2")
    classification_pb2 = protos.load("tensorflow_serving.apis.classification_pb2")
    regression_pb2 = protos.load("tensorflow_serving.apis.regression_pb2")
    inference_pb2 = protos.load("tensorflow_serving.apis.inference_pb2")
    metadata_pb2 = protos.load("tensorflow_serving.apis.get_model_metadata_pb2")
    management_pb2 = protos.model_management_pb2()

    class PredictionService(_Base, prediction_service_pb2_grpc.PredictionServiceServicer):  # type: ignore[misc,name-defined]
        def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:
            with self._rpc(context, request.model_spec.name, "predict"):
                name, version, label = _spec(request)
                with self.core.servable(name, version, label) as servable:
                    try:
                        inputs = {k: ndarray_from_proto(v) for k, v in request.inputs.items()}
                    except (ValueError, TypeError) as exc:
                        raise invalid_argument(str(exc)) from None
                    signame, outputs = servable.predict(
                        request.model_spec.signature_name, inputs, list(request.output_filter)
                    )
                    response = predict_pb2.PredictResponse()
                    response.model_spec.name = name
                    response.model_spec.version.value = servable.version
                    response.model_spec.signature_name = signame
                    for alias, (arr, dtype) in outputs.items():
                        response.outputs[alias].CopyFrom(
                            ndarray_to_proto(arr, dtype, tensor_content)
                        )
                    return response
            return None

        def Classify(self, request: Any, context: grpc.ServicerContext) -> Any:
            with self._rpc(context, request.model_spec.name, "classify"):
                name, version, label = _spec(request)
                with self.core.servable(name, version, label) as servable:
                    signame, results = servable.classify(
                        request.model_spec.signature_name, serialized_examples(request.input)
                    )
                    response = classification_pb2.ClassificationResponse()
                    response.model_spec.name = name
                    response.model_spec.version.value = servable.version
                    response.model_spec.signature_name = signame
                    for row in results:
                        classifications = response.result.classifications.add()
                        for cls_label, score in row:
                            classifications.classes.add(
                                label=cls_label.decode("utf-8", "replace"), score=score
                            )
                    return response
            return None

        def Regress(self, request: Any, context: grpc.ServicerContext) -> Any:
            with self._rpc(context, request.model_spec.name, "regress"):
                name, version, label = _spec(request)
                with self.core.servable(name, version, label) as servable:
                    signame, values = servable.regress(
                        request.model_spec.signature_name, serialized_examples(request.input)
                    )
                    response = regression_pb2.RegressionResponse()
                    response.model_spec.name = name
                    response.model_spec.version.value = servable.version
                    response.model_spec.signature_name = signame
                    for value in values:
                        response.result.regressions.add(value=value)
                    return response
            return None

        def MultiInference(self, request: Any, context: grpc.ServicerContext) -> Any:
            with self._rpc(context, "", ""):
                tasks = _multi_inference_tasks(request)
                name, version, label = _spec(tasks[0])
                with self.core.servable(name, version, label) as servable:
                    return multi_inference(servable, name, tasks, request.input, inference_pb2)
            return None

        def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:
            with self._rpc(context, request.model_spec.name, ""):
                name, version, label = _spec(request)
                if not request.metadata_field:
                    raise invalid_argument(
                        "GetModelMetadataRequest must specify at least one metadata_field"
                    )
                for f in request.metadata_field:
                    if f != "signature_def":
                        raise invalid_argument(f"Metadata field {f} is not supported")
                response, _ = metadata_response(self.core, name, version, label)
                assert isinstance(response, metadata_pb2.GetModelMetadataResponse)
                return response
            return None

    class ModelService(_Base, model_service_pb2_grpc.ModelServiceServicer):  # type: ignore[misc,name-defined]
        def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
            with self._rpc(context, "", ""):
                name, version, _ = _spec(request)
                return status_response(self.core, name, version)
            return None

        def HandleReloadConfigRequest(self, request: Any, context: grpc.ServicerContext) -> Any:
            response = management_pb2.ReloadConfigResponse()
            config = request.config
            before = {n: metrics.value_of(n) for n in request.metric_names}
            if config.WhichOneof("config") != "model_config_list":
                exc = invalid_argument(
                    "ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
                    "ModelConfigList is currently supported"
                )
                status = exc.status
            else:
                for index, entry in enumerate(config.model_config_list.config):
                    log.info(
                        log.MODEL_SERVICE,
                        f"\nConfig entry\n\tindex : {index}\n\tpath : {entry.base_path}\n\tname : "
                        f"{entry.name}\n\tplatform : {entry.model_platform}",
                    )
                status = self.core.reload_config(config)
            if not status.ok:
                log.error(log.MODEL_SERVICE, f"ReloadConfig failed: {status.message}")
                _abort(context, ServingError.of(status))
            response.status.error_code = status.code_number
            response.status.error_message = status.message
            for n in request.metric_names:
                metric = response.metric.add(name=n)
                metric.int64_value_increase = int(metrics.value_of(n) - before[n])
            return response

    return PredictionService(core), ModelService(core)


def build_server(
    core: ServerCore,
    max_threads: int,
    channel_arguments: str,
    tensor_content: bool,
    health_stop: threading.Event | None = None,
) -> grpc.Server:
    """The gRPC server; ``health_stop`` set adds ``grpc.health.v1.Health`` (held until it is set)."""
    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", 2**31 - 1),
        ("grpc.max_receive_message_length", 2**31 - 1),
    ]
    for item in filter(None, channel_arguments.split(",")):
        key, _, value = item.partition("=")
        try:
            options.append((key, int(value)))
        except ValueError:
            options.append((key, value))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max(max_threads, 2)), options=options
    )
    prediction, model = build_servicers(core, tensor_content)
    prediction_service_pb2_grpc = protos.load("tensorflow_serving.apis.prediction_service_pb2_grpc")
    model_service_pb2_grpc = protos.load("tensorflow_serving.apis.model_service_pb2_grpc")
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(prediction, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(model, server)
    if health_stop is not None:
        from . import health

        server.add_generic_rpc_handlers((health.handler(health_stop),))
    return server
