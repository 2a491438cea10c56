"""Reach a serving container's port through the Engine API (like ``kubectl port-forward``).

When the engine is not this machine's, the server's published ports are bound to
the *engine host's* loopback: ``127.0.0.1:<port>`` here is someone else (or
nobody). The relay listens on an ephemeral port of this machine's 127.0.0.1 and
carries each accepted connection to the container's port through the engine,
over whatever transport reaches the engine (unix, tcp, tcp+TLS, ssh). Nothing new
is published or exposed on the engine host.

How: **one exec per accepted connection**, running bash inside the serving
container::

    exec 3<>/dev/tcp/127.0.0.1/PORT   # connect inside the container's network
    cat <&4 >&3 &                      # client -> exec stdin  -> server (fd 4: stdin)
    cat <&3; kill $!                   # server -> exec stdout -> client

Why this and not a relay container sharing the serving container's network
namespace: the real ``tensorflow/serving`` image has bash and coreutils but no
socat, curl or python, and bash's ``/dev/tcp`` plus ``cat`` is enough; an exec
needs no image, no extra container to create, clean up or leave behind after a
Ctrl-C, and works on any engine the SDK reaches. The cost is one exec per
connection (tens of ms); HTTP keep-alive and gRPC's single HTTP/2 connection
make that once per client, not per request (``bench/bench_relay.py`` measures it).

The exec runs without a TTY, so its output is the engine's multiplexed stream
(8-byte frame headers: stream 1 stdout, 2 stderr): stdout frames go to the
client, stderr is kept as the reason when the in-container connect fails.

End of stream, both ways:

- the server closes (or the in-container connect is refused): the reader ``cat``
  ends, the script kills the writer and exits, the exec stream ends, and the
  relay closes the client connection. A refused connect is passed on as a reset
  with no data, which clients read as "connection refused / still loading", as
  they would without the relay;
- the client half-closes (EOF): the relay half-closes the exec's stdin, the
  writer ``cat`` ends, and answers still flow back until the server closes or
  stays silent for ``HALF_CLOSE_GRACE`` seconds (bash cannot ``shutdown(2)`` a
  socket, so the server never sees that half-close; HTTP/1.1 and gRPC clients do
  not half-close in practice, they close).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

HALF_CLOSE_GRACE = 10.0
_CHUNK = 65536

# The writer runs in the background with stdin taken from fd 4 (a background job's
# own stdin is /dev/null); the reader runs in the foreground, so the end of the
# server's side ends the script (no ``wait -n``, which bash 5.0 gets wrong for
# jobs that ended before it was called).
RELAY_SCRIPT = r"""
exec 3<>/dev/tcp/127.0.0.1/"$1" || exit 111
exec 4<&0
cat <&4 >&3 4<&- & w=$!
exec 4<&-
cat <&3
kill "$w" 2>/dev/null
exit 0
"""


@dataclass(frozen=True)
class RelayTarget:
    """The container and its port a relay connection goes to."""

    container_id: str
    port: int


class RelayFault(Exception):
    """The relay itself failed (engine lost, exec refused), not the server."""


def _raw(sock: Any) -> Any:
    """The object that has sendall/recv/shutdown under docker-py's exec socket."""
    return getattr(sock, "_sock", sock)


def _recv_exactly(raw: Any, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = raw.recv(n - len(buf))
        if not chunk:
            return buf
        buf += chunk
    return buf


def _close(item: Any) -> None:
    """Shut down, then close: a thread blocked in recv() on it holds the socket open
    (and its FIN unsent) until it is shut down."""
    with contextlib.suppress(OSError, AttributeError):
        item.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        item.close()


def _reset(sock: socket.socket) -> None:
    """Close with RST: the client sees a refused/reset connection, as without the relay."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)  # wakes a thread blocked in recv() without sending a FIN
    with contextlib.suppress(OSError):
        sock.close()


class Relay:
    """A listening port on this machine's 127.0.0.1 relayed into a container's port.

    ``resolve`` names the container and port for each new connection (the
    container may have been recreated since the last one); ``open_exec`` starts
    the in-container end and returns the exec's socket.
    """

    def __init__(
        self,
        resolve: Callable[[], RelayTarget | None],
        open_exec: Callable[[RelayTarget, str], Any],
        *,
        on_fault: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._resolve = resolve
        self._open_exec = open_exec
        self._on_fault = on_fault or (lambda exc: None)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._closed = False
        self._lock = threading.Lock()
        self._open: set[Any] = set()
        self.connections = 0
        self.last_stderr = ""
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"tfsops-relay-{self.port}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            items = list(self._open)
            self._open.clear()
        for item in items:
            _close(item)

    def _track(self, *items: Any) -> None:
        with self._lock:
            self._open.update(items)

    def _untrack(self, *items: Any) -> None:
        with self._lock:
            for item in items:
                self._open.discard(item)
        for item in items:
            _close(item)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(
                target=self._serve, args=(client,), name="tfsops-relay-conn", daemon=True
            ).start()

    def _serve(self, client: socket.socket) -> None:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            target = self._resolve()
            if target is None:  # no container publishes the port: like a refused connect
                _reset(client)
                return
            exec_sock = self._open_exec(target, RELAY_SCRIPT)
        except Exception as exc:  # engine lost, exec refused: report, then refuse
            log.debug("relay: cannot open the in-container end: %s", exc)
            self._on_fault(exc)
            _reset(client)
            return
        raw = _raw(exec_sock)
        # The SDK's socket carries its request timeout; a kept-alive connection may idle longer.
        with contextlib.suppress(OSError, AttributeError):
            raw.settimeout(None)
        self._track(client, raw)
        sent_any = self._pump(client, raw)
        if not sent_any:
            _reset(client)
        self._untrack(client, raw)
        with contextlib.suppress(Exception):
            exec_sock.close()

    def _pump(self, client: socket.socket, raw: Any) -> bool:
        """Carry bytes both ways until the server side ends; True when any reached the client."""
        done = threading.Event()
        activity = [0]
        upstream = threading.Thread(
            target=self._upstream, args=(client, raw, done, activity), daemon=True
        )
        upstream.start()
        try:
            return self._downstream(client, raw, activity)
        finally:
            done.set()

    def _downstream(self, client: socket.socket, raw: Any, activity: list[int]) -> bool:
        sent_any = False
        stderr = b""
        try:
            while True:
                header = _recv_exactly(raw, 8)
                if len(header) < 8:
                    break
                stream, size = header[0], struct.unpack(">I", header[4:])[0]
                payload = _recv_exactly(raw, size)
                activity[0] += 1
                if stream == 2:
                    stderr = (stderr + payload)[-4096:]
                elif payload:
                    client.sendall(payload)
                    sent_any = True
                if len(payload) < size:
                    break
        except OSError as exc:
            if not self._closed:
                log.debug("relay: connection ended: %s", exc)
                if not isinstance(exc, (BrokenPipeError, ConnectionResetError)):
                    self._on_fault(exc)
        if stderr:
            self.last_stderr = stderr.decode("utf-8", "replace").strip()
            log.debug("relay: in-container end said: %s", self.last_stderr)
        return sent_any

    def _upstream(
        self, client: socket.socket, raw: Any, done: threading.Event, activity: list[int]
    ) -> None:
        try:
            while True:
                data = client.recv(_CHUNK)
                if not data:
                    break
                raw.sendall(data)
        except OSError:
            pass
        # Client EOF (or gone): half-close the exec's stdin; answers may still flow back.
        with contextlib.suppress(OSError, AttributeError):
            raw.shutdown(socket.SHUT_WR)
        seen = -1
        while not done.wait(HALF_CLOSE_GRACE):
            if activity[0] == seen:  # the server stayed silent: end the exec stream
                log.debug("relay: server silent %.0fs after the client's EOF", HALF_CLOSE_GRACE)
                with contextlib.suppress(OSError, AttributeError):
                    raw.shutdown(socket.SHUT_RDWR)
                return
            seen = activity[0]


class RelayPool:
    """One relay per published port of a deployment, opened on first use, closed together.

    ``endpoint()`` is the one translation from "where the deployment publishes"
    (the engine host's view) to "where this machine connects".
    """

    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime
        self._relays: dict[int, Relay] = {}
        self._lock = threading.Lock()
        self.faults: list[BaseException] = []

    def _record(self, exc: BaseException) -> None:
        self.faults.append(exc)

    def relay_for(self, host_port: int) -> Relay:
        with self._lock:
            relay = self._relays.get(host_port)
            if relay is None:
                relay = Relay(
                    lambda: self._target(host_port), self._open_exec, on_fault=self._record
                )
                self._relays[host_port] = relay
            return relay

    def _target(self, host_port: int) -> RelayTarget | None:
        for info in self._runtime.list_deployments():
            if info.status not in ("running", "restarting", "paused"):
                continue
            for _ip, hport, cport in info.ports:
                if hport == host_port:
                    return RelayTarget(container_id=info.id, port=cport)
        return None

    def _open_exec(self, target: RelayTarget, script: str) -> Any:
        return self._runtime.exec_socket(
            target.container_id, ["bash", "-c", script, "tfsops-relay", str(target.port)]
        )

    def endpoint(self, endpoint: Any) -> Any:
        """The same server, reached through relays on this machine's loopback."""
        from dataclasses import replace

        rest = self.relay_for(endpoint.rest_port).port if endpoint.rest_port else None
        grpc = self.relay_for(endpoint.grpc_port).port if endpoint.grpc_port else None
        return replace(
            endpoint,
            host="127.0.0.1",
            rest_port=rest,
            grpc_port=grpc,
            # the server's certificate names the deployment's host, not the relay's
            tls_server_name=endpoint.tls_server_name
            or (endpoint.host if endpoint.tls_ca else None),
        )

    def stderr(self) -> str:
        return "; ".join(r.last_stderr for r in self._relays.values() if r.last_stderr)

    def close(self) -> None:
        with self._lock:
            relays = list(self._relays.values())
            self._relays.clear()
        for relay in relays:
            relay.close()
