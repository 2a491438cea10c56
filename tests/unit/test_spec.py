"""The spec: validation rules, error lines, path resolution, formats."""

from __future__ import annotations

from pathlib import Path

import pytest

from tfsops.errors import ExitCode, InvalidInput, SpecError
from tfsops.spec.load import load_spec, spec_from_data, spec_from_flags, with_overrides


def make(data: dict[str, object], base: Path = Path("/srv")) -> object:
    return spec_from_data(data, base_dir=base, source="t.yaml")


def problems(data: dict[str, object]) -> list[str]:
    with pytest.raises(SpecError) as info:
        make(data)
    assert info.value.exit_code == ExitCode.INVALID
    return info.value.problems


def base(**extra: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "vision",
        "models": [{"name": "resnet", "path": "./m/resnet"}],
    }
    data.update(extra)
    return data


def test_defaults_and_relative_paths_resolve_against_the_spec_folder() -> None:
    spec = make(base())
    assert spec.image_ref == "tensorflow/serving:2.19.0"  # pinned, never "latest"
    assert spec.ports.bind == "127.0.0.1"
    assert spec.models[0].path == Path("/srv/m/resnet")
    assert spec.models[0].policy_kind == ("latest", 1)
    assert spec.container_name == "tfsops-vision"


def test_gpu_adds_the_gpu_tag_but_an_explicit_tag_is_used_as_is() -> None:
    assert make(base(gpu={"devices": "all"})).image_ref == "tensorflow/serving:2.19.0-gpu"
    assert make(base(gpu={}, image="my/serving:1.2")).image_ref == "my/serving:1.2"
    assert problems(base(image="my/serving:1.2", version="2")) == [
        "(top level): image 'my/serving:1.2' has a tag and version is '2': give the tag once"
    ]


@pytest.mark.parametrize(
    ("policy", "kind"),
    [
        ({"latest": 2}, ("latest", 2)),
        ({"all": {}}, ("all", None)),
        ({"specific": [4, 3]}, ("specific", [3, 4])),
        ("all", ("all", None)),
        ("latest", ("latest", 1)),
        ([7, 5], ("specific", [5, 7])),
    ],
)
def test_policies_and_shorthands(policy: object, kind: tuple[str, object]) -> None:
    spec = make(base(models=[{"name": "m", "path": "/x", "policy": policy}]))
    assert spec.models[0].policy_kind == kind


def test_every_problem_is_one_line_naming_the_key() -> None:
    lines = problems(
        {
            "name": "vision",
            "bogus": 1,
            "ports": {"rest": -1},
            "models": [{"name": "resnet", "path": "/x", "policy": {"latst": 1}}],
        }
    )
    assert "bogus: unknown key (not allowed here)" in lines
    assert any(line.startswith("ports.rest: ") for line in lines)
    assert (
        "models.resnet.policy: must be one of {latest: N}, {all: {}}, {specific: [versions]}"
        in lines
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            base(models=[{"name": "a", "path": "/x"}, {"name": "a", "path": "/y"}]),
            "listed twice: a",
        ),
        (
            base(
                models=[
                    {"name": "m", "path": "/x", "policy": {"specific": [1]}, "labels": {"s": 2}}
                ]
            ),
            "label 's' points at version 2",
        ),
        (base(models=[{"name": "a b", "path": "/x"}]), "models[0].name: 'a b' must start"),
        (base(models=[{"name": "a/b", "path": "/x"}]), "models[0].name: 'a/b' must start"),
        (base(models=[{"name": "../x", "path": "/x"}]), "models[0].name: '../x' must start"),
        (base(batching={"enabled": False, "max_batch_size": 8}), "enabled is false"),
        (
            base(batching={"max_batch_size": 8, "allowed_batch_sizes": [2, 4]}),
            "must equal max_batch_size",
        ),
        (base(server_args={"port": 9000}), "'port' is set by tfsops; use ports.grpc"),
        (
            base(server_args={"model_config_file_poll_wait_seconds": 60}),
            "would revert those reloads",
        ),
        (base(server_args={"no_such_flag": 1}), "unknown tensorflow_model_server flag"),
        (base(server_args={"enable_model_warmup": "yes"}), "takes true or false"),
        (base(ports={"rest": 8500, "grpc": 8500}), "rest and grpc must differ"),
        (base(ports={"bind": "localhost"}), "not an IP address"),
        (base(resources={"memory": "lots"}), "not a memory size"),
        (base(models=[]), "models: List should have at least 1 item"),
        (base(swarm={"replicas": 2}), "a swarm section needs target: swarm"),
    ],
)
def test_cross_field_rules(data: dict[str, object], expected: str) -> None:
    assert any(expected in line for line in problems(data)), problems(data)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "tfsops.yaml"
    path.write_text("name: x\nmodels:\n  - name: a\n   path: b\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert "line 4" in info.value.message


def test_toml_spec(tmp_path: Path) -> None:
    path = tmp_path / "tfsops.toml"
    path.write_text('name = "x"\n[[models]]\nname = "a"\npath = "models/a"\n')
    spec = load_spec(path)
    assert spec.models[0].path == tmp_path / "models" / "a"


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not found"):
        load_spec(tmp_path / "nope.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(SpecError, match="empty"):
        load_spec(empty)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="expected a mapping"):
        load_spec(listing)


def test_spec_from_flags_and_overrides() -> None:
    spec = spec_from_flags("hp2", model_paths=[("hp2", Path("/m/hp2"))])
    assert spec.models[0].name == "hp2"
    gpu = with_overrides(spec, gpu=True, gpu_devices="0,1", gpu_memory_fraction=0.5)
    assert gpu.gpu is not None and gpu.gpu.devices == [0, 1] and gpu.gpu.memory_fraction == 0.5
    assert gpu.image_ref.endswith("-gpu")
    assert with_overrides(spec, image="tfsops-double:latest").image_ref == "tfsops-double:latest"
    assert with_overrides(spec, image="a:1", version="2").image_ref == "a:2"
    assert with_overrides(gpu, gpu=False).gpu is None


def test_schema_is_json_schema() -> None:
    from tfsops.spec.model import DeploymentSpec

    schema = DeploymentSpec.model_json_schema()
    assert schema["additionalProperties"] is False
    assert "models" in schema["required"]
