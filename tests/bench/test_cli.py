"""``herald bench`` options: what they change, and clear errors for bad ones."""

from __future__ import annotations

import pytest

from herald_bench.cli import build_parser, config_from
from herald_bench.config import FULL, QUICK, SECTIONS


def parse(*argv: str) -> object:
    return config_from(build_parser().parse_args(list(argv)))


def test_defaults_are_the_full_run_with_every_section() -> None:
    assert parse() == FULL
    assert FULL.sections == SECTIONS
    assert parse("--quick") == QUICK


def test_options_override_the_chosen_base() -> None:
    cfg = parse("--quick", "--clients", "5000", "--latency-rate", "10", "--latency-rounds", "2", "--workers", "3")
    assert cfg == QUICK.replace(clients=5000, latency_rate=10.0, latency_rounds=2, gateway_workers=3)


def test_only_picks_sections_in_the_given_order_without_repeats() -> None:
    assert parse("--only", "latency, rest,latency").sections == ("latency", "rest")  # type: ignore[attr-defined]


def test_the_rest_fed_sections_come_first_and_can_be_picked() -> None:
    assert SECTIONS[:3] == ("rest", "fanout-rest", "producer")
    assert parse("--only", "producer,fanout-rest").sections == ("producer", "fanout-rest")  # type: ignore[attr-defined]


def test_rest_options_override_their_defaults() -> None:
    cfg = parse(
        "--publish-rate", "8000", "--batch-rate", "40000", "--batch-size", "1000", "--message-rate", "100",
        "--fanout-rest-clients", "2000", "--producer-rates", "500, 1000,4000", "--rest-seconds", "3",
    )  # fmt: skip
    assert cfg == FULL.replace(
        publish_rate=8000.0,
        batch_rate=40000.0,
        batch_size=1000,
        message_rate=100.0,
        fanout_rest_clients=2000,
        producer_rates=(500.0, 1000.0, 4000.0),
        rest_seconds=3.0,
    )


def test_gateway_env_is_passed_as_pairs() -> None:
    cfg = parse("--gateway-env", "HERALD_GATEWAY_PARALLEL_WRITES=0", "--gateway-env", "HERALD_LOG_LEVEL=info")
    assert cfg.gateway_env == (  # type: ignore[attr-defined]
        ("HERALD_GATEWAY_PARALLEL_WRITES", "0"),
        ("HERALD_LOG_LEVEL", "info"),
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--gateway-env", "PATH=/x"], "--gateway-env takes HERALD_NAME=VALUE"),
        (["--gateway-env", "HERALD_X"], "--gateway-env takes HERALD_NAME=VALUE"),
        (["--only", "latency,e2e"], "--only takes sections of rest,fanout-rest,producer,fanout,latency,idle"),
        (["--only", ","], "--only takes sections"),
        (["--workers", "0"], "--workers must be positive"),
        (["--latency-rounds", "-1"], "--latency-rounds must be positive"),
        (["--batch-size", "0"], "--batch-size must be positive"),
        (["--producer-rates", "500,x"], "--producer-rates takes positive rates"),
        (["--producer-rates", "500,-1"], "--producer-rates takes positive rates"),
    ],
)
def test_bad_options_are_refused_with_the_reason(argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert message in str(exc.value)
