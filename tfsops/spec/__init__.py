"""The deployment spec: pydantic models, loading, defaults."""

from tfsops.spec.model import DeploymentSpec, ModelSpec

__all__ = ["DeploymentSpec", "ModelSpec"]
