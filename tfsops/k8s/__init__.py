"""Kubernetes manifests rendered from a spec (render only: tfsops does not talk to a cluster)."""

from __future__ import annotations
