"""``herald bench --quick`` works: every section produced numbers and both targets delivered.

A smoke test only: the machine running it is shared and small, so no figure is compared
with a threshold.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERALD = Path(sys.executable).parent / "herald"

pytestmark = pytest.mark.integration

FANOUT = ("fanout_herald", "fanout_native", "fanout_herald_multi")
IDLE = ("idle_herald", "idle_native")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    output = tmp_path_factory.mktemp("bench") / "quick.json"
    proc = subprocess.run(
        [str(HERALD), "bench", "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert f"JSON: {output}" in proc.stdout
    assert "Saturation" in proc.stdout and "End to end" in proc.stdout
    data: dict[str, Any] = json.loads(output.read_text())
    return data


@pytest.mark.timeout(120)
def test_no_section_failed(results: dict[str, Any]) -> None:
    sections = results["sections"]
    assert set(sections) == {*FANOUT, "latency", *IDLE, "end_to_end"}
    assert {name: s["error"] for name, s in sections.items() if "error" in s} == {}


@pytest.mark.timeout(120)
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


@pytest.mark.timeout(120)
def test_latency_rounds_measured(results: dict[str, Any]) -> None:
    section = results["sections"]["latency"]
    rounds = section["rounds"]
    assert set(rounds) == {"herald", "nats-native", "herald-2proc"}
    for name, measured in rounds.items():
        assert len(measured) == results["config"]["latency_rounds"], name
        assert all(m["deliveries"] > 0 and m["latency"]["p99_ms"] is not None for m in measured), name
        assert section["median"][name]["p99_ms"] is not None


@pytest.mark.timeout(120)
def test_multi_process_gateway_used_every_worker(results: dict[str, Any]) -> None:
    fixed = results["sections"]["fanout_herald_multi"]["fixed"]
    workers = [name for name in fixed["cpu_pct"] if name.startswith("gateway-")]
    assert len(workers) == results["config"]["gateway_workers"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", IDLE)
def test_idle_sections_measured(results: dict[str, Any], name: str) -> None:
    section = results["sections"][name]
    assert section["connect"]["connected"] > 0
    assert section["connect"]["connects_per_s"] > 0
    assert section["rss_per_connection_kib"] is not None


@pytest.mark.timeout(120)
def test_end_to_end_measured(results: dict[str, Any]) -> None:
    measured = results["sections"]["end_to_end"]["measured"]
    assert measured["published"] > 0
    assert measured["deliveries"] > 0
    assert measured["latency"]["samples"] > 0
    # every POST answered 201 has its request latency (a failed one may have one too)
    answered = measured["request_latency"]["samples"]
    assert measured["published"] <= answered <= measured["published"] + measured["publish_failed"]
    assert len(measured["cpu_pct"]["load_processes"]) == results["config"]["processes"]
    assert results["machine"]["cpus"]
