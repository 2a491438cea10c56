"""``tensorflow_model_server`` flags, parsed with ``tensorflow::Flags::Parse`` rules.

Rules (reference §1.1, ``tensorflow/core/util/command_line_flags.cc``):

* non-bool flags only as ``--name=value``; a value that ``sscanf`` cannot
  read logs ``Couldn't interpret value <v> for flag <name>.`` and fails;
* bool flags only as ``--name``, ``--name=true``, ``--name=false``; any
  other text after the name (``=1``, ``=True``, even ``X``) fails;
* flags are tried in declaration order and each occurrence is applied, so
  the last one wins;
* everything after ``--`` and every unrecognised argument is handed back
  as "unknown" (``main.cc`` prints the first and keeps going);
* parsing also fails when the first unknown argument is ``--help``.

Pure module: no TensorFlow, no I/O besides the optional log callback.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


def num_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _flag(kind: str, help_text: str, default: Any = None, factory: Any = None) -> Any:
    meta = {"kind": kind, "help": help_text}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# Field order == declaration order in upstream main.cc (it decides which flag
# claims an argument first when one name is a prefix of another).
@dataclass
class Options:
    port: int = _flag(
        "int32",
        "TCP port to listen on for gRPC/HTTP API. Disabled if port set to zero.",
        8500,
    )
    grpc_socket_path: str = _flag(
        "string",
        "If non-empty, listen to a UNIX socket for gRPC API on the given path.",
        "",
    )
    rest_api_port: int = _flag(
        "int32",
        "Port to listen on for HTTP/REST API. If set to zero HTTP/REST API will not be exported.",
        0,
    )
    rest_api_num_threads: int = _flag(
        "int32",
        "Number of threads for HTTP/REST API processing.",
        factory=lambda: 4 * num_cpus(),
    )
    rest_api_timeout_in_ms: int = _flag(
        "int32",
        "Timeout for HTTP/REST API calls.",
        30000,
    )
    rest_api_enable_cors_support: bool = _flag(
        "bool",
        "Enable CORS headers in response",
        False,
    )
    enable_batching: bool = _flag(
        "bool",
        "enable batching",
        False,
    )
    allow_version_labels_for_unavailable_models: bool = _flag(
        "bool",
        "If true, allows assigning unused version labels to models that are not available yet.",
        False,
    )
    batching_parameters_file: str = _flag(
        "string",
        "If non-empty, read an ascii BatchingParameters protobuf from the supplied file name.",
        "",
    )
    enable_per_model_batching_parameters: bool = _flag(
        "bool",
        "Enables model specific batching params like batch sizes, timeouts, batching "
        "feature flags to be read from batching_params.pbtxt file inside model export "
        "directory.",
        False,
    )
    model_config_file: str = _flag(
        "string",
        "If non-empty, read an ascii ModelServerConfig protobuf from the supplied file "
        "name, and serve the models in that file. (If used, --model_name, "
        "--model_base_path are ignored.)",
        "",
    )
    model_config_file_poll_wait_seconds: int = _flag(
        "int32",
        "Interval in seconds between each poll of the filesystem for model_config_file. "
        "If unset or set to zero, poll will be done exactly once and not periodically.",
        0,
    )
    model_name: str = _flag(
        "string",
        "name of model (ignored if --model_config_file flag is set)",
        "default",
    )
    model_base_path: str = _flag(
        "string",
        "path to export (ignored if --model_config_file flag is set, otherwise required)",
        "",
    )
    num_load_threads: int = _flag(
        "int32",
        "The number of threads in the thread-pool used to load servables.",
        0,
    )
    num_unload_threads: int = _flag(
        "int32",
        "The number of threads in the thread-pool used to unload servables.",
        0,
    )
    max_num_load_retries: int = _flag(
        "int32",
        "maximum number of times it retries loading a model after the first failure, "
        "before giving up.",
        5,
    )
    load_retry_interval_micros: int = _flag(
        "int64",
        "The interval, in microseconds, between each servable load retry.",
        60_000_000,
    )
    file_system_poll_wait_seconds: int = _flag(
        "int32",
        "Interval in seconds between each poll of the filesystem for new model version.",
        1,
    )
    flush_filesystem_caches: bool = _flag(
        "bool",
        "If true (the default), filesystem caches will be flushed after the initial load "
        "of all servables.",
        True,
    )
    tensorflow_session_parallelism: int = _flag(
        "int64",
        "Number of threads to use for running a Tensorflow session. Auto-configured by default.",
        0,
    )
    tensorflow_session_config_file: str = _flag(
        "string",
        "If non-empty, read an ascii TensorFlow Session ConfigProto protobuf from the "
        "supplied file name.",
        "",
    )
    tensorflow_intra_op_parallelism: int = _flag(
        "int64",
        "Number of threads to use to parallelize the execution of an individual op. Auto-"
        "configured by default.",
        0,
    )
    tensorflow_inter_op_parallelism: int = _flag(
        "int64",
        "Controls the number of operators that can be executed simultaneously. Auto-"
        "configured by default.",
        0,
    )
    use_alts_credentials: bool = _flag(
        "bool",
        "Use Google ALTS credentials",
        False,
    )
    ssl_config_file: str = _flag(
        "string",
        "If non-empty, read an ascii SSLConfig protobuf from the supplied file name and "
        "set up a secure gRPC channel",
        "",
    )
    platform_config_file: str = _flag(
        "string",
        "If non-empty, read an ascii PlatformConfigMap protobuf from the supplied file "
        "name, and use that platform config instead of the Tensorflow platform.",
        "",
    )
    per_process_gpu_memory_fraction: float = _flag(
        "float",
        "Fraction that each process occupies of the GPU memory space the value is between"
        " 0.0 and 1.0 (with 0.0 as the default).",
        0.0,
    )
    saved_model_tags: str = _flag(
        "string",
        "Comma-separated set of tags corresponding to the meta graph def to load from SavedModel.",
        "serve",
    )
    grpc_channel_arguments: str = _flag(
        "string",
        "A comma separated list of arguments to be passed to the grpc server. (e.g. "
        "grpc.max_connection_age_ms=2000)",
        "",
    )
    grpc_max_threads: int = _flag(
        "int32",
        "Max grpc server threads to handle grpc messages.",
        factory=lambda: 4 * num_cpus(),
    )
    enable_model_warmup: bool = _flag(
        "bool",
        "Enables model warmup, which triggers lazy initializations (such as TF "
        "optimizations) at load time, to reduce first request latency.",
        True,
    )
    num_request_iterations_for_warmup: int = _flag(
        "int32",
        "Number of times a request is iterated during warmup replay. This value is used "
        "only if > 0.",
        0,
    )
    version: bool = _flag(
        "bool",
        "Display version",
        False,
    )
    monitoring_config_file: str = _flag(
        "string",
        "If non-empty, read an ascii MonitoringConfig protobuf from the supplied file name",
        "",
    )
    remove_unused_fields_from_bundle_metagraph: bool = _flag(
        "bool",
        "Removes unused fields from MetaGraphDef proto message to save memory.",
        True,
    )
    prefer_tflite_model: bool = _flag(
        "bool",
        "EXPERIMENTAL; CAN BE REMOVED ANYTIME! Prefer TensorFlow Lite model from "
        "`model.tflite` file in SavedModel directory, instead of the TensorFlow model "
        "from `saved_model.pb` file.",
        False,
    )
    num_tflite_pools: int = _flag(
        "int32",
        "EXPERIMENTAL; CAN BE REMOVED ANYTIME! Number of TFLite interpreters pools to use.",
        factory=num_cpus,
    )
    num_tflite_interpreters_per_pool: int = _flag(
        "int32",
        "EXPERIMENTAL; CAN BE REMOVED ANYTIME! Number of TFLite interpreters per pool.",
        1,
    )
    enable_signature_method_name_check: bool = _flag(
        "bool",
        "Enable method_name check for SignatureDef. Disable this if serving native TF2 "
        "regression/classification models.",
        False,
    )
    xla_cpu_compilation_enabled: bool = _flag(
        "bool",
        "EXPERIMENTAL; CAN BE REMOVED ANYTIME! Enable XLA:CPU JIT (default is disabled).",
        False,
    )
    xla_gpu_compilation_enabled: bool = _flag(
        "bool",
        "EXPERIMENTAL; CAN BE REMOVED ANYTIME! Enable XLA:GPU JIT (default is disabled).",
        False,
    )
    enable_profiler: bool = _flag(
        "bool",
        "Enable profiler service.",
        True,
    )
    thread_pool_factory_config_file: str = _flag(
        "string",
        "If non-empty, read an ascii ThreadPoolConfig protobuf from the supplied file name.",
        "",
    )
    mixed_precision: str = _flag(
        "string",
        "specify mixed_precision mode",
        "",
    )
    skip_initialize_tpu: bool = _flag(
        "bool",
        "Whether to skip auto initializing TPU.",
        False,
    )
    enable_grpc_healthcheck_service: bool = _flag(
        "bool",
        "Enable the standard gRPC healthcheck service.",
        False,
    )
    enable_serialization_as_tensor_content: bool = _flag(
        "bool",
        "Enable serialization of predict response as tensor content.",
        False,
    )


@dataclass(frozen=True)
class FlagSpec:
    name: str
    kind: str  # int32 | int64 | float | bool | string
    help: str


FLAGS: tuple[FlagSpec, ...] = tuple(
    FlagSpec(f.name, f.metadata["kind"], f.metadata["help"]) for f in dataclasses.fields(Options)
)

_INT_RE = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)")
_FLOAT_RE = re.compile(
    r"[ \t\n\v\f\r]*([+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|(?i:inf(?:inity)?)|(?i:nan)))"
)


def _scan_int(text: str, bits: int) -> int | None:
    """``sscanf(text, "%d%c")`` == 1: one integer and nothing after it."""
    m = _INT_RE.match(text)
    if m is None or m.end() != len(text):
        return None
    value = int(m.group(1))
    # sscanf stores the low bits on overflow; wrap like the C++ int.
    mod = 1 << bits
    value %= mod
    return value - mod if value >= mod // 2 else value


def _scan_float(text: str) -> float | None:
    m = _FLOAT_RE.match(text)
    if m is None or m.end() != len(text):
        return None
    return float(m.group(1))


@dataclass
class ParseResult:
    options: Options
    ok: bool
    unknown: list[str]
    errors: list[str]  # the LOG(ERROR) lines of the parser


def parse(argv: Sequence[str], log_error: Callable[[str], None] | None = None) -> ParseResult:
    """Parse ``argv`` (``argv[0]`` is the program) like ``tensorflow::Flags::Parse``."""
    options = Options()
    ok = True
    unknown: list[str] = []
    errors: list[str] = []

    def error(message: str) -> None:
        errors.append(message)
        if log_error is not None:
            log_error(message)

    args = list(argv[1:])
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            unknown.extend(args[i:])
            break
        found = False
        for spec in FLAGS:
            if not arg.startswith("--") or not arg[2:].startswith(spec.name):
                continue
            rest = arg[2 + len(spec.name) :]
            if spec.kind == "bool":
                found = True
                if rest in {"", "=true"}:
                    setattr(options, spec.name, True)
                elif rest == "=false":
                    setattr(options, spec.name, False)
                else:
                    error(f"Couldn't interpret value {rest} for flag {spec.name}.")
                    ok = False
                break
            if not rest.startswith("="):
                continue  # e.g. --model_config_file_poll... is not --model_config_file
            found = True
            value = rest[1:]
            parsed: Any
            if spec.kind == "string":
                parsed = value
            elif spec.kind == "int32":
                parsed = _scan_int(value, 32)
            elif spec.kind == "int64":
                parsed = _scan_int(value, 64)
            else:
                parsed = _scan_float(value)
            if parsed is None:
                error(f"Couldn't interpret value {value} for flag {spec.name}.")
                ok = False
            else:
                setattr(options, spec.name, parsed)
            break
        if not found:
            unknown.append(arg)
        i += 1
    if unknown and unknown[0] == "--help":
        ok = False
    return ParseResult(options=options, ok=ok, unknown=unknown, errors=errors)


def usage(program: str) -> str:
    """``tensorflow::Flags::Usage``: one line per flag with its default."""
    defaults = Options()
    lines = [f"usage: {program}", "Flags:"]
    for spec in FLAGS:
        value = getattr(defaults, spec.name)
        if spec.kind == "bool":
            shown = f"--{spec.name}={'true' if value else 'false'}"
        elif spec.kind == "string":
            shown = f'--{spec.name}="{value}"'
        elif spec.kind == "float":
            shown = f"--{spec.name}={value:f}"
        else:
            shown = f"--{spec.name}={value}"
        lines.append(f"\t{shown:<33}\t{spec.kind}\t{spec.help}")
    return "\n".join(lines) + "\n"
