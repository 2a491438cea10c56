"""Bring a three-node test swarm up or down by hand (``nox -s cluster -- up|down|list``).

``up`` prints the manager's DOCKER_HOST; the cluster stays until ``down``.
"""

from __future__ import annotations

import argparse
import json
import sys

from tests.cluster.cluster import KEEP, LABEL, LABEL_PID, remove_by_label, up


def main(argv: list[str] | None = None) -> int:
    import docker

    parser = argparse.ArgumentParser(prog="python -m tests.cluster")
    parser.add_argument("action", choices=["up", "down", "list"])
    parser.add_argument(
        "cluster_id", nargs="?", help="down: which cluster (default: those brought up by hand)"
    )
    parser.add_argument("--image", default="tfsops-double:latest", help="serving image to seed")
    args = parser.parse_args(argv)
    host = docker.from_env(timeout=600)
    if args.action == "up":
        cluster = up(host, args.image, keep=True)
        print(json.dumps({"cluster": cluster.id, "figures": cluster.figures}, indent=2))
        for node in cluster.nodes:
            print(f"{node.role:8} {node.name}: DOCKER_HOST={node.url}")
        print(f"export DOCKER_HOST={cluster.manager.url}")
        print(f"shared model folder (same path on every node): {cluster.shared}")
        return 0
    found = host.containers.list(all=True, filters={"label": LABEL})
    ids = sorted({c.labels[LABEL] for c in found})
    by_hand = sorted({c.labels[LABEL] for c in found if c.labels.get(LABEL_PID) == KEEP})
    if args.action == "list":
        for cluster_id in ids:
            found = host.containers.list(all=True, filters={"label": f"{LABEL}={cluster_id}"})
            owner = found[0].labels.get(LABEL_PID, "?") if found else "?"
            print(f"{cluster_id}: {len(found)} container(s), owner {owner}")
        return 0
    left = []
    # Without an id: the clusters brought up by hand, never a test run's.
    for cluster_id in [args.cluster_id] if args.cluster_id else by_hand:
        left += remove_by_label(host, cluster_id)
        print(f"removed cluster {cluster_id}")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
