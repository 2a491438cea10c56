"""The relay's byte handling, with the in-container end run by a real bash.

``open_exec`` is the relay's own seam: here it starts ``bash -c RELAY_SCRIPT`` on
this machine and frames its stdout/stderr the way the engine multiplexes an
exec without a TTY (8-byte headers), closing the exec's stdin when the relay
half-closes, as the engine does. The "container's port" is a real server on
127.0.0.1.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tfsops.adapters.docker_relay import Relay, RelayTarget

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def bash_exec(target: RelayTarget, script: str) -> socket.socket:
    ours, engine = socket.socketpair()
    proc = subprocess.Popen(
        ["bash", "-c", script, "tfsops-relay", str(target.port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lock = threading.Lock()

    def stdin() -> None:
        assert proc.stdin is not None
        with contextlib.suppress(OSError):
            while data := engine.recv(65536):
                proc.stdin.write(data)
                proc.stdin.flush()
        with contextlib.suppress(OSError):
            proc.stdin.close()

    def output(stream: Any, kind: int) -> None:
        while data := stream.read1(65536):
            with lock, contextlib.suppress(OSError):
                engine.sendall(bytes([kind, 0, 0, 0]) + struct.pack(">I", len(data)) + data)

    outs = [
        threading.Thread(target=output, args=(proc.stdout, 1)),
        threading.Thread(target=output, args=(proc.stderr, 2)),
    ]

    def finish() -> None:
        for t in outs:
            t.join()
        proc.wait()
        with contextlib.suppress(OSError):
            engine.shutdown(socket.SHUT_WR)

    threading.Thread(target=stdin, daemon=True).start()
    for t in outs:
        t.daemon = True
        t.start()
    threading.Thread(target=finish, daemon=True).start()
    return ours


@contextlib.contextmanager
def server(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def loop() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


@contextlib.contextmanager
def relay_to(port: int | None, **kw: Any) -> Iterator[Relay]:
    target = RelayTarget("c1", port) if port else None
    relay = Relay(lambda: target, kw.pop("open_exec", bash_exec), **kw)
    try:
        yield relay
    finally:
        relay.close()


def connect(relay: Relay) -> socket.socket:
    return socket.create_connection(("127.0.0.1", relay.port), timeout=10)


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    buf = b""
    while marker not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def http_keepalive(conn: socket.socket) -> None:
    with conn:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            path = head.split(b" ")[1]
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(path), path))


def test_keepalive_requests_share_one_connection_and_one_exec() -> None:
    with server(http_keepalive) as port, relay_to(port) as relay, connect(relay) as sock:
        for path in (b"/one", b"/two", b"/" + b"x" * 200_000):
            sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
            answer = read_until(sock, path)
            assert answer.endswith(path)
        assert relay.connections == 1


def test_server_close_ends_the_client_connection() -> None:
    def greet_and_close(conn: socket.socket) -> None:
        conn.sendall(b"bye")
        conn.close()

    with server(greet_and_close) as port, relay_to(port) as relay, connect(relay) as sock:
        started = time.monotonic()
        assert read_until(sock, b"never") == b"bye"  # then EOF
        assert time.monotonic() - started < 5


def test_client_half_close_still_gets_the_answer() -> None:
    def upper(conn: socket.socket) -> None:
        data = conn.recv(100)
        time.sleep(0.3)  # answer after the client's EOF reached the relay
        conn.sendall(data.upper())
        conn.close()

    with server(upper) as port, relay_to(port) as relay, connect(relay) as sock:
        sock.sendall(b"hello")
        sock.shutdown(socket.SHUT_WR)
        assert read_until(sock, b"never") == b"HELLO"


def assert_reset(relay: Relay) -> None:
    """Refused as a direct connect would be: reset at connect or at the first read."""
    def attempt() -> None:
        with connect(relay) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
            read_until(sock, b"never")

    with pytest.raises(ConnectionResetError):
        attempt()


def test_refused_inside_the_container_looks_refused_here() -> None:
    with socket.socket() as bound:  # bound, not listening: connects are refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        with relay_to(port) as relay:
            assert_reset(relay)
    assert "refused" in relay.last_stderr.lower()


def test_no_container_and_engine_faults_refuse_the_connection() -> None:
    with relay_to(None) as relay:
        assert_reset(relay)
    faults: list[BaseException] = []

    def engine_gone(target: RelayTarget, script: str) -> Any:
        raise ConnectionRefusedError("engine gone")

    with relay_to(1, open_exec=engine_gone, on_fault=faults.append) as relay:
        assert_reset(relay)
    assert [str(f) for f in faults] == ["engine gone"]
