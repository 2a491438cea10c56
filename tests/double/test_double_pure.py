"""Pure parts of the double: version dirs, policies, REST routing, JSON tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.double.tfserving_double import jsontensor, routing
from tests.double.tfserving_double.status import ServingError
from tests.double.tfserving_double.versions import Policy, parse_version, select, versions_in

# -- version directories (reference §5.3) -------------------------------------


@pytest.mark.parametrize(
    ("name", "version"),
    [("1", 1), ("00000123", 123), (" 7 ", 7), ("+5", 5), ("-3", -3), ("v1", None), ("0.1", None),
     ("assets", None), ("", None), ("1e3", None), ("99999999999999999999", None)],
)  # fmt: skip
def test_parse_version(name: str, version: int | None) -> None:
    assert parse_version(name) == version


def test_duplicate_spellings_keep_one_and_warn() -> None:
    found = versions_in(["00000123", "123", "tmp-5", "7"], "m", "/b")
    assert found.versions == {7: "7", 123: "00000123"}
    assert len(found.warnings) == 1
    assert found.warnings[0].startswith("Duplicate version directories detected. Version 123")


AVAILABLE = {1: "1", 2: "2", 5: "00005", 10: "10"}


@pytest.mark.parametrize(
    ("policy", "chosen"),
    [
        (Policy(), [10]),
        (Policy("latest", num_versions=0), [10]),  # 0 is treated as 1
        (Policy("latest", num_versions=2), [5, 10]),
        (Policy("all"), [1, 2, 5, 10]),
        (Policy("specific", versions=(2, 5, 99)), [2, 5]),
    ],
)
def test_policy_selection(policy: Policy, chosen: list[int]) -> None:
    assert sorted(select(policy, AVAILABLE, "m").versions) == chosen


def test_specific_missing_version_warns() -> None:
    result = select(Policy("specific", versions=(99,)), AVAILABLE, "m")
    assert result.versions == {}
    assert (
        "Version 99 of servable m, which was requested to be served as a 'specific'"
        in (result.warnings[0])
    )


# -- REST routing (reference §2.1) ----------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("POST", "/v1/models/m:predict", routing.Route("predict", "m")),
        ("POST", "/v1/models/m/versions/3:classify", routing.Route("classify", "m", 3)),
        (
            "POST",
            "/v1/models/m/labels/stable:regress",
            routing.Route("regress", "m", None, "stable"),
        ),
        ("POST", "/V1/MODELS/m:predict", routing.Route("predict", "m")),
        ("GET", "/v1/models/m", routing.Route("status", "m")),
        ("GET", "/v1/models/m/versions/3", routing.Route("status", "m", 3)),
        ("GET", "/v1/models/m/labels/x", routing.Route("status", "m", None, "x")),
        ("GET", "/v1/models/m/metadata", routing.Route("metadata", "m")),
        ("GET", "/v1/models/m/METADATA", routing.Route("status", "m")),  # case-sensitive dispatch
        ("GET", "/v1/models/a%20b", routing.Route("status", "a b")),
    ],
)
def test_routes(method: str, path: str, route: routing.Route) -> None:
    assert routing.route(method, path) == route


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("GET", "/v1/models/foo:predict", "Malformed request: GET /v1/models/foo:predict"),
        ("POST", "/v1/models/foo/metadata", "Malformed request: POST /v1/models/foo/metadata"),
        ("GET", "/v1/models/foo/version/50", "Malformed request: GET /v1/models/foo/version/50"),
        ("GET", "/v1/models/foo/versions/HELLO",
         "Malformed request: GET /v1/models/foo/versions/HELLO"),
        ("POST", "/v1/models/foo:PREDICT", "Malformed request: POST /v1/models/foo:PREDICT"),
        ("PUT", "/v1/models/foo", "Malformed request: PUT /v1/models/foo"),
        ("GET", "/v1/models", "Missing model name in request."),
        ("GET", "/v1/models/m/versions/99999999999999999999",
         "Failed to convert version: 99999999999999999999 to numeric."),
    ],
)  # fmt: skip
def test_route_errors(method: str, path: str, message: str) -> None:
    with pytest.raises(ServingError) as err:
        routing.route(method, path)
    assert err.value.status.code == "INVALID_ARGUMENT"
    assert err.value.status.message == message


def test_api_path_and_error_body() -> None:
    assert routing.is_api_path("/v1/x")
    assert not routing.is_api_path("/v2/models/m")
    assert not routing.is_api_path("/v1")
    assert routing.error_body('Bad key: "key"') == '{ "error": "Bad key: \\"key\\"" }'


# -- JSON tensors (reference §2.6, json_tensor.cc) --------------------------------

FLOAT_X = {"x": jsontensor.InputInfo(jsontensor.DT_FLOAT)}


def test_row_and_columnar_inputs() -> None:
    fmt, arrays = jsontensor.predict_inputs({"instances": [[1.0, 2.0], [3.0, 4.0]]}, FLOAT_X, "")
    assert fmt == "row"
    assert arrays["x"].dtype == np.float32
    assert arrays["x"].shape == (2, 2)
    fmt, arrays = jsontensor.predict_inputs({"inputs": {"x": [3.0, 4.0]}}, FLOAT_X, "")
    assert fmt == "columnar"
    assert arrays["x"].tolist() == [3.0, 4.0]


def test_b64_strings() -> None:
    infos = {"s": jsontensor.InputInfo(jsontensor.DT_STRING)}
    _, arrays = jsontensor.predict_inputs(
        {"instances": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}]}, infos, ""
    )
    assert arrays["s"].tolist() == [b"hello", b"world"]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({}, "Missing 'inputs' or 'instances' key"),
        ({"instances": ["a"]}, 'Failed to process element: 0 of \'instances\' list. Error: '
         'INVALID_ARGUMENT: JSON Value: "a" Type: String is not of expected type: float'),
        ({"instances": [[1.0], [1.0, 2.0]]}, "Failed to process element: 1 of 'instances' list. "
         "Error: INVALID_ARGUMENT: Expecting tensor size: 1 but got: 2"),
        ({"inputs": [16777217]}, "Cannot convert JSON value: 16777217 to float without loss of "
         "precision."),
    ],
)  # fmt: skip
def test_input_errors(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ServingError) as err:
        jsontensor.predict_inputs(doc, FLOAT_X, "")
    assert err.value.status.message == message


def test_both_keys_error_prints_the_document() -> None:
    with pytest.raises(ServingError) as err:
        jsontensor.predict_inputs({"instances": [1.0], "inputs": [1.0]}, FLOAT_X, "")
    assert err.value.status.message == (
        'JSON Value: {\n    "instances": [\n        1.0\n    ],\n'
        '    "inputs": [\n        1.0\n    ]\n}'
        " Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist "
    )


def test_parse_errors() -> None:
    with pytest.raises(ServingError) as err:
        jsontensor.parse_json(b"")
    assert err.value.status.message == "JSON Parse error: The document is empty"
    with pytest.raises(ServingError) as err:
        jsontensor.parse_json(b"{]")
    assert err.value.status.message.startswith("JSON Parse error: ")
    with pytest.raises(ServingError) as err:
        jsontensor.parse_json(b"nope")
    assert err.value.status.message == "JSON Parse error: Invalid value. at offset: 0"


def test_nan_and_infinity_tokens_round_trip() -> None:
    doc = jsontensor.parse_json(b'{"inputs": [NaN, Infinity, -Infinity]}')
    _, arrays = jsontensor.predict_inputs(doc, FLOAT_X, "")
    out = jsontensor.predict_response("columnar", {"y": (arrays["x"], jsontensor.DT_FLOAT)})
    assert (
        out == '{\n    "outputs": [\n        NaN,\n        Infinity,\n        -Infinity\n    ]\n}'
    )
    assert math.isnan(float("nan"))


def test_predict_response_layout_matches_rapidjson() -> None:
    y = np.array([2.5, 3.0, 4.5], dtype=np.float32)
    # What curl prints for the docker.md example.
    assert jsontensor.predict_response("row", {"y": (y, jsontensor.DT_FLOAT)}) == (
        '{\n    "predictions": [2.5, 3.0, 4.5\n    ]\n}'
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [(3.0, "3.0"), (2.5, "2.5"), (0.1, "0.1"), (9000000.0, "9e+06"), (1 / 3, "0.333333343")],
)
def test_float_formatting(value: float, text: str) -> None:
    assert jsontensor.format_decimal(float(np.float32(value)), single=True) == text


def test_classify_and_regress_json() -> None:
    assert jsontensor.classify_response([[(b"", 12.0)]]) == (
        '{\n    "results": [[["", 12.0]]\n    ]\n}'
    )
    assert jsontensor.regress_response([42.0]) == '{\n    "results": [42.0]\n}'


def test_examples_from_json() -> None:
    context, examples = jsontensor.classify_regress_inputs(
        {"context": {"c": "a"}, "examples": [{"x": 1.0, "n": [1, 2], "b": {"b64": "aGk="}}]}
    )
    assert context is not None
    assert context["c"].kind == "bytes"
    ex = examples[0]
    assert (ex["x"].kind, ex["x"].values) == ("float", [1.0])
    assert (ex["n"].kind, ex["n"].values) == ("int64", [1, 2])
    assert (ex["b"].kind, ex["b"].values) == ("bytes", [b"hi"])
    with pytest.raises(ServingError) as err:
        jsontensor.classify_regress_inputs({"examples": [{"x": [1, 2.0]}]})
    assert err.value.status.message == "Unexpected element type in feature: x expecting type: int64"
