"""The ``target: swarm`` deployment: one replicated Docker Swarm service per spec.

``plan`` is pure (spec -> service spec, config objects, diff); ``executor``
runs it through ``tfsops.adapters.docker_swarm``. Nothing heavy is imported
here, so the CLI may import this package early.
"""

from __future__ import annotations
