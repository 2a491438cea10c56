"""Does a model that loads also answer? Static checks, smoke requests, warmup files, predict inputs.

Models are real exports made with TensorFlow (``answer_models``); TensorFlow's
own readers (in a child process) are the reference for the file formats.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cli import Tfsops
from tests.unit.fakes import FakeServing
from tfsops.errors import InvalidInput, OperationFailed
from tfsops.health import SMOKE, check_health
from tfsops.ports import ExpectedModel
from tfsops.savedmodel.bundle import checkpoint_keys, snappy_decompress
from tfsops.savedmodel.validate import check_model_dir
from tfsops.smoke import SmokePlan, SmokeRequest, compare, generated_request
from tfsops.warmup import crc32c, masked_crc32c, read_tfrecords, tfrecord_bytes


def tf_child(code: str, *args: str) -> Any:
    """Run ``code`` with TensorFlow in a child process; it prints one JSON value."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def cli(tmp_path: Path) -> Tfsops:
    return Tfsops(tmp_path / "state", tmp_path)


def spec_for(folder: Path, model: Path, extra: str = "", name: str = "answers") -> Path:
    path = folder / "tfsops.yaml"
    path.write_text(f"name: {name}\nmodels:\n  - name: m\n    path: {model}\n{extra}")
    return path


# -- the TensorBundle index reader -----------------------------------------------------


_LIST_VARIABLES = (
    "import json, sys, tensorflow as tf\n"
    "print(json.dumps([sorted(n for n, _ in tf.train.list_variables(p[: -len('.index')]))"
    " for p in sys.argv[1:]]))"
)


def assert_keys_match_tensorflow(indexes: list[Path]) -> None:
    expected = tf_child(_LIST_VARIABLES, *map(str, indexes))
    for index, names in zip(indexes, expected, strict=True):
        assert names  # not vacuous
        assert sorted(checkpoint_keys(index)) == names, index


def test_index_keys_match_tensorflow(answer_models: Path) -> None:
    assert_keys_match_tensorflow(
        [
            answer_models / "keras_good/1/variables/variables.index",
            answer_models / "keras_broken/1/variables/variables.index",
            answer_models / "jpeg_classifier/1/variables/variables.index",
        ]
    )


def test_snappy_index_keys_match_tensorflow(upstream_testdata: Path) -> None:
    # A TF1-era bundle whose blocks are snappy-compressed.
    version = upstream_testdata / "saved_model_half_plus_two_cpu" / "00000123"
    assert_keys_match_tensorflow([version / "variables" / "variables.index"])


def test_snappy_copies_overlap() -> None:
    # "abcabcabcab": literal "abc" then a 1-byte-offset copy of 8 from 3 back
    literal = bytes([(3 - 1) << 2]) + b"abc"
    copy = bytes([1 | ((8 - 4) << 2), 3])  # kind 1: length 8, offset 3
    data = bytes([11]) + literal + copy
    assert snappy_decompress(data) == b"abcabcabcab"


def test_corrupt_index_is_invalid_input(answer_models: Path, tmp_path: Path) -> None:
    dest = tmp_path / "m" / "1"
    shutil.copytree(answer_models / "keras_good" / "1", dest)
    index = dest / "variables" / "variables.index"
    index.write_bytes(index.read_bytes()[:-5])
    report = check_model_dir(tmp_path / "m")
    assert not report.ok
    assert "not a readable TensorBundle index" in report.problems[0]


# -- static checks: loads, but cannot answer ----------------------------------------------


def test_validate_refuses_the_broken_keras_export(
    cli: Tfsops, answer_models: Path, tmp_path: Path
) -> None:
    spec_for(tmp_path, answer_models / "keras_broken")
    run = cli("--json", "validate")
    assert run.code == 3, run
    error = run.json["error"]
    assert "moving_mean" in error["message"]
    assert "never restored" in error["message"]
    assert "model.export" in error["message"]  # the hint for the Keras 3 case

    spec_for(tmp_path, answer_models / "keras_good")
    run = cli("--json", "validate")
    assert run.code == 0, run


def test_broken_keras_deploy_never_reaches_docker(
    cli: Tfsops, answer_models: Path, tmp_path: Path
) -> None:
    # An engine address nothing listens on: reaching Docker would be exit 4.
    cli.env["DOCKER_HOST"] = "tcp://127.0.0.1:9"
    run = cli("deploy", "broken", "--model-path", str(answer_models / "keras_broken"))
    assert run.code == 3, run
    assert "moving_mean" in run.stderr


def test_publish_refuses_the_broken_keras_export(
    cli: Tfsops, answer_models: Path, model_copy: Any, tmp_path: Path
) -> None:
    base = model_copy("half_plus_two")
    spec_for(tmp_path, base)
    run = cli("publish", "m", str(answer_models / "keras_broken" / "1"))
    assert run.code == 3, run
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]  # nothing copied


def test_missing_signature_tensor_and_asset(answer_models: Path, tmp_path: Path) -> None:
    from tfsops.adapters import protos

    dest = tmp_path / "m" / "1"
    shutil.copytree(answer_models / "keras_good" / "1", dest)
    pb = dest / "saved_model.pb"
    sm = protos.saved_model_pb2().SavedModel.FromString(pb.read_bytes())
    mg = sm.meta_graphs[0]
    sig = mg.signature_def["serving_default"]
    key = next(iter(sig.outputs))
    sig.outputs[key].name = "no_such_node:0"
    mg.asset_file_def.add(filename="vocab.txt").tensor_info.name = "Const:0"
    pb.write_bytes(sm.SerializeToString())
    problems = "\n".join(check_model_dir(tmp_path / "m").problems)
    assert "'no_such_node:0', which is not in the graph" in problems
    assert "vocab.txt (used by the graph) is missing" in problems


# -- smoke requests -----------------------------------------------------------------------


def test_generated_request_follows_the_signature(answer_models: Path) -> None:
    from tfsops.savedmodel.inspect import inspect_version

    meta = inspect_version(answer_models / "keras_good" / "1").meta_graph(("serve",))
    assert meta is not None
    body = generated_request(meta.signature("serving_default"))  # type: ignore[arg-type]
    [(_name, value)] = body["inputs"].items()
    assert value == [[0.0, 0.0, 0.0, 0.0]]  # batch 1, shape [-1, 4], DT_FLOAT zeros
    jpeg = inspect_version(answer_models / "jpeg_classifier" / "1").meta_graph(("serve",))
    assert jpeg is not None
    assert generated_request(jpeg.signature("serving_default")) == {  # type: ignore[arg-type]
        "inputs": {"image_bytes": [""]}
    }


def test_compare_with_tolerance() -> None:
    assert compare([[1.0, 2.0]], [[1.0, 2.0000001]], 1e-6) is None
    assert "expected 2.5" in (compare([[1.0, 2.0]], [[1.0, 2.5]], 1e-3) or "")
    assert compare({"y": [1, 2]}, {"y": [1, 2]}, 0) is None
    assert "no 'z'" in (compare({"y": 1}, {"z": 1}, 0) or "")
    assert compare(["a"], ["b"], 0) is not None


def test_a_failing_smoke_request_fails_health(models_dir: Path) -> None:
    fake = FakeServing()
    fake.add_model("hp", (1,))

    def broken(body: Any) -> dict[str, Any]:
        raise OperationFailed("Could not find variable dense/kernel")

    fake.models["hp"].predictor = broken
    plan = SmokePlan(models_dir / "half_plus_two")
    report = check_health(fake, [ExpectedModel("hp", frozenset({1}), smoke=plan)])
    [model] = report.models
    assert model.status == SMOKE
    assert "Could not find variable dense/kernel" in (model.problem or "")
    error = report.error()
    assert isinstance(error, OperationFailed) and error.exit_code == 5
    assert "smoke" in error.message

    # An expected answer that differs is a failure too; the right one passes.
    fake.models["hp"].predictor = lambda body: {"predictions": [2.5]}
    wrong = SmokePlan(
        models_dir / "half_plus_two",
        (SmokeRequest({"instances": [1.0]}, "req", expect={"predictions": [9.0]}),),
    )
    report = check_health(fake, [ExpectedModel("hp", frozenset({1}), smoke=wrong)])
    assert report.models[0].status == SMOKE
    assert "expected 9.0" in (report.models[0].problem or "")
    right = SmokePlan(
        models_dir / "half_plus_two",
        (SmokeRequest({"instances": [1.0]}, "req", expect=[2.5]),),
    )
    report = check_health(fake, [ExpectedModel("hp", frozenset({1}), smoke=right)])
    assert report.ok, report.describe()


@pytest.mark.parametrize(
    ("request_text", "needle"),
    [
        ("{not json", "not valid JSON"),
        ('{"inputs": {"nope": [1.0]}}', "input 'nope' is not in signature 'serving_default'"),
        ('{"instances": ["a", "b"]}', "where DT_FLOAT (a number) is expected"),
    ],
)
def test_bad_smoke_file_is_exit_3(
    cli: Tfsops, models_dir: Path, tmp_path: Path, request_text: str, needle: str
) -> None:
    (tmp_path / "smoke.json").write_text(request_text)
    spec_for(tmp_path, models_dir / "half_plus_two", "    smoke:\n      - request: '@smoke.json'\n")
    run = cli("--json", "validate")
    assert run.code == 3, run
    message = run.json["error"]["message"]
    assert needle in message
    assert "smoke.json" in message


# -- warmup files -------------------------------------------------------------------------


def test_crc32c_known_values() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert masked_crc32c(b"") == ((0 >> 15 | 0 << 17) + 0xA282EAD8) & 0xFFFFFFFF
    records = [b"", b"x" * 1000, b"\x00\xff"]
    assert list(read_tfrecords(tfrecord_bytes(records))) == records


def test_warmup_file_reads_back_with_tensorflow(
    cli: Tfsops, model_copy: Any, tmp_path: Path
) -> None:
    base = model_copy("half_plus_two")
    requests = [{"instances": [1.0, 2.0]}, {"inputs": {"x": [5.0]}}, {"inputs": [3.0]}]
    (tmp_path / "requests.json").write_text(json.dumps(requests))
    run = cli("--json", "warmup", str(base), "--version", "2", "--from", "requests.json")
    assert run.code == 0, run
    [written] = run.json["data"]["written"]
    assert written["records"] == 3
    path = base / "2" / "assets.extra" / "tf_serving_warmup_requests"
    assert written["path"] == str(path)
    assert not (base / "1" / "assets.extra").exists()

    code = (
        "import json, sys, tensorflow as tf\n"
        "from tensorflow_serving.apis import prediction_log_pb2\n"
        "out = []\n"
        "for raw in tf.data.TFRecordDataset(sys.argv[1]):\n"
        "    log = prediction_log_pb2.PredictionLog.FromString(raw.numpy())\n"
        "    req = log.predict_log.request\n"
        "    out.append([req.model_spec.name, req.model_spec.signature_name,\n"
        "                {k: tf.make_ndarray(v).tolist() for k, v in req.inputs.items()}])\n"
        "print(json.dumps(out))"
    )
    got = tf_child(code, str(path))
    assert got == [
        ["half_plus_two", "serving_default", {"x": [1.0, 2.0]}],
        ["half_plus_two", "serving_default", {"x": [5.0]}],
        ["half_plus_two", "serving_default", {"x": [3.0]}],
    ]

    run = cli("--json", "inspect", str(base), "--version", "2")
    assert run.code == 0, run
    [version] = run.json["data"]["versions"]
    assert [r["inputs"] for r in version["warmup"]] == [{"x": [2]}, {"x": [1]}, {"x": [1]}]
    assert cli("inspect", str(base)).stdout.count("predict_log serving_default") == 3


def test_warmup_source_that_does_not_match_is_exit_3(
    cli: Tfsops, model_copy: Any, tmp_path: Path
) -> None:
    base = model_copy("half_plus_two")
    (tmp_path / "bad.json").write_text(json.dumps([{"inputs": {"x": [1.0]}}, {"inputs": {"z": 1}}]))
    run = cli("--json", "warmup", str(base), "--from", "bad.json")
    assert run.code == 3, run
    assert "input 'z' is not in signature" in run.json["error"]["message"]
    assert "bad.json request [1]" in run.json["error"]["message"]
    assert not (base / "2" / "assets.extra").exists()  # nothing written
    (tmp_path / "bad.json").write_text(json.dumps([{"inputs": {"x": ["text"]}}]))
    assert cli("warmup", str(base), "--from", "bad.json").code == 3


def test_warmup_from_the_spec(cli: Tfsops, model_copy: Any, tmp_path: Path) -> None:
    base = model_copy("half_plus_two")
    (tmp_path / "warm.json").write_text(json.dumps({"instances": [1.0]}))
    spec_for(tmp_path, base, "    warmup: warm.json\n")
    run = cli("--json", "warmup", "m")
    assert run.code == 0, run
    assert [w["version"] for w in run.json["data"]["written"]] == [2]  # the served one


# -- predict inputs -----------------------------------------------------------------------


def test_image_body_and_top_k(answer_models: Path) -> None:
    import base64

    from tfsops.predict_inputs import body_from_files, top_k
    from tfsops.savedmodel.inspect import inspect_version

    meta = inspect_version(answer_models / "jpeg_classifier" / "1").meta_graph(("serve",))
    assert meta is not None
    sig = meta.signature("serving_default")
    assert sig is not None
    cat = answer_models / "cat.jpg"
    body = body_from_files(sig, [str(cat), str(cat)], [])
    encoded = base64.b64encode(cat.read_bytes()).decode()
    assert body == {"inputs": {"image_bytes": [{"b64": encoded}, {"b64": encoded}]}}
    assert body_from_files(sig, [], [f"image_bytes=@{cat}"]) == {
        "inputs": {"image_bytes": [{"b64": encoded}]}
    }
    with pytest.raises(InvalidInput, match="has no input 'x'"):
        body_from_files(sig, [], ["x=1"])
    answer = {"predictions": [[0.1, 0.5, 0.2, 0.2], [0.7, 0.1, 0.1, 0.1]]}
    top = top_k(answer, 2)
    assert [[e["class"] for e in r["top"]] for r in top] == [[1, 2], [0, 1]]


# -- swarm: the replica probe sends smoke requests ----------------------------------------


def test_replica_probe_posts_smoke_requests(models_dir: Path) -> None:
    """The probe's bash script against a local port-0 server, its answers replayed."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tfsops.adapters.docker_swarm import parse_probe_output, smoke_probe_paths, snapshot_client
    from tfsops.swarm.plan import PROBE_SCRIPT

    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "body": body})
            xs = body.get("instances") or body["inputs"]["x"]
            payload = json.dumps({"predictions": [0.5 * x + 2 for x in xs]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        good = SmokePlan(models_dir / "half_plus_two")  # generated from the signature
        bad = SmokePlan(
            models_dir / "half_plus_two",
            (SmokeRequest({"instances": [1.0]}, "req", expect=[9.0]),),
        )
        paths = smoke_probe_paths("hp", [1, 2], good) + smoke_probe_paths("hp", [2], bad)
        proc = subprocess.run(
            [
                "bash",
                "-c",
                PROBE_SCRIPT,
                "probe",
                str(server.server_address[1]),
                "5",
                "127.0.0.1",
                "--",
                *paths,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        server.shutdown()
    assert sorted(s["path"] for s in seen) == [
        "/v1/models/hp/versions/1:predict",
        "/v1/models/hp/versions/2:predict",
        "/v1/models/hp/versions/2:predict",
    ]
    assert {"inputs": {"x": [0.0]}} in [s["body"] for s in seen]
    client = snapshot_client("127.0.0.1", parse_probe_output(proc.stdout)["127.0.0.1"])
    assert good.check(client, "hp", [1, 2], timeout=5) is None
    problem = bad.check(client, "hp", [2], timeout=5) or ""
    assert "to version 2 answered unexpectedly" in problem and "expected 9.0" in problem
