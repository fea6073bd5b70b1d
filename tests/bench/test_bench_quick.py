"""``herald bench --quick`` works: every section produced numbers and both targets delivered.

A smoke test only: the machine running it is shared and small, so no figure is compared
with a threshold (a delivery percentage or a latency is only required to be there).
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

HERALD = Path(sys.executable).parent / "herald"

pytestmark = pytest.mark.integration

FANOUT = ("fanout_herald", "fanout_native", "fanout_herald_multi")
IDLE = ("idle_herald", "idle_native")
#: REST-fed rows measured against nats-server (the batch row may say its endpoint is missing)
REST_ROWS = ("rest_publish", "rest_messages", "rest_latency", "fanout_rest")


def _runtime() -> list[str]:
    """The Node load processes (the default); without node, the Python ones (not under CI)."""
    if shutil.which("node") is not None:
        return []
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("node is not installed (CI=true): the benchmark's load processes need it")
    return ["--load-runtime", "python"]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    output = tmp_path_factory.mktemp("bench") / "quick.json"
    proc = subprocess.run(
        [str(HERALD), "bench", "--quick", "--output", str(output), *_runtime()],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert f"JSON: {output}" in proc.stdout
    assert "Headline: fed over REST" in proc.stdout and "Producer:" in proc.stdout
    assert (
        proc.stdout.index("Headline") < proc.stdout.index("Breakdown: gateway only") < proc.stdout.index("Saturation")
    )
    data: dict[str, Any] = json.loads(output.read_text())
    return data


@pytest.mark.timeout(250)
def test_no_section_failed(results: dict[str, Any]) -> None:
    sections = results["sections"]
    assert set(sections) == {*REST_ROWS, "rest_batch", "producer", *FANOUT, "latency", *IDLE, "presence"}
    assert {name: s["error"] for name, s in sections.items() if "error" in s} == {}


@pytest.mark.timeout(250)
@pytest.mark.parametrize("name", FANOUT)
def test_fanout_targets_delivered(results: dict[str, Any], name: str) -> None:
    section = results["sections"][name]
    assert section["connect"]["connected"] > 0
    fixed = section["fixed"]
    assert fixed["deliveries"] > 0
    assert fixed["deliveries_per_s"] > 0
    assert fixed["latency"]["samples"] > 0
    assert fixed["latency"]["p99_ms"] is not None
    assert fixed["cpu_pct"]["load_processes"]
    assert section["saturation"]["steps"]


@pytest.mark.timeout(250)
def test_latency_rounds_measured(results: dict[str, Any]) -> None:
    section = results["sections"]["latency"]
    rounds = section["rounds"]
    assert set(rounds) == {"herald", "nats-native", "herald-2proc"}
    for name, measured in rounds.items():
        assert len(measured) == results["config"]["latency_rounds"], name
        assert all(m["deliveries"] > 0 and m["latency"]["p99_ms"] is not None for m in measured), name
        assert section["median"][name]["p99_ms"] is not None


@pytest.mark.timeout(250)
def test_multi_process_gateway_used_every_worker(results: dict[str, Any]) -> None:
    fixed = results["sections"]["fanout_herald_multi"]["fixed"]
    workers = [name for name in fixed["cpu_pct"] if name.startswith("gateway-")]
    assert len(workers) == results["config"]["gateway_workers"]


@pytest.mark.timeout(250)
@pytest.mark.parametrize("name", IDLE)
def test_idle_sections_measured(results: dict[str, Any], name: str) -> None:
    section = results["sections"][name]
    assert section["connect"]["connected"] > 0
    assert section["connect"]["connects_per_s"] > 0
    assert section["rss_per_connection_kib"] is not None


@pytest.mark.timeout(250)
def test_durability_and_limits_are_stated(results: dict[str, Any]) -> None:
    settings = results["settings"]
    assert settings["nats_server"]["jetstream_sync_interval"] == "always"
    assert settings["api_overrides"] == {"HERALD_API_POST_RATE": "0"}
    assert "herald.db" in settings["api_storage"]


def _delivered(m: dict[str, Any], processes: int) -> None:
    assert m["accepted"] > 0
    assert m["distinct_deliveries"] > 0
    assert m["delivered_pct"] is not None
    assert m["latency"]["samples"] > 0 and m["latency"]["p99_ms"] is not None
    assert m["duplicates"] >= 0 and m["lost_deliveries"] >= 0
    assert len(m["cpu_pct"]["load_processes"]) == processes


@pytest.mark.timeout(250)
@pytest.mark.parametrize("name", REST_ROWS)
def test_rest_fed_rows_delivered_on_both_targets(results: dict[str, Any], name: str) -> None:
    row = results["sections"][name]
    herald, native = row["herald"], row["nats-native"]
    # The latency row runs on load processes of its own (one by default), the others on the shared ones.
    processes = results["config"]["rest_latency_processes" if name == "rest_latency" else "processes"]
    assert row.get("processes", processes) == processes
    _delivered(herald, processes)
    _delivered(native, processes)
    assert herald["sockets"] == native["sockets"] == row["clients"]
    assert herald["http"]["samples"] > 0
    assert herald["stages"]["herald_api_outbox_published"] is not None
    assert herald["stages"]["herald_bridge_events_total"] is not None
    assert set(row["ratio"]) == {"deliveries_per_s", "p50", "p99"}


@pytest.mark.timeout(250)
def test_batch_row_is_measured_or_names_the_missing_endpoint(results: dict[str, Any]) -> None:
    row = results["sections"]["rest_batch"]
    if "missing" in row:
        assert row["missing"] == "endpoint missing (404)"
    else:
        _delivered(row["herald"], results["config"]["processes"])
        assert row["herald"]["path"] == "/api/publish/batch"


@pytest.mark.timeout(250)
def test_producer_sweep_reports_every_stage(results: dict[str, Any]) -> None:
    section = results["sections"]["producer"]
    assert section["steps"] and section["stopped"]
    for step in section["steps"]:
        assert step["accepted"] > 0 and step["http"]["p99_ms"] is not None
        stages = step["stages"]
        for name in ("herald_api_outbox_backlog", "herald_api_outbox_published", "herald_bridge_lag_events"):
            assert stages[name] is not None, name
    assert [s["offered_rate"] for s in section["steps"]] == list(
        results["config"]["producer_rates"][: len(section["steps"])]
    )


@pytest.mark.timeout(250)
def test_presence_views_agreed_and_the_storm_sent_no_frames(results: dict[str, Any]) -> None:
    section = results["sections"]["presence"]
    join = section["join"]
    config = results["config"]
    assert join["members"] == config["presence_sockets"] - config["presence_watchers"] - 2
    assert join["frames"] == join["frames_expected"] > 0
    assert join["agree_seconds"] > 0 and join["batches"] > 0
    assert section["storm"]["join_leave_frames"] == 0  # reconnected within the grace
    assert section["leave"]["agree_seconds"] >= section["grace"]
