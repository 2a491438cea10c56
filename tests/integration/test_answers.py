"""Ready means it answers: smoke requests gate deploy/publish/add-model, warmup files run at load,
predict with real inputs. The real tfsops executable, the real engine, the serving double."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest

from tests.integration.cli import Tfsops
from tests.integration.conftest import write_spec

pytestmark = [pytest.mark.docker, pytest.mark.double, pytest.mark.slow]


def spec_text(
    name: str, image: str, ports: tuple[int, int], models: str, roots: tuple[Path, ...] = ()
) -> str:
    return (
        f"name: {name}\nimage: {image}\n"
        f"ports: {{rest: {ports[0]}, grpc: {ports[1]}}}\n"
        "server_args: {max_num_load_retries: 0}\n"
        + (f"model_roots: [{', '.join(map(str, roots))}]\n" if roots else "")
        + f"models:\n{models}"
    )


def versions_state(tfsops: Tfsops, model: str) -> dict[int, str]:
    run = tfsops("--json", "health", model)
    report = run.json["data"]["models"][0]
    return {v["version"]: v["state"] for v in report["versions"]}


def test_a_model_that_answers_and_one_that_does_not(
    tfsops: Tfsops,
    name: str,
    ports: tuple[int, int],
    models: Path,
    answer_models: Path,
    serving_image: str,
    tmp_path: Path,
) -> None:
    cat = answer_models / "cat.jpg"
    encoded = base64.b64encode(cat.read_bytes()).decode()
    (tfsops.cwd / "cat-request.json").write_text(
        json.dumps({"inputs": {"image_bytes": [{"b64": encoded}]}})
    )
    resnet = tmp_path / "resnet"
    shutil.copytree(answer_models / "jpeg_classifier", resnet)
    a = models / "half_plus_two"
    (tfsops.cwd / "warm.json").write_text(
        json.dumps([{"instances": [1.0]}, {"inputs": [2.0, 3.0]}])
    )
    run = tfsops("--json", "warmup", str(a), "--version", "2", "--from", "warm.json")
    assert run.code == 0, run
    write_spec(
        tfsops.cwd,
        spec_text(
            name,
            serving_image,
            ports,
            f"""  - name: a
    path: {a}
    smoke:
      - request: {{"instances": [1.0, 2.0]}}
        expect: {{"predictions": [2.5, 3.0]}}
  - name: resnet
    path: {resnet}
    smoke:
      - request: "@cat-request.json"
""",
            roots=(answer_models,),  # the model add-model brings in later is hot-loaded
        ),
    )
    try:
        run = tfsops("--json", "apply", "--timeout", "120")
        assert run.code == 0, run
        logs = tfsops("logs", "--tail", "all").stdout
        assert "Starting to read warmup data for model at" in logs
        assert "Number of warmup records read: 2." in logs

        run = tfsops("--json", "health", "--smoke")
        assert run.code == 0, run
        assert all(m["status"] == "ok" for m in run.json["data"]["models"])

        # predict with an image, no JSON written by hand
        run = tfsops("--json", "predict", "resnet", "--image", str(cat), "--top-k", "5")
        assert run.code == 0, run
        [probs] = run.json["data"]["response"]["outputs"]
        assert len(probs) == 10 and abs(sum(probs) - 1.0) < 1e-4
        [top] = run.json["data"]["top_k"]
        assert [e["score"] for e in top["top"]] == sorted(probs, reverse=True)[:5]
        text = tfsops("predict", "resnet", "--image", str(cat), "--top-k", "5").stdout
        assert text.splitlines()[0].split() == ["#", "rank", "class", "score"]
        assert len(text.splitlines()) == 6

        # a 5 MB request body from a file
        xs = [1.25] * 900_000
        big = tmp_path / "big.json"
        big.write_text(json.dumps({"inputs": {"x": xs}}))
        assert big.stat().st_size > 5_000_000
        run = tfsops("--json", "predict", "a", "--inputs", f"@{big}", "--timeout", "120")
        assert run.code == 0, run.stderr[-2000:]
        outputs = run.json["data"]["response"]["outputs"]
        assert len(outputs) == 900_000 and outputs[0] == 2.625

        # publish a version that loads but fails every request: exit 5, v2 keeps serving
        run = tfsops("--json", "publish", "a", str(answer_models / "fails_at_run_time" / "1"))
        assert run.code == 5, run
        message = run.json["error"]["message"]
        assert "smoke request (models.a.smoke[0]) to version 3 answered unexpectedly" in message
        assert "expected 2.5" in message
        assert versions_state(tfsops, "a").get(2) == "AVAILABLE"
        run = tfsops("--json", "predict", "a", "--instances", "[1.0]")
        assert run.code == 0, run
        assert run.json["data"]["response"]["predictions"] == [2.5]
        assert sorted(p.name for p in a.iterdir() if not p.name.startswith(".")) == ["1", "2"]

        # add-model of it: exit 5, the reload rolls back, a and resnet still answer
        spec_before = (tfsops.cwd / "tfsops.yaml").read_text()
        run = tfsops("--json", "add-model", "c", "--path", str(answer_models / "fails_at_run_time"))
        assert run.code == 5, run
        assert (tfsops.cwd / "tfsops.yaml").read_text() == spec_before
        # (a new mount means a new container: the previous one is restarted)
        health = tfsops("health", "--smoke", "--wait", "--timeout", "120")
        assert health.code == 0, health
    finally:
        tfsops("down", "--volumes")


def test_deploy_of_a_model_that_fails_at_run_time(
    tfsops: Tfsops,
    name: str,
    ports: tuple[int, int],
    answer_models: Path,
    serving_image: str,
) -> None:
    deploy = (
        "--json",
        "deploy",
        name,
        "--model-path",
        str(answer_models / "fails_at_run_time"),
        "--image",
        serving_image,
        "--rest-port",
        str(ports[0]),
        "--grpc-port",
        str(ports[1]),
        "--timeout",
        "120",
    )
    try:
        run = tfsops(*deploy)
        assert run.code == 5, run
        message = run.json["error"]["message"]
        assert "smoke request" in message and "x must be positive" in message
    finally:
        tfsops("down", "--volumes")


def test_a_failing_warmup_record_fails_the_load(
    tfsops: Tfsops,
    name: str,
    ports: tuple[int, int],
    answer_models: Path,
    serving_image: str,
    tmp_path: Path,
) -> None:
    base = tmp_path / "recip"
    shutil.copytree(answer_models / "fails_at_run_time", base)
    (tfsops.cwd / "warm.json").write_text(json.dumps([{"instances": [0.0]}]))
    assert tfsops("warmup", str(base), "--from", "warm.json").code == 0
    write_spec(
        tfsops.cwd,
        spec_text(
            name, serving_image, ports, f"  - name: recip\n    path: {base}\n    smoke: false\n"
        ),
    )
    try:
        run = tfsops("--json", "apply", "--timeout", "120")
        assert run.code == 5, run
        assert "x must be positive" in run.json["error"]["message"]
        assert "Failed to start server" in run.json["error"]["message"]  # as upstream: exit
    finally:
        tfsops("down", "--volumes")
