"""Config protos that tensorflow-serving-api's wheel does not ship.

The pip package carries ``model_server_config_pb2`` but not the messages of
``--batching_parameters_file`` (``BatchingParameters``,
tensorflow_serving/servables/tensorflow/session_bundle_config.proto),
``--monitoring_config_file`` (``MonitoringConfig``,
tensorflow_serving/config/monitoring_config.proto) or ``--ssl_config_file``
(``SSLConfig``, tensorflow_serving/config/ssl_config.proto). Their
descriptors are declared here with upstream's package, message and field
names, numbers and types, so text files parse exactly as the server parses
them. Kept in a private descriptor pool so they never clash with generated
modules of the same names.

This module has no tfsops imports: the TF Serving test double reuses it.
"""

from __future__ import annotations

import functools
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "tensorflow.serving"

# (name, number, type, label, type_name)
_BATCHING_FIELDS = [
    ("max_batch_size", 1, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".google.protobuf.Int64Value"),
    ("batch_timeout_micros", 2, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".google.protobuf.Int64Value"),
    ("max_enqueued_batches", 3, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".google.protobuf.Int64Value"),
    ("num_batch_threads", 4, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".google.protobuf.Int64Value"),
    ("thread_pool_name", 5, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".google.protobuf.StringValue"),
    ("allowed_batch_sizes", 6, _F.TYPE_INT64, _F.LABEL_REPEATED, None),
    ("pad_variable_length_inputs", 7, _F.TYPE_BOOL, _F.LABEL_OPTIONAL, None),
    (
        "enable_large_batch_splitting",
        8,
        _F.TYPE_MESSAGE,
        _F.LABEL_OPTIONAL,
        ".google.protobuf.BoolValue",
    ),
    (
        "max_execution_batch_size",
        9,
        _F.TYPE_MESSAGE,
        _F.LABEL_OPTIONAL,
        ".google.protobuf.Int64Value",
    ),
]
_PROMETHEUS_FIELDS = [
    ("enable", 1, _F.TYPE_BOOL, _F.LABEL_OPTIONAL, None),
    ("path", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
]
_MONITORING_FIELDS = [
    (
        "prometheus_config",
        1,
        _F.TYPE_MESSAGE,
        _F.LABEL_OPTIONAL,
        ".tensorflow.serving.PrometheusConfig",
    ),
]
_SSL_FIELDS = [
    ("server_key", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
    ("server_cert", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
    ("custom_ca", 3, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
    ("client_verify", 4, _F.TYPE_BOOL, _F.LABEL_OPTIONAL, None),
]


def _file(
    name: str, messages: dict[str, list[Any]], deps: list[str]
) -> descriptor_pb2.FileDescriptorProto:
    fdp = descriptor_pb2.FileDescriptorProto(name=name, package=_PACKAGE, syntax="proto3")
    fdp.dependency.extend(deps)
    for msg_name, fields in messages.items():
        msg = fdp.message_type.add(name=msg_name)
        for fname, number, ftype, label, type_name in fields:
            field = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                field.type_name = type_name
    return fdp


@functools.cache
def _pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    wrappers_name = wrappers.name
    pool.Add(
        _file(
            "tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
            {"BatchingParameters": _BATCHING_FIELDS},
            [wrappers_name],
        )
    )
    pool.Add(
        _file(
            "tensorflow_serving/config/monitoring_config.proto",
            {"PrometheusConfig": _PROMETHEUS_FIELDS, "MonitoringConfig": _MONITORING_FIELDS},
            [],
        )
    )
    pool.Add(_file("tensorflow_serving/config/ssl_config.proto", {"SSLConfig": _SSL_FIELDS}, []))
    return pool


@functools.cache
def message_class(name: str) -> Any:
    """``BatchingParameters``, ``MonitoringConfig``, ``PrometheusConfig`` or ``SSLConfig``."""
    return message_factory.GetMessageClass(_pool().FindMessageTypeByName(f"{_PACKAGE}.{name}"))


def BatchingParameters() -> Any:
    return message_class("BatchingParameters")()


def MonitoringConfig() -> Any:
    return message_class("MonitoringConfig")()


def SSLConfig() -> Any:
    return message_class("SSLConfig")()
