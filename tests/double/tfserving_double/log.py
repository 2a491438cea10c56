"""glog-style lines on stderr, like the C++ server's ``LOG(...)``.

Users (and upstream's own docker tests) grep these lines for readiness, so
the message texts follow upstream; the source tag names the upstream file
the line comes from.
"""

from __future__ import annotations

import datetime
import sys
import threading

_lock = threading.Lock()


def _emit(level: str, source: str, message: str) -> None:
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")
    line = f"{now}: {level} {source}] {message}\n"
    with _lock:
        try:
            sys.stderr.write(line)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass  # stderr closed during shutdown


def info(source: str, message: str) -> None:
    _emit("I", source, message)


def warning(source: str, message: str) -> None:
    _emit("W", source, message)


def error(source: str, message: str) -> None:
    _emit("E", source, message)


SERVER = "tensorflow_serving/model_servers/server.cc"
MAIN = "tensorflow_serving/model_servers/main.cc"
CORE = "tensorflow_serving/model_servers/server_core.cc"
HARNESS = "tensorflow_serving/core/loader_harness.cc"
MANAGER = "tensorflow_serving/core/basic_manager.cc"
SOURCE = "tensorflow_serving/sources/storage_path/file_system_storage_path_source.cc"
FLAGS = "tensorflow/core/util/command_line_flags.cc"
LOADER = "external/org_tensorflow/tensorflow/cc/saved_model/loader.cc"
MODEL_SERVICE = "tensorflow_serving/model_servers/model_service_impl.cc"
