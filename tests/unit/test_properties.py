"""Property-based tests (hypothesis): bad input never gets past the spec loader as anything
but a refusal (``SpecError`` / ``InvalidInput``, exit 3), and whatever is accepted renders
into files that TF Serving's own protos parse back to exactly what the spec said.

Generated inputs: arbitrary text (YAML and TOML), YAML pieced together from spec-like
fragments, spec-shaped data with hostile values (model names such as ``../x``, ``a/b``,
quotes, newlines and braces that would break a text proto; hostile paths; huge and
negative numbers and ports), and hostile names pushed straight into the renderer. The
CLI is run on a sample of hostile spec files: exit 3, no traceback, nothing written.

How many cases ran is printed in the terminal summary (see ``tests/unit/conftest.py``).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.unit.conftest import PROPERTY_CASES
from tfsops.adapters.extra_protos import BatchingParameters
from tfsops.adapters.protos import model_server_config_pb2, text_format
from tfsops.cli.app import app
from tfsops.errors import ExitCode, InvalidInput, SpecError, TfsopsError
from tfsops.k8s.render import render_k8s
from tfsops.plan.container import container_plan
from tfsops.plan.expected import check_models, expected_models
from tfsops.plan.layout import MODELS_DIR, layout_for
from tfsops.plan.render import render_all, render_models_config, render_ssl_config
from tfsops.services import endpoint_for
from tfsops.spec.load import parse_text, spec_from_data
from tfsops.spec.model import (
    LABEL_PATTERN,
    NAME_PATTERN,
    SERVER_FLAGS,
    DeploymentSpec,
    LatestPolicy,
    ModelSpec,
)
from tfsops.swarm.plan import render_swarm

# Relative paths resolve against a folder that does not exist: nothing generated can
# point at real models, and check_models must still answer with exit 3.
BASE = Path("/nonexistent-tfsops-property-base")
INT64_MAX = 2**63 - 1

PROPS = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def record(prop: str, outcome: str) -> None:
    PROPERTY_CASES[f"{prop}:{outcome}"] += 1


# ---------------------------------------------------------------------------
# strategies

HOSTILE_NAMES = [
    "../x",
    "a/b",
    "/abs",
    "..",
    ".",
    "",
    " ",
    " a",
    'a"b',
    "a'b",
    "a\nb",
    "a\n",
    "a\r",
    "a\tb",
    "a}b",
    "{",
    "}",
    'x" } model_config_list { config { name: "evil',
    "x\\",
    "a\\b",
    "a\x00b",
    "a b",
    "ä",
    "模型",
    "a:b",
    "a?b",
    "a#b",
    "a%2Fb",
    "a&b",
    "$(id)",
    "`id`",
    "x" * 63,
    "x" * 64,
    "-a",
    "_a",
    ".hidden",
    "a..",
    "\u202ea",
    "\ufeffa",
    "a\u2028b",
    "0",
    "9" * 30,
    "a*b",
    "a|b",
]
HOSTILE_PATHS = [
    "/",
    "",
    " ",
    ".",
    "..",
    "../../../../etc",
    "/etc/passwd",
    "a\nb",
    'q"uote',
    "/m/{x}",
    "/m/}",
    "~",
    "~root/x",
    "~nobody-such-user/x",
    "/m/a\x00b",
    "C:\\models",
    "/m/" + "d" * 300,
    "/m/ü/模型",
    "/m/a b",
    "/m/a:b,ro",
    "//",
    "/m/./a/../b",
    "-v",
    "$(reboot)",
    "`id`",
    "/m/a;rm -rf /",
    "/m/a\\b",
    "/proc/self/root/m",
]
HOSTILE_LABELS = ["", "a b", "a-b", "a.b", "../x", 'a"b', "a\n", "ü", "x" * 64, "_", "stable"]
NUMBERS = [0, -1, 1, 65535, 65536, 2**31 - 1, 2**31, INT64_MAX, 2**63, 2**64, -(2**63), 10**30]

ints = st.one_of(st.sampled_from(NUMBERS), st.integers(min_value=-(2**70), max_value=2**70))
texts = st.text(max_size=40)
scalars = st.one_of(st.none(), st.booleans(), ints, st.floats(), texts)
names = st.one_of(
    st.sampled_from(HOSTILE_NAMES), texts, st.from_regex(NAME_PATTERN, fullmatch=True)
)
paths = st.one_of(
    st.sampled_from(HOSTILE_PATHS),
    texts,
    st.lists(st.sampled_from(["..", ".", "m", "a b", "ü", "", "x\n", '"', "{}"]), max_size=5).map(
        "/".join
    ),
)
label_keys = st.one_of(
    st.sampled_from(HOSTILE_LABELS),
    st.text(max_size=10),
    st.from_regex(LABEL_PATTERN, fullmatch=True),
)
policies = st.one_of(
    st.sampled_from(["latest", "all", "bogus", None, {"all": {}}, {"all": {"x": 1}}, {}]),
    st.lists(ints, max_size=4),
    st.fixed_dictionaries({"latest": st.one_of(ints, scalars)}),
    st.fixed_dictionaries({"specific": st.one_of(st.lists(ints, max_size=4), scalars)}),
    st.dictionaries(st.text(max_size=8), scalars, max_size=3),
)
models = st.fixed_dictionaries(
    {"name": names, "path": paths},
    optional={
        "policy": policies,
        "labels": st.one_of(
            st.dictionaries(label_keys, st.one_of(ints, scalars), max_size=3), scalars
        ),
        "bogus": scalars,
    },
)
ports = st.fixed_dictionaries(
    {},
    optional={
        "rest": st.one_of(ints, scalars),
        "grpc": st.one_of(ints, scalars),
        "bind": st.one_of(
            st.sampled_from(
                ["127.0.0.1", "0.0.0.0", "::", "::1", "localhost", "999.1.1.1", "", "1.2.3.4; id"]
            ),
            texts,
        ),
    },
)
batching = st.fixed_dictionaries(
    {},
    optional={
        "enabled": st.one_of(st.booleans(), scalars),
        "max_batch_size": ints,
        "batch_timeout_micros": ints,
        "max_enqueued_batches": ints,
        "num_batch_threads": ints,
        "max_execution_batch_size": ints,
        "allowed_batch_sizes": st.lists(ints, max_size=4),
        "enable_large_batch_splitting": scalars,
        "pad_variable_length_inputs": scalars,
    },
)
flag_names = st.one_of(
    st.sampled_from(sorted(SERVER_FLAGS)),
    st.sampled_from(["port", "model_config_file", "ssl_config_file", "bogus", "a b", "A", ""]),
)
spec_data = st.fixed_dictionaries(
    {"name": names, "models": st.one_of(st.lists(models, max_size=4), scalars)},
    optional={
        "ports": st.one_of(ports, scalars),
        "batching": st.one_of(batching, scalars),
        "monitoring": st.fixed_dictionaries(
            {"prometheus": st.one_of(st.booleans(), scalars)},
            optional={"path": st.one_of(st.sampled_from(["/m", "/a b", "/x\n", "rel"]), texts)},
        ),
        "resources": st.fixed_dictionaries(
            {},
            optional={
                "cpus": st.one_of(st.floats(), ints),
                "memory": st.one_of(
                    st.sampled_from(["1g", "9" * 400 + "g", "-1g", "0", "1e9g", "512m", "5m"]),
                    texts,
                ),
            },
        ),
        "server_args": st.dictionaries(flag_names, scalars, max_size=3),
        "restart": st.one_of(
            st.sampled_from(["no", "always", "unless-stopped", "sometimes"]), scalars
        ),
        "image": st.one_of(st.sampled_from(["tensorflow/serving", "A:b", "x;id", "a:1:2"]), texts),
        "version": st.one_of(st.sampled_from(["2.19.0", "latest", "../x", ""]), texts),
        "tls": st.fixed_dictionaries(
            {"cert": paths, "key": paths}, optional={"server_name": texts}
        ),
        "model_roots": st.lists(paths, max_size=3),
        "gpu": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "devices": st.one_of(st.just("all"), st.lists(ints, max_size=3), scalars),
                    "memory_fraction": st.one_of(st.floats(), scalars),
                },
            ),
            scalars,
        ),
        "target": st.one_of(st.sampled_from(["docker", "swarm", "k8s"]), scalars),
        "bogus_key": scalars,
    },
)
# Mostly valid specs (so that many are accepted and rendered), each with at most one
# hostile change. Paths may hold any character but NUL: quotes, braces, newlines, unicode.
valid_names = st.from_regex(NAME_PATTERN, fullmatch=True)
path_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/")
valid_paths = st.one_of(
    st.sampled_from([p for p in HOSTILE_PATHS if p.strip() and "\x00" not in p]),
    st.lists(st.text(path_chars, min_size=1, max_size=12), min_size=1, max_size=4).map(
        lambda parts: "/" + "/".join(parts)
    ),
)


@st.composite
def valid_models(draw: Any) -> list[dict[str, Any]]:
    names_ = draw(st.lists(valid_names, min_size=1, max_size=4, unique=True))
    out = []
    for name in names_:
        kind = draw(st.sampled_from(["latest", "all", "specific", "shorthand", None]))
        entry: dict[str, Any] = {"name": name, "path": draw(valid_paths)}
        served: list[int] | None = None
        if kind == "latest":
            entry["policy"] = {"latest": draw(st.integers(1, 1000))}
        elif kind == "all":
            entry["policy"] = {"all": {}}
        elif kind == "specific":
            served = draw(st.lists(st.integers(0, INT64_MAX), min_size=1, max_size=4, unique=True))
            entry["policy"] = {"specific": served}
        elif kind == "shorthand":
            entry["policy"] = draw(st.sampled_from(["latest", "all"]))
        labels = draw(
            st.lists(st.from_regex(LABEL_PATTERN, fullmatch=True), max_size=3, unique=True)
        )
        if labels:
            entry["labels"] = {
                k: (served[i % len(served)] if served else draw(st.integers(0, INT64_MAX)))
                for i, k in enumerate(labels)
            }
        out.append(entry)
    return out


@st.composite
def mostly_valid_specs(draw: Any) -> dict[str, Any]:
    rest, grpc = draw(st.lists(st.integers(1, 65535), min_size=2, max_size=2, unique=True))
    data: dict[str, Any] = {
        "name": draw(valid_names),
        "models": draw(valid_models()),
        "ports": {
            "rest": rest,
            "grpc": grpc,
            "bind": draw(st.sampled_from(["127.0.0.1", "0.0.0.0", "::1"])),
        },
    }
    if draw(st.booleans()):
        size = draw(st.integers(1, INT64_MAX))
        data["batching"] = {
            "max_batch_size": size,
            "batch_timeout_micros": draw(st.integers(0, INT64_MAX)),
            "num_batch_threads": draw(st.integers(1, INT64_MAX)),
            "allowed_batch_sizes": [size],
        }
    if draw(st.booleans()):
        data["monitoring"] = {"prometheus": True}
    if draw(st.booleans()):
        data["model_roots"] = draw(st.lists(valid_paths, max_size=2))
    if draw(st.booleans()):
        data["server_args"] = {
            "tensorflow_intra_op_parallelism": draw(st.integers(-INT64_MAX, INT64_MAX))
        }
    # at most one hostile change, anywhere
    change = draw(
        st.sampled_from(["none", "name", "model name", "path", "port", "label", "key", "number"])
    )
    model = data["models"][0]
    if change == "name":
        data["name"] = draw(st.sampled_from(HOSTILE_NAMES))
    elif change == "model name":
        model["name"] = draw(st.sampled_from(HOSTILE_NAMES))
    elif change == "path":
        model["path"] = draw(st.sampled_from(HOSTILE_PATHS))
    elif change == "port":
        data["ports"][draw(st.sampled_from(["rest", "grpc"]))] = draw(st.sampled_from(NUMBERS))
    elif change == "label":
        model["labels"] = {draw(st.sampled_from(HOSTILE_LABELS)): draw(st.sampled_from(NUMBERS))}
    elif change == "key":
        data[draw(st.sampled_from(["bogus", "models ", "Name"]))] = draw(scalars)
    elif change == "number":
        model["policy"] = {"latest": draw(st.sampled_from(NUMBERS))}
    return data


YAML_FRAGMENTS = [
    "name: x",
    "name: x\nmodels: [{name: a, path: /m/a, policy: [1, 2], labels: {stable: 2}}]",
    "name: '../x'",
    'name: "a\\nb"',
    "models:",
    "  - name: a",
    "    path: /m/a",
    "  - {name: 'a/b', path: /m}",
    '  - {name: "x\\" } config {", path: /m}',
    "    policy: {latest: -1}",
    "    policy: [1, 99999999999999999999999]",
    "    labels: {stable: 18446744073709551616}",
    "ports: {rest: -1, grpc: 70000}",
    "ports: {rest: 8501, grpc: 8501}",
    "ports: {bind: 0.0.0.0}",
    "batching: {max_batch_size: 100000000000000000000}",
    "resources: {memory: 99999999999999999999999999999999999999999999t}",
    "server_args: {port: 1}",
    "server_args: {rest_api_num_threads: 100000000000000000000000}",
    "&a",
    "*a",
    "x: &a [1, 2]",
    "y: *a",
    "<<: *a",
    "!!python/object/apply:os.system [id]",
    "!!binary aGVsbG8=",
    "? [complex, key]",
    ": value",
    "---",
    "...",
    "%YAML 1.1",
    "\t",
    "{",
    "}",
    "[" * 50,
    "- item",
    "name: !!float .nan",
    "models: .inf",
    "'unterminated",
]


# ---------------------------------------------------------------------------
# the oracle: refused with exit 3, or accepted and rendered faithfully


def _policy_of(config: Any) -> tuple[str, Any]:
    policy = config.model_version_policy
    which = policy.WhichOneof("policy_choice")
    if which == "latest":
        return ("latest", policy.latest.num_versions)
    if which == "all":
        return ("all", None)
    assert which == "specific", which
    return ("specific", list(policy.specific.versions))


def check_accepted(spec: DeploymentSpec) -> None:
    """An accepted spec: safe names, and every rendered file parses back to the spec."""
    for name in [spec.name, *(m.name for m in spec.models)]:
        # Names reach URLs, container names, state folders and the text proto.
        assert re.fullmatch(NAME_PATTERN, name), name
        assert "/" not in name and name not in (".", "..") and "\n" not in name
    files = render_all(spec, with_secrets=False)
    layout = layout_for(spec)
    parsed = text_format().Parse(files.models_config, model_server_config_pb2().ModelServerConfig())
    got = [
        (c.name, c.base_path, c.model_platform, _policy_of(c), dict(c.version_labels))
        for c in parsed.model_config_list.config
    ]
    want = [
        (m.name, layout.base_paths[m.name], "tensorflow", m.policy_kind, dict(m.labels))
        for m in spec.models
    ]
    assert got == want
    for base_path in layout.base_paths.values():
        assert base_path == MODELS_DIR or base_path.startswith(MODELS_DIR + "/")
        assert ".." not in base_path.split("/")
    if files.batching_config is not None:
        assert spec.batching is not None
        b = text_format().Parse(files.batching_config, BatchingParameters())
        for field in ("max_batch_size", "batch_timeout_micros", "num_batch_threads"):
            value = getattr(spec.batching, field)
            assert b.HasField(field) == (value is not None)
            if value is not None:
                assert getattr(b, field).value == value
        assert list(b.allowed_batch_sizes) == spec.batching.allowed_batch_sizes
    plan = container_plan(spec, files, Path("/state/x/config"))
    for port in plan.ports:
        assert 1 <= port.host_port <= 65535
    assert all(m.read_only for m in plan.mounts)
    json.dumps(plan.to_dict(), default=str)
    for arg in plan.command:
        assert arg.startswith("--") and "\n" not in arg and "\x00" not in arg
    endpoint_for(spec)  # reads the TLS CA when there is one: never raises
    for name, text in render_k8s(spec).items():  # render k8s: YAML that parses back
        assert list(yaml.safe_load_all(text)), name
    swarm = spec.model_copy(update={"target": "swarm"})
    swarm_refusal: InvalidInput | None = None
    try:
        json.loads(render_swarm(swarm)["swarm-service.json"])
    except InvalidInput as exc:  # e.g. a loopback bind cannot be published by a swarm
        swarm_refusal = exc
    assert swarm_refusal is None or swarm_refusal.exit_code == ExitCode.INVALID
    expected_models(spec)
    if spec.tls is not None:
        with pytest.raises(InvalidInput):
            render_ssl_config(spec)  # the generated files do not exist: exit 3
    with pytest.raises(InvalidInput) as refused:
        check_models(spec)  # nothing generated points at a real model
    assert refused.value.exit_code == ExitCode.INVALID


def load_or_refuse(
    prop: str, *, text: str | None = None, data: Any = None, fmt: str = "yaml"
) -> None:
    refusal: InvalidInput | None = None
    try:
        if text is not None:
            data = parse_text(text, "generated", fmt)
        spec = spec_from_data(data, base_dir=BASE, source="generated")
    except InvalidInput as exc:  # SpecError: one "key.path: message" line per problem
        refusal = exc
    if refusal is not None:
        assert refusal.exit_code == ExitCode.INVALID
        assert isinstance(refusal, SpecError), refusal
        assert refusal.problems and all(isinstance(p, str) and p for p in refusal.problems)
        record(prop, "refused")
        return
    check_accepted(spec)
    record(prop, "accepted")


# ---------------------------------------------------------------------------
# properties


@PROPS
@given(st.text(max_size=300))
def test_any_text_is_a_spec_or_exit_3(text: str) -> None:
    load_or_refuse("yaml text", text=text)


@PROPS
@given(st.text(max_size=300))
def test_any_toml_text_is_a_spec_or_exit_3(text: str) -> None:
    load_or_refuse("toml text", text=text, fmt="toml")


@PROPS
@given(st.lists(st.sampled_from(YAML_FRAGMENTS), max_size=12))
def test_yaml_pieced_from_spec_fragments(lines: list[str]) -> None:
    load_or_refuse("yaml fragments", text="\n".join(lines))


@settings(PROPS, max_examples=500)
@given(spec_data)
def test_spec_shaped_yaml_with_hostile_values(data: dict[str, Any]) -> None:
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    load_or_refuse("hostile yaml", text=text)


@settings(PROPS, max_examples=500)
@given(spec_data)
def test_spec_shaped_data_with_hostile_values(data: dict[str, Any]) -> None:
    load_or_refuse("hostile data", data=data)


@settings(PROPS, max_examples=300)
@given(mostly_valid_specs())
def test_mostly_valid_specs_render_faithfully(data: dict[str, Any]) -> None:
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    load_or_refuse("mostly valid yaml", text=text)


@settings(PROPS, max_examples=300)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "name": st.one_of(
                    st.sampled_from(HOSTILE_NAMES), st.from_regex(NAME_PATTERN, fullmatch=True)
                ),
                "path": st.sampled_from(
                    ["/m/a", "/m/b", "/srv/x/y", "models/z", "../up", "ü/模型"]
                ),
                "labels": st.dictionaries(
                    st.from_regex(LABEL_PATTERN, fullmatch=True),
                    st.integers(0, INT64_MAX),
                    max_size=2,
                ),
                "policy": st.one_of(
                    st.integers(1, 1000).map(lambda n: {"latest": n}),
                    st.just({"all": {}}),
                    st.lists(st.integers(0, INT64_MAX), min_size=1, max_size=3, unique=True).map(
                        lambda v: {"specific": v}
                    ),
                ),
            }
        ),
        min_size=1,
        max_size=4,
        unique_by=lambda m: m["name"],
    )
)
def test_only_safe_names_are_accepted(entries: list[dict[str, Any]]) -> None:
    """Mostly-valid specs where the only doubt is the model name: refused unless safe."""
    for entry in entries:  # labels must point at served versions under a specific policy
        if "specific" in entry["policy"]:
            served = entry["policy"]["specific"]
            entry["labels"] = {k: served[i % len(served)] for i, k in enumerate(entry["labels"])}
    data = {"name": "props", "models": entries}
    safe = all(re.fullmatch(NAME_PATTERN, e["name"]) for e in entries)
    try:
        spec = spec_from_data(data, base_dir=BASE, source="generated")
    except SpecError:
        assert not safe
        record("names", "refused")
        return
    assert safe
    check_accepted(spec)
    record("names", "accepted")


@settings(PROPS, max_examples=300)
@given(
    st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=4, unique=True),
    st.lists(
        st.one_of(st.sampled_from(HOSTILE_PATHS[:-1]), st.text(max_size=30)), min_size=4, max_size=4
    ),
    st.dictionaries(st.text(min_size=1, max_size=12), st.integers(0, INT64_MAX), max_size=3),
)
def test_renderer_escapes_anything(
    names_: list[str], raw_paths: list[str], labels: dict[str, int]
) -> None:
    """Bypassing validation: whatever string reaches the renderer, the text proto holds it exactly."""
    models_ = [
        ModelSpec.model_construct(
            name=n,
            path=Path(os.path.normpath("/" + raw_paths[i].replace("\x00", "_"))),
            policy=LatestPolicy(latest=1),
            labels=labels,
        )
        for i, n in enumerate(names_)
    ]
    spec = DeploymentSpec.model_construct(
        name='x" } {\n', models=models_, model_roots=[], batching=None, monitoring=None
    )
    text = render_models_config(spec)  # raises RenderError on any round-trip mismatch
    parsed = text_format().Parse(text, model_server_config_pb2().ModelServerConfig())
    assert [c.name for c in parsed.model_config_list.config] == names_
    assert [dict(c.version_labels) for c in parsed.model_config_list.config] == [labels] * len(
        names_
    )
    record("renderer escaping", "parsed")


@pytest.mark.parametrize(
    "text",
    [
        "[" * 5000,
        "a: " + "{" * 1000,
        "name: x\nmodels:\n  " + "- " * 1000 + "x",
    ],
)
def test_deep_nesting_is_refused_not_a_crash(text: str) -> None:
    with pytest.raises(SpecError):
        spec_from_data(parse_text(text, "deep", "yaml"), base_dir=BASE, source="deep")
    with pytest.raises(SpecError):
        parse_text("a = " + "[" * 5000, "deep", "toml")


def test_huge_numbers_are_refused_by_the_spec_not_the_renderer() -> None:
    for extra in (
        {"batching": {"max_batch_size": 10**20}},
        {"batching": {"batch_timeout_micros": 2**63}},
        {"batching": {"allowed_batch_sizes": [1, 2**64]}},
        {"resources": {"memory": "9" * 400 + "g"}},
        {"server_args": {"rest_api_num_threads": 10**30}},
        {"models": [{"name": "a", "path": "/m/a", "policy": {"specific": [2**63]}}]},
        {"models": [{"name": "a", "path": "/m/a", "policy": {"latest": 2**32}}]},
        {"models": [{"name": "a", "path": "/m/a\x00b"}]},
        {"tls": {"cert": "/c\x00", "key": "/k"}},
        {"model_roots": ["/m\x00"]},
        {"ports": {"rest": -1}},
        {"ports": {"grpc": 65536}},
    ):
        data = {"name": "x", "models": [{"name": "a", "path": "/m/a"}], **extra}
        with pytest.raises(SpecError):
            spec_from_data(data, base_dir=BASE, source="t")


def test_nan_and_infinity_are_refused() -> None:
    for extra in (
        {"resources": {"cpus": math.nan}},
        {"resources": {"cpus": math.inf}},
        {"gpu": {"memory_fraction": math.nan}},
        {"server_args": {"tensorflow_intra_op_parallelism": math.inf}},
    ):
        data = {"name": "x", "models": [{"name": "a", "path": "/m/a"}], **extra}
        with pytest.raises(SpecError):
            spec_from_data(data, base_dir=BASE, source="t")


# ---------------------------------------------------------------------------
# the CLI on hostile spec files: exit 3, no traceback, nothing written

HOSTILE_SPECS = {
    "traversal name": "name: ../x\nmodels: [{name: a, path: /m/a}]\n",
    "slash in model name": "name: x\nmodels: [{name: a/b, path: /m/a}]\n",
    "dotdot model name": "name: x\nmodels: [{name: '..', path: /m/a}]\n",
    "quote and brace": 'name: x\nmodels: [{name: "x\\" } config { name: \\"y", path: /m/a}]\n',
    "newline name": 'name: x\nmodels: [{name: "a\\nb", path: /m/a}]\n',
    "unicode name": "name: x\nmodels: [{name: 模型, path: /m/a}]\n",
    "nul in path": 'name: x\nmodels: [{name: a, path: "/m/a\\0b"}]\n',
    "negative port": "name: x\nports: {rest: -1}\nmodels: [{name: a, path: /m/a}]\n",
    "huge batching": "name: x\nbatching: {max_batch_size: 100000000000000000000}\nmodels: [{name: a, path: /m/a}]\n",
    "huge memory": "name: x\nresources: {memory: "
    + "9" * 400
    + "g}\nmodels: [{name: a, path: /m/a}]\n",
    "deep nesting": "[" * 1000,
    "python tag": "!!python/object/apply:os.system [id]\n",
    "not a mapping": "- just\n- a list\n",
    "empty": "",
    "binary junk": "\x00\x01\x02name: x",
}
COMMANDS = [
    ("validate",),
    ("render",),
    ("render", "config"),
    ("render", "-o", "OUT"),
    ("render", "k8s", "-o", "OUT"),
    ("plan",),
    ("apply",),
    ("deploy",),
    ("reload",),
    ("health",),
]
runner = CliRunner()


@pytest.fixture
def isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "state"
    monkeypatch.setenv("TFSOPS_STATE_DIR", str(state))
    # No engine needed: every one of these must be refused before Docker is touched.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/tfsops-properties.sock")
    return state


def _everything_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("case", sorted(HOSTILE_SPECS))
def test_cli_refuses_hostile_spec_files(case: str, tmp_path: Path, isolated_state: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    spec = work / "tfsops.yaml"
    spec.write_text(HOSTILE_SPECS[case], encoding="utf-8")
    before = _everything_under(tmp_path)
    for command in COMMANDS:
        args = [a.replace("OUT", str(tmp_path / "out")) for a in command]
        result = runner.invoke(app, ["--json", "-f", str(spec), *args])
        assert result.exit_code == ExitCode.INVALID, (command, result.output)
        envelope = json.loads(result.stdout)
        assert envelope["exit_code"] == 3 and envelope["ok"] is False
        assert envelope["error"]["type"] in ("SpecError", "InvalidInput")
        assert "Traceback" not in result.output
        assert _everything_under(tmp_path) == before, command
        record("cli hostile specs", "exit 3")


@pytest.mark.parametrize(
    "model_name", ["../x", "a/b", "..", 'a"b', "x} config {", "a\nb", "a b", "模型", "-a"]
)
def test_cli_refuses_hostile_model_names(
    model_name: str, tmp_path: Path, isolated_state: Path, models_dir: Path
) -> None:
    spec = tmp_path / "tfsops.yaml"
    spec.write_text(f"name: props\nmodels: [{{name: a, path: {models_dir / 'half_plus_two'}}}]\n")
    before = spec.read_text()
    for args in (
        ["add-model", model_name, "--path", str(models_dir / "half_plus_three")],
        ["remove-model", model_name, "--yes"],
        ["predict", model_name, "--instances", "[1.0]"],
        ["health", model_name],
        ["promote", model_name, "--label", "stable", "--version", "1"],
    ):
        result = runner.invoke(app, ["--json", "-f", str(spec), *args])
        # exit 3; usage errors (exit 2: a name typer reads as an option) are also refusals
        assert result.exit_code in (ExitCode.INVALID, ExitCode.USAGE), (args, result.output)
        assert "Traceback" not in result.output
        if result.exit_code == ExitCode.INVALID:
            assert json.loads(result.stdout)["exit_code"] == 3
        assert spec.read_text() == before
        assert not (isolated_state / "props").exists(), args
        record("cli hostile names", f"exit {result.exit_code}")


# ---------------------------------------------------------------------------
# hostile servers: a server that accepts connections and never answers. health and
# reload end at their deadlines with exit 6 / 5, never hang (client-level deadlines are
# in test_serving_rest.py / test_serving_grpc.py; these go through the CLI and the
# whole transactional reload).


class SilentServer:
    """Accepts TCP connections (HTTP or HTTP/2), reads what comes, never writes a byte."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list[Any] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.setblocking(False)
            self.conns.append(conn)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        for conn in self.conns:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent() -> Any:
    server = SilentServer()
    yield server
    server.close()


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_health_against_a_server_that_never_answers(
    transport: str, silent: SilentServer, tmp_path: Path, isolated_state: Path, models_dir: Path
) -> None:
    import time

    ports = (
        f"{{rest: {silent.port}}}"
        if transport == "rest"
        else f"{{rest: null, grpc: {silent.port}}}"
    )
    spec = tmp_path / "tfsops.yaml"
    spec.write_text(
        f"name: silent\nports: {ports}\nmodels: [{{name: a, path: {models_dir / 'half_plus_two'}}}]\n"
    )
    for args in (["health", "--wait", "--timeout", "2", "--interval", "0.5"],):
        started = time.monotonic()
        result = runner.invoke(app, ["--json", "-f", str(spec), *args])
        elapsed = time.monotonic() - started
        assert result.exit_code == ExitCode.NOT_READY, result.output
        assert json.loads(result.stdout)["exit_code"] == 6
        assert elapsed < 20, elapsed  # one per-call deadline (5 s) past --timeout at most
        record("hostile servers", f"{transport} health exit 6")


def test_reload_against_a_server_that_never_answers(
    silent: SilentServer, isolated_state: Path, models_dir: Path
) -> None:
    import time

    from tfsops.adapters.serving_grpc import GrpcServingClient
    from tfsops.reload import transactional_reload
    from tfsops.services import Services
    from tfsops.state import DeploymentState

    def spec_of(*names: str) -> DeploymentSpec:
        folders = {"a": "half_plus_two", "b": "half_plus_three"}
        return spec_from_data(
            {
                "name": "silent",
                "ports": {"rest": None, "grpc": silent.port},
                "models": [{"name": n, "path": str(models_dir / folders[n])} for n in names],
            },
            base_dir=models_dir,
            source="t",
        )

    state = DeploymentState.for_name("silent")
    state.ensure()
    before = render_models_config(spec_of("a"))
    state.write_config_files({"models.config": before})
    services = Services(
        runtime_factory=lambda: None,  # type: ignore[arg-type,return-value]
        serving_factory=GrpcServingClient,
        admin_factory=GrpcServingClient,
    )
    started = time.monotonic()
    with pytest.raises(TfsopsError) as failed:
        transactional_reload(spec_of("a", "b"), "spec", services, state, timeout=2, rpc_timeout=1)
    elapsed = time.monotonic() - started
    assert failed.value.exit_code == ExitCode.FAILED, failed.value.message
    assert "did not finish within 1s" in failed.value.message
    assert failed.value.details["restored"] is False  # the restore hit its deadline too
    assert elapsed < 20, elapsed
    # nothing written; the intent stays, so the next run puts the server back on the file
    assert state.applied_file("models.config") == before
    assert (state.root / "reload-intent.json").exists()
    record("hostile servers", "reload exit 5")


@pytest.mark.parametrize(
    "args",
    [
        ["deploy", "props", "--model-path", "~nosuchuser/m"],
        ["deploy", "props", "--model-path", "../../../../../etc"],
        ["add-model", "b", "--path", "~nosuchuser/m"],
        ["add-model", "b", "--path", "/etc"],
        ["predict", "a", "--instances", "@~nosuchuser/x.json"],
        ["predict", "a", "--instances", "@/etc"],
        ["inspect", "~nosuchuser/m"],
    ],
)
def test_cli_refuses_hostile_paths(
    args: list[str], tmp_path: Path, isolated_state: Path, models_dir: Path
) -> None:
    spec = tmp_path / "tfsops.yaml"
    spec.write_text(f"name: props\nmodels: [{{name: a, path: {models_dir / 'half_plus_two'}}}]\n")
    before = spec.read_text()
    global_args = [] if args[0] in ("deploy", "inspect") else ["-f", str(spec)]
    result = runner.invoke(app, ["--json", *global_args, *args])
    assert result.exit_code == ExitCode.INVALID, result.output
    assert json.loads(result.stdout)["exit_code"] == 3
    assert "Traceback" not in result.output
    assert spec.read_text() == before
    assert not (isolated_state / "props").exists()
    record("cli hostile paths", "exit 3")
