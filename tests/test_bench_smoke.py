# SPDX-License-Identifier: Apache-2.0
"""Smoke run of the benchmarks so they cannot rot: ``bench/run_all.py
--tiny`` runs the anchor benches at their smallest sizes (one repetition,
a few calls; most of the time is TensorFlow starting in the processes
involved). The numbers are not asserted, only that every bench ran and
produced its tables and charts, and that no server it started is left."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
ANCHOR_BENCHES = ["serialization", "rpc", "http_anchors", "memory"]

pytestmark = pytest.mark.slow


def _processes_with(marker: str) -> list[str]:
    """Command lines of live processes whose environment holds ``marker``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker.encode() in (proc / "environ").read_bytes():
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return found


def test_run_all_tiny_produces_every_table_and_cleans_up(tmp_path: Path) -> None:
    marker = f"TF_GRAPHPIPE_BENCH_SMOKE={uuid.uuid4().hex}"
    env = dict(os.environ)
    env[marker.split("=")[0]] = marker.split("=")[1]
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(BENCH), env.get("PYTHONPATH", "")] if p)
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--tiny", "--only", ",".join(ANCHOR_BENCHES), "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path,
    )
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(out.glob("*.log")))
    assert done.returncode == 0, f"run_all failed:\n{done.stderr[-3000:]}\n{logs}"

    summary = (out / "RESULTS.md").read_text()
    assert "## Machine" in summary and "## Targets" in summary
    for name in ANCHOR_BENCHES:
        markdown = (out / f"{name}.md").read_text()
        assert "|---" in markdown, f"{name} printed no table:\n{markdown}\n{logs}"
        report = json.loads((out / f"{name}.json").read_text())
        assert report["charts"] and report["targets"] is not None
        assert list(out.glob(f"{name}-*.png")), f"no chart for {name}"
        assert f"# {name}:" in summary
    # The full run's file is only written by full runs.
    assert "tiny run" in summary
    assert not _processes_with(marker), "a benchmark process outlived the run"


def test_run_all_reports_an_absent_bench(tmp_path: Path) -> None:
    """Benches that are not there are listed as absent, not an error."""
    sys.path.insert(0, str(BENCH))
    try:
        import run_all
    finally:
        sys.path.remove(str(BENCH))
    text = run_all.summary([], [("v2", "bench_v2.py", "what it measures")], "tiny", {"cpu": "x"}, {}, "")
    assert "`bench/bench_v2.py` is absent: not run." in text
    assert run_all.flags_for('parser.add_argument("--quick")', "tiny", tmp_path / "x.json") == ["--quick"]
    assert run_all.flags_for("bench_main(", "quick", tmp_path / "x.json") == ["--quick", "--json", str(tmp_path / "x.json")]
