"""The double's flag parser follows ``tensorflow::Flags::Parse`` (reference §1.1)."""

from __future__ import annotations

import pytest

from tests.double.tfserving_double import flags


def parse(*args: str) -> flags.ParseResult:
    return flags.parse(["tensorflow_model_server", *args])


def test_defaults_match_upstream() -> None:
    o = parse().options
    assert (o.port, o.rest_api_port, o.model_name, o.model_base_path) == (8500, 0, "default", "")
    assert o.rest_api_timeout_in_ms == 30000
    assert o.file_system_poll_wait_seconds == 1
    assert o.max_num_load_retries == 5
    assert o.load_retry_interval_micros == 60_000_000
    assert o.enable_model_warmup is True
    assert o.saved_model_tags == "serve"


def test_name_equals_value_and_last_one_wins() -> None:
    r = parse("--port=8500", "--rest_api_port=8501", "--port=9000", "--model_name=m")
    assert r.ok and not r.unknown
    assert (r.options.port, r.options.rest_api_port, r.options.model_name) == (9000, 8501, "m")


def test_space_separated_value_is_two_unknown_arguments() -> None:
    r = parse("--port", "9000")
    assert r.ok
    assert r.unknown == ["--port", "9000"]
    assert r.options.port == 8500


@pytest.mark.parametrize(
    ("arg", "value"),
    [
        ("--enable_batching", True),
        ("--enable_batching=true", True),
        ("--enable_batching=false", False),
    ],
)
def test_bool_spellings(arg: str, value: bool) -> None:
    r = parse(arg)
    assert r.ok
    assert r.options.enable_batching is value


@pytest.mark.parametrize(
    ("arg", "shown"),
    [
        ("--enable_batching=1", "=1"),
        ("--enable_batching=True", "=True"),
        ("--enable_batchingX", "X"),
    ],
)
def test_bad_bool_values_fail(arg: str, shown: str) -> None:
    r = parse(arg)
    assert not r.ok
    assert r.errors == [f"Couldn't interpret value {shown} for flag enable_batching."]


@pytest.mark.parametrize("value", ["abc", "12abc", "", "1.5", "12 "])
def test_bad_int_values_fail(value: str) -> None:
    r = parse(f"--port={value}")
    assert not r.ok
    assert r.errors == [f"Couldn't interpret value {value} for flag port."]


def test_int_accepts_leading_space_and_sign() -> None:
    assert parse("--port= 8600").options.port == 8600
    assert parse("--file_system_poll_wait_seconds=-1").options.file_system_poll_wait_seconds == -1


def test_float_flag() -> None:
    assert (
        parse("--per_process_gpu_memory_fraction=0.5").options.per_process_gpu_memory_fraction
        == 0.5
    )
    assert not parse("--per_process_gpu_memory_fraction=half").ok


def test_prefix_of_another_flag_name_is_not_confused() -> None:
    r = parse("--model_config_file=/c", "--model_config_file_poll_wait_seconds=5")
    assert r.ok
    assert r.options.model_config_file == "/c"
    assert r.options.model_config_file_poll_wait_seconds == 5


def test_unknown_flags_and_double_dash() -> None:
    r = parse("--nope=1", "--port=1", "--", "--rest_api_port=2")
    assert r.ok
    assert r.unknown == ["--nope=1", "--", "--rest_api_port=2"]
    assert (r.options.port, r.options.rest_api_port) == (1, 0)


def test_help_fails_the_parse() -> None:
    assert not parse("--help").ok


def test_usage_lists_every_flag_with_its_default() -> None:
    text = flags.usage("tensorflow_model_server")
    assert text.startswith("usage: tensorflow_model_server\nFlags:\n")
    assert "--port=8500" in text
    assert '--model_name="default"' in text
    assert "--enable_model_warmup=true" in text
    assert len(flags.FLAGS) == 48  # reference §1.2
