"""Image builds through the Docker SDK's low-level ``APIClient.build`` (the classic builder).

The only module of ``tfsops build`` that imports ``docker``. It translates
``docker.errors`` and ``requests`` connection errors once, here:
unreachable engine -> ``EngineUnreachable`` (exit 4), API refusals ->
``OperationFailed`` (exit 5).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tfsops.build.plan import split_reference
from tfsops.errors import EngineUnreachable, OperationFailed

ENGINE_HINT = "is the Docker daemon running? check DOCKER_HOST or --docker-host"


def _engine_error(exc: BaseException, where: str) -> EngineUnreachable:
    return EngineUnreachable(
        f"cannot reach the Docker engine at {where}: {exc}",
        hint=ENGINE_HINT,
    )


class DockerImageBuilder:
    """Implements ``tfsops.build.executor.ImageBuilder`` with the Docker SDK."""

    def __init__(self, docker_host: str | None = None) -> None:
        self._docker_host = docker_host
        self._api: Any = None
        self._stream: Generator[Any, None, None] | None = None

    @property
    def where(self) -> str:
        return self._docker_host or os.environ.get("DOCKER_HOST") or "the local socket"

    @contextmanager
    def _translated(self) -> Iterator[None]:
        import docker.errors
        import requests.exceptions

        try:
            yield
        except requests.exceptions.ConnectionError as exc:
            raise _engine_error(exc, self.where) from exc
        except docker.errors.APIError as exc:
            raise OperationFailed(f"the Docker engine refused: {exc.explanation or exc}") from exc
        except docker.errors.DockerException as exc:  # from_env: no socket, bad DOCKER_HOST
            raise _engine_error(exc, self.where) from exc

    def _client(self) -> Any:
        if self._api is None:
            import docker

            env = dict(os.environ)
            if self._docker_host:
                env["DOCKER_HOST"] = self._docker_host
            with self._translated():
                # Build streams can stay silent for minutes (one long bazel
                # action), so build() is called with timeout=None; this default
                # only bounds the short calls (inspect, tag).
                self._api = docker.from_env(environment=env, timeout=120).api
        return self._api

    def build(
        self,
        *,
        context_dir: Path,
        dockerfile: str,
        tags: Sequence[str],
        buildargs: Mapping[str, str],
        labels: Mapping[str, str],
    ) -> Iterator[Mapping[str, Any]]:
        """Stream the engine's decoded build messages (``stream``/``status``/``aux``/``error``)."""
        api = self._client()
        with self._translated():
            stream = api.build(
                path=str(context_dir),
                dockerfile=dockerfile,
                tag=tags[0] if tags else None,
                buildargs=dict(buildargs),
                labels=dict(labels),
                decode=True,
                rm=True,
                forcerm=True,  # also remove intermediate containers of a failed step
                pull=False,  # use local bases; pull only what is missing
                timeout=None,
            )
            self._stream = stream
            try:
                yield from stream
            finally:
                self._stream = None
            for extra in tags[1:]:
                repo, tag = split_reference(extra)
                api.tag(tags[0], repo, tag)

    def image_labels(self, ref: str) -> Mapping[str, str] | None:
        """The image's labels, or None when the engine does not have it."""
        import docker.errors

        api = self._client()
        try:
            with self._translated():
                info = api.inspect_image(ref)
        except OperationFailed as exc:
            if isinstance(exc.__cause__, docker.errors.NotFound):
                return None
            raise
        return dict((info.get("Config") or {}).get("Labels") or {})

    def cancel(self) -> None:
        """Drop the build connection: the classic builder stops a build whose client left."""
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()  # releases the streamed HTTP response and its socket
        if self._api is not None:
            self._api.close()

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None
