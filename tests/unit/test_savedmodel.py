"""SavedModel inspection, version discovery, policies and model-dir validation (no TF runtime)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfsops.adapters import protos
from tfsops.errors import ExitCode, InvalidInput
from tfsops.savedmodel import (
    VersionPolicy,
    check_labels,
    check_model_dir,
    inspect_path,
    inspect_version,
    latest_versions,
    parse_version,
    read_saved_model,
    scan_versions,
    select_versions,
    served_versions,
    validate_model_dir,
)

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def good_version(models_dir: Path) -> Path:
    """A generated TF2 version dir (read-only: copy it before changing anything)."""
    return models_dir / "half_plus_two" / "1"


def copy_version(src: Path, base: Path, name: str) -> Path:
    dest = base / name
    shutil.copytree(src, dest)
    return dest


def rewrite(version_dir: Path, change: Callable[[Any], object]) -> None:
    """Parse the version's saved_model.pb, let ``change`` edit the proto, write it back."""
    saved_model, file = read_saved_model(version_dir)
    change(saved_model)
    file.write_bytes(saved_model.SerializeToString())


def problems_of(path: Path, *args: object, **kwargs: object) -> list[str]:
    report = check_model_dir(path, *args, **kwargs)  # type: ignore[arg-type]
    return list(report.problems)


# -- version names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("1", 1),
        ("00000123", 123),
        ("0", 0),
        (" 7 ", 7),  # absl::SimpleAtoi trims ASCII whitespace
        ("+5", 5),
        ("-3", -3),
        (str(INT64_MAX), INT64_MAX),
        (str(INT64_MIN), INT64_MIN),
        (str(INT64_MAX + 1), None),  # overflow: TF Serving ignores the name
        ("v1", None),
        ("0.1", None),
        ("1.tmp", None),
        ("_tmp123", None),
        ("1_000", None),  # Python's int() takes it, SimpleAtoi does not
        ("\u0661\u0662", None),  # Arabic-Indic digits: int() takes them, SimpleAtoi does not
        ("0x10", None),
        ("1e3", None),
        ("", None),
        (" ", None),
        ("+", None),
        ("assets", None),
    ],
)
def test_parse_version_follows_simple_atoi(name: str, expected: int | None) -> None:
    assert parse_version(name) == expected


@given(st.integers(min_value=INT64_MIN, max_value=INT64_MAX))
def test_parse_version_round_trips_int64(n: int) -> None:
    assert parse_version(str(n)) == n


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=8))
def test_leading_zeros_do_not_change_the_version(n: int, zeros: int) -> None:
    assert parse_version("0" * zeros + str(n)) == n


# -- policies --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (None, VersionPolicy("latest", 1)),
        (("latest", 2), VersionPolicy("latest", 2)),
        (("latest", 0), VersionPolicy("latest", 1)),  # the server uses max(n, 1)
        (("latest", None), VersionPolicy("latest", 1)),
        ({"latest": 3}, VersionPolicy("latest", 3)),
        ({"latest": {"num_versions": 2}}, VersionPolicy("latest", 2)),
        (("all", None), VersionPolicy("all")),
        ({"all": {}}, VersionPolicy("all")),
        (("specific", [4, 3, 4]), VersionPolicy("specific", versions=(3, 4))),
        ({"specific": {"versions": [7]}}, VersionPolicy("specific", versions=(7,))),
        (("specific", 5), VersionPolicy("specific", versions=(5,))),
        (VersionPolicy("all"), VersionPolicy("all")),
    ],
)
def test_policy_shapes(policy: object, expected: VersionPolicy) -> None:
    assert VersionPolicy.of(policy) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "policy",
    [
        ("latest", -1),
        ("latest", True),
        ("latest", "2"),
        ("newest", 1),
        ("all", 3),
        ("specific", "12"),
        ("specific", [1, "2"]),
        ({"latest": 1, "all": {}}),
        ["latest", 1],
        "latest",
    ],
)
def test_bad_policies_are_invalid_input(policy: object) -> None:
    with pytest.raises(InvalidInput, match="invalid version policy") as info:
        VersionPolicy.of(policy)  # type: ignore[arg-type]
    assert info.value.exit_code == ExitCode.INVALID


def test_policy_describe_and_dict() -> None:
    assert VersionPolicy.of(("latest", 2)).describe() == "latest 2"
    assert VersionPolicy.of(("specific", [4, 3])).describe() == "specific [3, 4]"
    assert VersionPolicy.of(("all", None)).to_dict() == {"all": {}}
    assert VersionPolicy.of(("specific", [3])).to_dict() == {"specific": [3]}


def test_select_versions() -> None:
    assert select_versions([1, 5, 3], ("latest", 2)).served == (3, 5)
    assert select_versions([1, 5, 3], None).served == (5,)
    assert select_versions([1, 5, 3], ("latest", 9)).served == (1, 3, 5)
    assert select_versions([1, 5, 3], ("all", None)).served == (1, 3, 5)
    sel = select_versions([1, 3], ("specific", [3, 4]))
    assert (sel.served, sel.missing, sel.available) == ((3,), (4,), (1, 3))
    assert select_versions([], ("latest", 1)).served == ()
    assert latest_versions([10, 2, 30], 2) == (10, 30)
    assert sel.to_dict() == {
        "policy": {"specific": [3, 4]},
        "available": [1, 3],
        "served": [3],
        "missing": [4],
    }


@given(
    st.sets(st.integers(min_value=0, max_value=10**6), max_size=20),
    st.integers(min_value=0, max_value=25),
)
def test_latest_serves_the_highest_n(available: set[int], n: int) -> None:
    sel = select_versions(available, ("latest", n))
    assert sel.served == tuple(sorted(available))[-max(n, 1) :] if available else sel.served == ()
    assert set(sel.served) <= available
    assert len(sel.served) == min(max(n, 1), len(available))


@given(
    st.sets(st.integers(min_value=0, max_value=50), max_size=10),
    st.sets(st.integers(min_value=0, max_value=50), max_size=10),
)
def test_specific_splits_served_and_missing(available: set[int], wanted: set[int]) -> None:
    sel = select_versions(available, ("specific", sorted(wanted)))
    assert set(sel.served) == wanted & available
    assert set(sel.missing) == wanted - available


def test_check_labels() -> None:
    sel = select_versions([1, 2, 3], ("latest", 2))
    assert check_labels({"stable": 2, "canary": 3}, sel) == ()
    problems = check_labels({"old": 1, "future": 9}, sel, base="/m")
    assert any(
        "'old' points at version 1, which the policy (latest 2) does not serve" in p
        for p in problems
    )
    assert any("'future' points at version 9, which is not on disk in /m" in p for p in problems)


# -- scanning a base dir ---------------------------------------------------------------------


def test_scan_versions_sees_what_tf_serving_sees(tmp_path: Path) -> None:
    for name in ("1", "002", "v3", "0.4", "123.tmp", "assets"):
        (tmp_path / name).mkdir()
    (tmp_path / "7").write_text("a numeric file counts as a version in TF Serving")
    (tmp_path / "9").symlink_to(tmp_path / "9")  # a loop
    (tmp_path / "8").symlink_to(tmp_path / "nowhere")  # dangling
    (tmp_path / "4").symlink_to(tmp_path / "1")  # a good symlink to a dir
    scan = scan_versions(tmp_path)
    assert scan.numbers == (1, 2, 4, 7, 8, 9)
    assert scan.versions[2].name == "002"
    assert scan.versions[4].is_dir
    assert scan.versions[4].problem is None
    assert not scan.versions[7].is_dir
    assert "is a file, not a version directory" in (scan.versions[7].problem or "")
    assert "symlink loop" in (scan.versions[9].problem or "")
    assert "dangling symlink" in (scan.versions[8].problem or "")
    assert scan.ignored == ("0.4", "123.tmp", "assets", "v3")
    assert served_versions(tmp_path, ("latest", 1)).served == (9,)


def test_scan_reports_duplicates_and_odd_spellings(tmp_path: Path) -> None:
    for name in ("5", "005", "+6"):
        (tmp_path / name).mkdir()
    scan = scan_versions(tmp_path)
    assert scan.numbers == (5, 6)
    assert len(scan.duplicates) == 1
    assert any("are both version 5" in w for w in scan.warnings)
    assert any("reads the name '+6' as version 6; rename it to '6'" in w for w in scan.warnings)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_text("x"), "is a file, not a directory"),
        (lambda p: p.symlink_to(p), "is a symlink loop"),
        (lambda p: p.symlink_to(p.parent / "gone"), "is a dangling symlink"),
    ],
    ids=["missing", "file", "loop", "dangling"],
)
def test_scan_versions_rejects_a_bad_base(tmp_path: Path, setup: object, message: str) -> None:
    base = tmp_path / "model"
    setup(base)  # type: ignore[operator]
    with pytest.raises(InvalidInput, match=message) as info:
        scan_versions(base, what="models.m.path")
    assert info.value.message.startswith(f"models.m.path: {base}")


# -- inspect: generated TF2 models -----------------------------------------------------------


def test_inspect_tf2_base_dir(models_dir: Path) -> None:
    result = inspect_path(models_dir / "half_plus_two")
    assert [v.version for v in result.versions] == [1, 2]
    assert result.warnings == ()
    mg = result.versions[0].meta_graphs[0]
    assert mg.tags == ("serve",)
    assert [s.key for s in mg.signatures] == ["serving_default", "twice", "__saved_model_init_op"]
    assert [s.key for s in mg.public_signatures] == ["serving_default", "twice"]
    default = mg.signature("serving_default")
    assert default is not None
    assert default.method_name == "tensorflow/serving/predict"
    (x,) = default.inputs
    assert (x.key, x.dtype, x.shape) == ("x", "DT_FLOAT", (-1,))
    assert x.name.endswith(":0")
    twice = mg.signature("twice")
    assert twice is not None
    assert [t.key for t in twice.outputs] == ["x_echo", "y"]
    init = mg.signature("__saved_model_init_op")
    assert init is not None
    assert init.internal
    assert init.outputs[0].dtype == "DT_INVALID"
    assert init.outputs[0].shape is None


def test_inspect_tf2_json_shape(models_dir: Path) -> None:
    data = inspect_path(models_dir / "half_plus_two", version=2).to_dict()
    json.dumps(data)  # serialisable
    (version,) = data["versions"]
    assert version["version"] == 2
    assert version["path"] == str(models_dir / "half_plus_two" / "2")
    sigs = version["meta_graphs"][0]["signatures"]
    assert sigs["serving_default"]["inputs"]["x"] == {
        "name": sigs["serving_default"]["inputs"]["x"]["name"],
        "dtype": "DT_FLOAT",
        "shape": [-1],
    }
    assert sigs["__saved_model_init_op"]["internal"] is True
    assert (
        sigs["__saved_model_init_op"]["outputs"]["__saved_model_init_op"]["shape"] == "unknown rank"
    )
    assert "internal" not in sigs["serving_default"]


def test_inspect_a_version_dir_directly(good_version: Path) -> None:
    result = inspect_path(good_version)
    assert [v.version for v in result.versions] == [1]
    assert result.versions[0].path == good_version
    assert inspect_version(good_version).version == 1
    with pytest.raises(InvalidInput, match="has no version 2"):
        inspect_path(good_version, version=2)


def test_inspect_filters(models_dir: Path) -> None:
    result = inspect_path(models_dir / "half_plus_two", signature="twice")
    assert [s.key for v in result.versions for m in v.meta_graphs for s in m.signatures] == [
        "twice",
        "twice",
    ]
    with pytest.raises(
        InvalidInput, match=r"has no signature 'nope' \(signatures: .*serving_default"
    ):
        inspect_path(models_dir / "half_plus_two", signature="nope")
    with pytest.raises(InvalidInput, match=r"has no version 3 \(versions: 1, 2\)"):
        inspect_path(models_dir / "half_plus_two", version=3)


def test_inspect_reads_pbtxt(good_version: Path, tmp_path: Path) -> None:
    dest = copy_version(good_version, tmp_path, "4")
    saved_model, file = read_saved_model(dest)
    file.unlink()
    (dest / "saved_model.pbtxt").write_text(protos.text_format().MessageToString(saved_model))
    info = inspect_version(dest)
    assert info.file == "saved_model.pbtxt"
    assert info.meta_graphs[0].signature("serving_default") is not None


def test_inspect_keeps_good_versions_and_warns_about_bad_ones(
    good_version: Path, tmp_path: Path
) -> None:
    copy_version(good_version, tmp_path, "1")
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "saved_model.pb").write_bytes(b"\x00garbage\xff" * 10)
    result = inspect_path(tmp_path)
    assert [v.version for v in result.versions] == [1]
    assert any("2/saved_model.pb is not a SavedModel" in w for w in result.warnings)
    with pytest.raises(InvalidInput, match="is not a SavedModel"):
        inspect_path(tmp_path, version=2)


def test_inspect_fails_when_nothing_is_readable(tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "2").write_text("")
    with pytest.raises(InvalidInput, match="no readable version") as info:
        inspect_path(tmp_path)
    assert len(info.value.details["problems"]) == 2


# -- inspect: upstream TF1 exports (optional) ------------------------------------------------


def test_inspect_upstream_half_plus_two_cpu(upstream_testdata: Path) -> None:
    result = inspect_path(upstream_testdata / "saved_model_half_plus_two_cpu")
    (info,) = result.versions
    assert info.version == 123
    assert info.path.name == "00000123"
    (mg,) = info.meta_graphs
    assert mg.tags == ("serve",)
    assert mg.tensorflow_version == "1.14.0"
    assert {s.key for s in mg.signatures} == {
        "serving_default",
        "classify_x_to_y",
        "regress_x_to_y",
        "regress_x_to_y2",
        "regress_x2_to_y3",
    }
    default = mg.signature("serving_default")
    assert default is not None
    assert [(t.key, t.name, t.dtype, t.shape) for t in default.inputs] == [
        ("x", "x:0", "DT_FLOAT", (-1, 1))
    ]
    classify = mg.signature("classify_x_to_y")
    assert classify is not None
    assert classify.method_name == "tensorflow/serving/classify"
    assert classify.inputs[0].dtype == "DT_STRING"
    assert classify.inputs[0].shape is None
    assert [t.key for t in classify.outputs] == ["scores"]


def test_inspect_upstream_two_versions_and_old_exports(upstream_testdata: Path) -> None:
    two = inspect_path(upstream_testdata / "saved_model_half_plus_two_2_versions")
    assert [v.version for v in two.versions] == [123, 124]
    three = inspect_path(upstream_testdata / "saved_model_half_plus_three")
    sig = three.versions[0].meta_graphs[0].signature("serving_default")
    assert sig is not None
    assert sig.inputs[0].shape is None  # TF 1.0 left the shape out: unknown, not a scalar


def test_upstream_bad_model_is_a_legacy_session_bundle(upstream_testdata: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_model_dir(upstream_testdata / "bad_half_plus_two", what="models.bad.path")
    assert info.value.message == (
        f"models.bad.path: {upstream_testdata / 'bad_half_plus_two' / '00000123'} has no "
        "saved_model.pb (found: checkpoint, export, export.meta — a legacy SessionBundle "
        "export, which TF Serving cannot load)"
    )


def test_upstream_validation(upstream_testdata: Path) -> None:
    base = upstream_testdata / "saved_model_half_plus_two_2_versions"
    report = validate_model_dir(base)
    assert report.served == (124,)
    report = validate_model_dir(base, ("all", None), {"stable": 123, "canary": 124})
    assert report.served == (123, 124)
    assert next(v.signatures for v in report.versions)[-1] == "serving_default"
    with pytest.raises(InvalidInput, match="'stable' points at version 123, which the policy"):
        validate_model_dir(base, ("latest", 1), {"stable": 123})


# -- validate: good dirs ---------------------------------------------------------------------


def test_validate_generated_model(models_dir: Path) -> None:
    report = validate_model_dir(models_dir / "half_plus_two", ("latest", 2), {"stable": 1})
    assert report.ok
    assert report.problems == ()
    assert report.warnings == ()
    assert report.available == (1, 2)
    assert report.served == (1, 2)
    assert [(v.version, v.signatures) for v in report.versions] == [
        (1, ("serving_default", "twice")),
        (2, ("serving_default", "twice")),
    ]
    data = report.to_dict()
    json.dumps(data)
    assert data["policy"] == {"latest": 2}
    assert data["labels"] == {"stable": 1}


def test_validate_checks_only_served_versions_unless_asked(
    good_version: Path, tmp_path: Path
) -> None:
    (tmp_path / "1").mkdir()  # broken but not served under latest 1
    copy_version(good_version, tmp_path, "2")
    assert validate_model_dir(tmp_path).served == (2,)
    report = check_model_dir(tmp_path, check_unserved=True)
    assert report.ok  # an unserved bad version is a warning
    assert any("1 has no saved_model.pb" in w for w in report.warnings)
    assert not check_model_dir(tmp_path, ("all", None)).ok


# -- validate: hostile dirs ------------------------------------------------------------------


def test_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_model_dir(tmp_path / "nope", what="models.resnet.path")
    assert info.value.message == f"models.resnet.path: {tmp_path / 'nope'} does not exist"
    assert info.value.exit_code == ExitCode.INVALID


def test_path_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    assert problems_of(tmp_path / "f") == [f"{tmp_path / 'f'} is a file, not a directory"]


def test_empty_dir(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_model_dir(tmp_path, what="models.resnet.path")
    assert info.value.message == (
        f"models.resnet.path: {tmp_path} holds no numeric version directory "
        f"(TF Serving needs e.g. {tmp_path}/1/saved_model.pb); the folder is empty"
    )


def test_non_numeric_versions(tmp_path: Path) -> None:
    for name in ("v1", "0.1"):
        (tmp_path / name).mkdir()
    (problem,) = problems_of(tmp_path)
    assert "holds no numeric version directory" in problem
    assert "found 0.1, v1, but version folders must be named by an integer" in problem


def test_base_that_is_a_version_dir(good_version: Path) -> None:
    (problem,) = problems_of(good_version)
    assert (
        f"is itself version 1 of a model: point at its parent folder {good_version.parent}"
        in problem
    )


def test_base_that_is_an_unversioned_export(good_version: Path, tmp_path: Path) -> None:
    dest = copy_version(good_version, tmp_path, "export")
    (problem,) = problems_of(dest)
    assert f"is itself a SavedModel: move its contents into {dest}/1/" in problem


def test_base_that_is_a_folder_of_models(models_dir: Path) -> None:
    (problem,) = problems_of(models_dir)
    assert "looks like a folder of models (half_plus_three, half_plus_two," in problem


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "is not a SavedModel (the file is empty)"),
        (b"\xff\xfe garbage \x00\x01\x02" * 50, "is not a SavedModel (parse error:"),
        (b"hello, this is plain text\n", "is not a SavedModel"),
    ],
    ids=["empty", "garbage", "text"],
)
def test_bad_saved_model_pb(tmp_path: Path, content: bytes, fragment: str) -> None:
    (tmp_path / "00000123").mkdir()
    (tmp_path / "00000123" / "saved_model.pb").write_bytes(content)
    (problem,) = problems_of(tmp_path, what="models.m.path")
    assert problem.startswith(
        f"models.m.path: {tmp_path}/00000123/saved_model.pb is not a SavedModel"
    )
    assert fragment in problem


def test_truncated_saved_model_pb(good_version: Path, tmp_path: Path) -> None:
    dest = copy_version(good_version, tmp_path, "1")
    pb = dest / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[: pb.stat().st_size // 2])
    (problem,) = problems_of(tmp_path)
    assert f"{pb} is not a SavedModel (parse error:" in problem


def test_bad_pbtxt(tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "saved_model.pbtxt").write_bytes(b"meta_graphs { nonsense: 1 }")
    (problem,) = problems_of(tmp_path)
    assert "saved_model.pbtxt is not a SavedModel (parse error:" in problem


def test_saved_model_pb_that_is_not_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "1" / "saved_model.pb").mkdir(parents=True)
    (tmp_path / "2").mkdir()
    os.mkfifo(tmp_path / "2" / "saved_model.pb")  # reading it would block forever
    problems = problems_of(tmp_path, ("all", None))
    assert problems == [
        f"{tmp_path}/1/saved_model.pb is a directory, not a SavedModel file",
        f"{tmp_path}/2/saved_model.pb is a special file, not a SavedModel file",
    ]


def test_symlink_loops(tmp_path: Path) -> None:
    (tmp_path / "base").symlink_to(tmp_path / "base")
    assert problems_of(tmp_path / "base") == [f"{tmp_path / 'base'} is a symlink loop"]
    model = tmp_path / "model"
    model.mkdir()
    (model / "3").symlink_to(model / "3")
    (problem,) = problems_of(model)
    assert problem == f"{model / '3'} is a symlink loop"
    (model / "2").mkdir()
    (model / "2" / "saved_model.pb").symlink_to(model / "2" / "saved_model.pb")
    (problem2,) = problems_of(model, ("specific", [2]))
    assert problem2 == f"{model / '2' / 'saved_model.pb'} is a symlink loop"


def test_version_that_is_a_file(good_version: Path, tmp_path: Path) -> None:
    copy_version(good_version, tmp_path, "1")
    (tmp_path / "9").write_text("not a dir")
    (problem,) = problems_of(tmp_path)  # latest 1 picks the file, as TF Serving would
    assert problem == (
        f"{tmp_path / '9'} is a file, not a version directory (TF Serving still counts it as "
        "version 9 and fails to load it)"
    )
    report = check_model_dir(tmp_path, ("specific", [1]))
    assert report.ok
    assert any("is a file" in w for w in report.warnings)


def test_permission_denied(good_version: Path, tmp_path: Path) -> None:
    base = tmp_path / "model"
    copy_version(good_version, base, "1")
    (base / "1").chmod(0o000)
    try:
        if os.access(base / "1", os.R_OK):
            pytest.skip("running as root: chmod 000 does not stop reading")
        (problem,) = problems_of(base)
        assert "cannot be read (permission denied)" in problem
        base.chmod(0o000)
        assert problems_of(base) == [f"{base} cannot be read (permission denied)"]
    finally:
        base.chmod(0o755)
        (base / "1").chmod(0o755)


def test_permission_errors_in_plain_words(
    good_version: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Works as root too (where chmod 000 does not stop reads): fail the listing itself.
    base = tmp_path / "model"
    copy_version(good_version, base, "1")
    real_listdir = os.listdir

    def listdir(path: str | os.PathLike[str]) -> list[str]:
        if Path(path) == base / "1":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", listdir)
    assert problems_of(base) == [f"{base / '1'} cannot be read (permission denied)"]


def test_odd_names_are_shown_safely(good_version: Path, tmp_path: Path) -> None:
    odd = tmp_path / "we ird\nname \u00e9"
    odd.mkdir()
    (odd / os.fsdecode(b"\xff\xfe")).mkdir()  # not UTF-8
    (problem,) = problems_of(odd)
    assert "\n" not in problem
    assert "we ird\\nname \u00e9" in problem
    assert "\\xff\\xfe" in problem
    problem.encode("utf-8")  # printable on a UTF-8 terminal
    copy_version(good_version, odd, "1")
    report = validate_model_dir(odd)
    json.dumps(report.to_dict(), ensure_ascii=False).encode("utf-8")


def test_legacy_and_other_non_savedmodel_versions(tmp_path: Path) -> None:
    v = tmp_path / "1"
    v.mkdir()
    for name in ("checkpoint", "export.meta", "export.data-00000-of-00001"):
        (v / name).write_text("x")
    (problem,) = problems_of(tmp_path)
    assert problem.endswith("a legacy SessionBundle export, which TF Serving cannot load)")
    shutil.rmtree(v)
    v.mkdir()
    (v / "model.tflite").write_bytes(b"TFL3")
    (problem,) = problems_of(tmp_path)
    assert "(found: model.tflite — a TensorFlow Lite model, not a SavedModel)" in problem
    shutil.rmtree(v)
    v.mkdir()
    (problem,) = problems_of(tmp_path)
    assert (
        problem
        == f"{v} has no saved_model.pb (the folder is empty: a version still being written?)"
    )


def test_saved_model_one_level_too_deep(good_version: Path, tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    copy_version(good_version, tmp_path / "1", "export")
    (problem,) = problems_of(tmp_path)
    assert "there is one in export/: TF Serving needs it directly in the version folder" in problem


def test_wrong_tags(good_version: Path, tmp_path: Path) -> None:
    dest = copy_version(good_version, tmp_path, "1")

    def retag(sm: Any) -> None:
        mg = sm.meta_graphs[0]
        del mg.meta_info_def.tags[:]
        mg.meta_info_def.tags.extend(["serve", "gpu"])

    rewrite(dest, retag)
    (problem,) = problems_of(tmp_path)
    assert "has no MetaGraph with the tag-set 'serve' (tag-sets: serve,gpu)" in problem
    assert validate_model_dir(tmp_path, tags=("gpu", "serve")).ok


def test_no_signatures(good_version: Path, tmp_path: Path) -> None:
    dest = copy_version(good_version, tmp_path, "1")

    def strip(sm: Any) -> None:
        sigs = sm.meta_graphs[0].signature_def
        for key in [k for k in sigs if k != "__saved_model_init_op"]:
            del sigs[key]

    rewrite(dest, strip)
    (problem,) = problems_of(tmp_path)
    assert "has no signatures in its 'serve' MetaGraph" in problem


def test_no_serving_default_is_a_warning(good_version: Path, tmp_path: Path) -> None:
    dest = copy_version(good_version, tmp_path, "1")
    rewrite(dest, lambda sm: sm.meta_graphs[0].signature_def.pop("serving_default"))
    report = validate_model_dir(tmp_path)
    assert any(
        "has no 'serving_default' signature; requests must name one of: twice" in w
        for w in report.warnings
    )


def test_missing_variables_is_a_problem(good_version: Path, tmp_path: Path) -> None:
    # TF Serving loads such a version (it skips the restore) and every request fails.
    dest = copy_version(good_version, tmp_path, "1")
    shutil.rmtree(dest / "variables")
    with pytest.raises(InvalidInput) as info:
        validate_model_dir(tmp_path)
    assert "has no variables/variables.index" in info.value.message
    assert "VARIABLE_VALUE" in info.value.message  # the checkpoint keys the restore needs


def test_policy_and_label_problems(models_dir: Path) -> None:
    base = models_dir / "half_plus_two"
    with pytest.raises(InvalidInput) as info:
        validate_model_dir(
            base, ("specific", [2, 5]), {"stable": 1, "canary": 2}, what="models.hp2"
        )
    message = info.value.message
    assert message.startswith(f"models.hp2: {base} has 2 problems\n")
    assert (
        "has no version 5, which the policy (specific [2, 5]) asks for (versions: 1, 2)" in message
    )
    assert (
        "label 'stable' points at version 1, which the policy (specific [2, 5]) does not serve"
        in message
    )
    assert len(info.value.details["problems"]) == 2
    assert info.value.hint
    assert "tfsops inspect" in info.value.hint
    with pytest.raises(InvalidInput, match="label 'x' points at version 7, which is not on disk"):
        validate_model_dir(base, None, {"x": 7})
    assert not check_model_dir(base, ("specific", [])).ok


def test_no_tensorflow_runtime_is_imported(models_dir: Path) -> None:
    code = (
        "import sys\n"
        "from tfsops.savedmodel import inspect_path, validate_model_dir\n"
        f"inspect_path({str(models_dir / 'half_plus_two')!r})\n"
        f"validate_model_dir({str(models_dir / 'half_plus_two')!r})\n"
        "bad = [m for m in ('tensorflow', 'tensorflow.python', 'keras') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
