"""``grpc.health.v1.Health`` under ``--enable_grpc_healthcheck_service``.

Upstream (``server.cc``, commit a9a8e7bf) enables gRPC's default health
service and marks ``"ModelService"`` and ``"PredictionService"`` SERVING once
the server is built; the overall service ``""`` is SERVING too. The status is
not tied to model state. An unknown service name answers NOT_FOUND, as the
C++ implementation does.

The messages are built from a descriptor here (``grpc.health.v1`` is not in
the serving API wheel, and the image carries no grpcio-health-checking).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc

SERVICE = "grpc.health.v1.Health"
SERVING = 1
SERVICE_UNKNOWN = 3
SERVICES = ("", "ModelService", "PredictionService")

_lock = threading.Lock()
_messages: tuple[Any, Any] | None = None


def messages() -> tuple[Any, Any]:
    """(HealthCheckRequest, HealthCheckResponse) classes, in a private descriptor pool."""
    global _messages
    with _lock:
        if _messages is None:
            from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

            fdp = descriptor_pb2.FileDescriptorProto(
                name="tfserving_double/grpc_health_v1.proto",
                package="grpc.health.v1",
                syntax="proto3",
            )
            request = fdp.message_type.add(name="HealthCheckRequest")
            request.field.add(
                name="service",
                number=1,
                type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
            )
            response = fdp.message_type.add(name="HealthCheckResponse")
            enum = response.enum_type.add(name="ServingStatus")
            for number, name in enumerate(("UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN")):
                enum.value.add(name=name, number=number)
            response.field.add(
                name="status",
                number=1,
                type=descriptor_pb2.FieldDescriptorProto.TYPE_ENUM,
                type_name=".grpc.health.v1.HealthCheckResponse.ServingStatus",
                label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
            )
            pool = descriptor_pool.DescriptorPool()
            pool.Add(fdp)
            _messages = (
                message_factory.GetMessageClass(
                    pool.FindMessageTypeByName("grpc.health.v1.HealthCheckRequest")
                ),
                message_factory.GetMessageClass(
                    pool.FindMessageTypeByName("grpc.health.v1.HealthCheckResponse")
                ),
            )
        return _messages


def handler(stop: threading.Event) -> grpc.GenericRpcHandler:
    request_cls, response_cls = messages()
    statuses = dict.fromkeys(SERVICES, SERVING)

    def status_of(request: Any, context: grpc.ServicerContext) -> int:
        if request.service not in statuses:
            context.abort(grpc.StatusCode.NOT_FOUND, "service name unknown")
        return statuses[request.service]

    def check(request: Any, context: grpc.ServicerContext) -> Any:
        return response_cls(status=status_of(request, context))

    def watch(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        yield response_cls(status=statuses.get(request.service, SERVICE_UNKNOWN))
        # The status never changes while the server runs: hold the stream open.
        while context.is_active() and not stop.wait(1.0):
            pass

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Check": grpc.unary_unary_rpc_method_handler(
                check,
                request_deserializer=request_cls.FromString,
                response_serializer=response_cls.SerializeToString,
            ),
            "Watch": grpc.unary_stream_rpc_method_handler(
                watch,
                request_deserializer=request_cls.FromString,
                response_serializer=response_cls.SerializeToString,
            ),
        },
    )
