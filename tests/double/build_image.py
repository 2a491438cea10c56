"""Build ``tfsops-double:latest``, the TF Serving test double image.

Works without a container registry:

1. the base image (default ``tfsops-debian-base:bookworm``) is made with
   ``debootstrap --variant=minbase`` and ``docker import`` when missing;
2. Python wheels for the image's interpreter are downloaded on the host
   (``pip download`` into ``.cache/double-wheels/``) and copied into the
   build context, so the build itself never touches the network;
3. the image is built through the Docker SDK and labelled with a hash of
   every input; when ``tfsops-double:latest`` already carries that hash the
   build is skipped ("up to date").

Usage: ``python tests/double/build_image.py [--force] [--base IMAGE] [--tag TAG]``
(``nox -s double_image`` runs it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CACHE = REPO / ".cache"
WHEELS = CACHE / "double-wheels"
CONTEXT = CACHE / "double-build"
BASE_REPOSITORY = "tfsops-debian-base"
EXTRA_PROTOS = REPO / "tfsops" / "adapters" / "extra_protos.py"

DEFAULT_BASE = "tfsops-debian-base:bookworm"
DEFAULT_TAG = "tfsops-double:latest"
HASH_LABEL = "io.tfsops.double.inputs-hash"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# tensorflow-cpu (no CUDA libraries) keeps the image small; the serving API
# wheel depends on the "tensorflow" distribution, so it goes in without deps.
REQUIREMENTS = ["tensorflow-cpu==2.21.0"]
NO_DEPS_REQUIREMENTS = ["tensorflow-serving-api==2.21.0"]


def say(message: str) -> None:
    print(f"[double-image] {message}", flush=True)


def docker_client() -> Any:
    import docker

    return docker.from_env(timeout=1800)


def image_or_none(client: Any, name: str) -> Any:
    import docker

    try:
        return client.images.get(name)
    except docker.errors.ImageNotFound:
        return None


# -- base image ------------------------------------------------------------


def make_debian_base(client: Any, name: str) -> None:
    """debootstrap a minimal bookworm with python3 + venv and ``docker import`` it."""
    if shutil.which("debootstrap") is None:
        sys.exit("debootstrap is needed to make the base image: apt-get install debootstrap")
    if os.geteuid() != 0:
        sys.exit("debootstrap needs root: run this script as root (or pass --base IMAGE)")
    repository, _, tag = name.partition(":")
    CACHE.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        say(f"debootstrap bookworm into {rootfs} (a few minutes)")
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates",
                "bookworm",
                str(rootfs),
                DEBIAN_MIRROR,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        # Package caches and docs are dead weight in an image.
        junk_dirs = (
            "var/cache/apt/archives",
            "var/lib/apt/lists",
            "usr/share/doc",
            "usr/share/man",
        )
        for junk in junk_dirs:
            target = rootfs / junk
            if target.is_dir():
                for child in target.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
        for pkgcache in (rootfs / "var/cache/apt").glob("*.bin"):
            pkgcache.unlink()
        tarball = Path(tmp) / "rootfs.tar"
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tarball), "."], check=True
        )
        say(f"docker import -> {name}")
        client.api.import_image_from_file(
            str(tarball),
            repository=repository,
            tag=tag or "latest",
            changes=["ENV LANG=C.UTF-8", 'CMD ["/bin/bash"]'],
        )


def ensure_base(client: Any, base: str) -> Any:
    image = image_or_none(client, base)
    if image is not None:
        return image
    if base.partition(":")[0] == BASE_REPOSITORY:
        make_debian_base(client, base)
    else:
        say(f"pulling {base}")
        client.images.pull(base)
    return client.images.get(base)


def base_python(client: Any, base: str) -> dict[str, str]:
    """The base image's Python tag (cp311) and glibc version, for pip download."""
    probe = (
        "import json, platform, sys; "
        "print(json.dumps({'tag': 'cp%d%d' % sys.version_info[:2], "
        "'version': '%d.%d' % sys.version_info[:2], 'glibc': platform.libc_ver()[1]}))"
    )
    out = client.containers.run(
        base, ["python3", "-c", probe], remove=True, labels={"io.tfsops.test": "build"}
    )
    info: dict[str, str] = json.loads(out.decode().strip().splitlines()[-1])
    return info


# -- wheels ----------------------------------------------------------------


def _platform_args(glibc: str) -> list[str]:
    major, minor = (int(x) for x in (glibc or "2.17").split(".")[:2])
    args = []
    for m in range(minor, 16, -1):
        args += ["--platform", f"manylinux_{major}_{m}_x86_64"]
    return [*args, "--platform", "manylinux2014_x86_64", "--platform", "any"]


def download_wheels(py: dict[str, str]) -> list[Path]:
    """``pip download`` every wheel the image needs; skipped when already complete."""
    key = hashlib.sha256(
        json.dumps([REQUIREMENTS, NO_DEPS_REQUIREMENTS, py], sort_keys=True).encode()
    ).hexdigest()[:16]
    stamp = WHEELS / f".complete-{key}"
    if stamp.exists():
        names = stamp.read_text().split()
        if all((WHEELS / n).is_file() for n in names):
            return [WHEELS / n for n in names]
    if WHEELS.exists():
        shutil.rmtree(WHEELS)
    WHEELS.mkdir(parents=True)
    common = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        py["version"],
        "--abi",
        py["tag"],
        "--abi",
        "abi3",
        "--abi",
        "none",
        *_platform_args(py.get("glibc", "")),
        "--dest",
        str(WHEELS),
    ]
    say(f"pip download for {py['tag']} (glibc {py.get('glibc')}) into {WHEELS}")
    for reqs, extra in ((REQUIREMENTS, []), (NO_DEPS_REQUIREMENTS, ["--no-deps"])):
        proc = subprocess.run(
            [*common, *extra, *reqs],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            print(proc.stdout, file=sys.stderr)
            sys.exit(f"pip download failed for {reqs}")
    wheels = sorted(WHEELS.glob("*.whl"))
    stamp.write_text("\n".join(w.name for w in wheels) + "\n")
    return wheels


# -- context and hash ------------------------------------------------------


def server_sources() -> list[Path]:
    package = HERE / "tfserving_double"
    return sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def inputs_hash(base_id: str, base: str, wheels: list[Path]) -> str:
    h = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        h.update(label.encode() + b"\0" + hashlib.sha256(data).digest())

    add("base", f"{base}@{base_id}".encode())
    add("Dockerfile", (HERE / "Dockerfile").read_bytes())
    for path in sorted((HERE / "image").iterdir()):
        add(f"image/{path.name}", path.read_bytes())
    for path in server_sources():
        add(str(path.relative_to(HERE)), path.read_bytes())
    add("extra_protos.py", EXTRA_PROTOS.read_bytes())
    add("wheels", "\n".join(f"{w.name} {w.stat().st_size}" for w in wheels).encode())
    return h.hexdigest()


def make_context(wheels: list[Path]) -> Path:
    if CONTEXT.exists():
        shutil.rmtree(CONTEXT)
    (CONTEXT / "wheels").mkdir(parents=True)
    shutil.copy2(HERE / "Dockerfile", CONTEXT / "Dockerfile")
    shutil.copytree(HERE / "image", CONTEXT / "image")
    for path in server_sources():
        dest = CONTEXT / path.relative_to(HERE)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    # Copied, not forked: the double parses the same config protos as tfsops.
    shutil.copy2(EXTRA_PROTOS, CONTEXT / "tfserving_double" / "extra_protos.py")
    for wheel in wheels:
        dest = CONTEXT / "wheels" / wheel.name
        try:
            os.link(wheel, dest)  # same file system: no 300 MB copy
        except OSError:
            shutil.copy2(wheel, dest)
    return CONTEXT


def build(client: Any, context: Path, tag: str, base: str, digest: str) -> None:
    stream = client.api.build(
        path=str(context),
        tag=tag,
        buildargs={"BASE": base},
        labels={HASH_LABEL: digest},
        rm=True,
        forcerm=True,
        pull=False,
        decode=True,
    )
    for chunk in stream:
        if "error" in chunk:
            sys.exit(f"docker build failed: {chunk['error'].strip()}")
        text = chunk.get("stream", "")
        if text.startswith("Step ") or "Successfully" in text:
            print("  " + text.strip(), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=os.environ.get("TFSOPS_DOUBLE_BASE", DEFAULT_BASE))
    parser.add_argument("--tag", default=DEFAULT_TAG)
    parser.add_argument("--force", action="store_true", help="build even when up to date")
    parser.add_argument("--cache", type=Path, default=CACHE, help="wheel and context cache folder")
    args = parser.parse_args(argv)
    global WHEELS, CONTEXT
    WHEELS, CONTEXT = args.cache / "double-wheels", args.cache / "double-build"

    started = time.monotonic()
    client = docker_client()
    try:
        base_image = ensure_base(client, args.base)
        py = base_python(client, args.base)
        wheels = download_wheels(py)
        digest = inputs_hash(base_image.id, args.base, wheels)
        current = image_or_none(client, args.tag)
        if (
            current is not None
            and not args.force
            and (current.labels or {}).get(HASH_LABEL) == digest
        ):
            say(f"{args.tag} is up to date ({digest[:12]})")
        else:
            say(f"building {args.tag} from {args.base} ({len(wheels)} wheels)")
            context = make_context(wheels)
            build(client, context, args.tag, args.base, digest)
            shutil.rmtree(context, ignore_errors=True)
            if current is not None:
                old = image_or_none(client, current.id)
                if old is not None and not old.tags:
                    import docker

                    try:
                        client.images.remove(old.id, noprune=False)  # the replaced image
                    except docker.errors.APIError as exc:
                        say(f"could not remove the replaced image {old.id[:19]}: {exc}")
        image = client.images.get(args.tag)
        size_mb = image.attrs["Size"] / 1e6
        say(f"done in {time.monotonic() - started:.1f} s; {args.tag} size {size_mb:.0f} MB")
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
