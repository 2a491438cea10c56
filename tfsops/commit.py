"""Bake a spec's models into a self-contained serving image (upstream's `docker commit` recipe).

Create a base container from the serving image, copy each model to
/models/<name> (and the rendered configs to /etc/tfsops), commit with
``ENV MODEL_NAME`` (one plain model) or the config flags as CMD, remove the
base container. The image then serves with no mounts.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from tfsops.errors import TfsopsError
from tfsops.plan import layout as L
from tfsops.plan.container import server_command
from tfsops.plan.expected import check_models
from tfsops.plan.render import render_all, render_models_config
from tfsops.services import Services
from tfsops.spec.model import DeploymentSpec, LatestPolicy, split_image_ref

LABEL_BAKED = "io.tfsops.baked-from"


@dataclass(frozen=True)
class CommitResult:
    image_id: str
    tag: str
    base_image: str
    changes: list[str]
    models: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "image_id": self.image_id,
            "tag": self.tag,
            "base_image": self.base_image,
            "changes": self.changes,
            "models": self.models,
        }


def commit_image(
    spec: DeploymentSpec, tag: str, services: Services, *, base_image: str | None = None
) -> CommitResult:
    from tfsops import inputs

    inputs.image_reference(tag, "--tag")  # before anything is copied
    if base_image is not None:
        inputs.image_reference(base_image, "--image")
    check_models(spec)
    runtime = services.runtime
    image = base_image or spec.image_ref
    if runtime.image_labels(image) is None:
        services.progress(f"image {image} not present: pulling")
        runtime.pull(image, services.progress)
    files = render_all(spec, with_secrets=False)
    # Inside the image every model lives at /models/<name>.
    baked = L.Layout(roots=(), base_paths={m.name: f"{L.MODELS_DIR}/{m.name}" for m in spec.models})
    models_config = render_models_config(spec, baked)
    plain = (
        len(spec.models) == 1
        and isinstance(spec.models[0].policy, LatestPolicy)
        and (
            spec.models[0].policy.latest == 1
            and not spec.models[0].labels
            and files.batching_config is None
            and files.monitoring_config is None
            and not spec.server_args
        )
    )
    if plain:
        changes = [f"ENV MODEL_NAME={spec.models[0].name}"]
    else:
        args = list(server_command(spec, files))
        changes = [f"CMD {json.dumps(args)}"]
    changes.append(f"LABEL {LABEL_BAKED}={spec.name}")
    name = f"tfsops-commit-{spec.name}-{uuid.uuid4().hex[:6]}"
    container_id = runtime.create_plain(image, name, labels={LABEL_BAKED: spec.name})
    try:
        for model in spec.models:
            services.progress(f"copying {model.name} from {model.path}")
            runtime.put_directory(container_id, model.path, L.MODELS_DIR, model.name)
        config = dict(files.files(), **{"models.config": models_config})
        runtime.put_files(container_id, "/etc", "tfsops", config)
        repo, image_tag = split_image_ref(tag)
        services.progress(f"committing {repo}:{image_tag}")
        image_id = runtime.commit(container_id, repo, image_tag, changes)
    except TfsopsError:
        raise
    finally:
        runtime.remove(container_id)
    return CommitResult(
        image_id, f"{repo}:{image_tag}", image, changes, [m.name for m in spec.models]
    )
