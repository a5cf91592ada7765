# SPDX-License-Identifier: Apache-2.0
"""Runs every benchmark in ``bench/`` with one command and collects the
results: Markdown tables, PNG bar charts, and the speed targets.

Each bench runs in its own fresh process, one after the other (never in
parallel: the machine is small and shared), with the same mode flag. The
anchor benches (``bench_serialization``, ``bench_rpc``,
``bench_http_anchors``, ``bench_memory``) also write their chart data as
JSON; ``bench_codec``, ``bench_e2e`` and ``bench_v2`` are included by their
printed tables (and their charts, if they write the same JSON with
``--json``). A bench whose file is absent is listed as such.

Outputs, in ``--out`` (default ``bench/out/``): ``RESULTS.md`` (machine,
every table, the targets), ``NAME.md`` / ``NAME.log`` per bench, and
``NAME-N.png`` charts. A full run of every bench (no ``--quick``, no
``--only``) also replaces ``bench/RESULTS.md`` and its charts in
``bench/results/``.

Usage::

    .venv/bin/python bench/run_all.py            # the seed workload (about 15-30 minutes)
    .venv/bin/python bench/run_all.py --quick    # small sizes, a few minutes
    .venv/bin/python bench/run_all.py --only rpc,memory
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH, bench_env, machine, md_table  # noqa: E402

# (name, file, what it is); in running order: cheap and isolated first.
BENCHES = [
    ("codec", "bench_codec.py", "tf-graphpipe codec vs one memcpy, in depth"),
    ("serialization", "bench_serialization.py", "serialization: every format vs one memcpy"),
    ("rpc", "bench_rpc.py", "the op vs TensorFlow's in-graph RPC"),
    ("http_anchors", "bench_http_anchors.py", "end to end vs a JSON API and TF Serving's protobuf"),
    ("e2e", "bench_e2e.py", "end to end vs the loopback ceiling, the reference client, the HTTP floor"),
    ("v2", "bench_v2.py", "Open Inference Protocol v2: vs the loopback ceiling and NVIDIA Triton"),
    ("onnx", "bench_onnx.py", "ONNX models: serve vs ONNX Runtime in process, vs a Python callable"),
    ("ray", "bench_ray.py", "Ray Serve: vs a bare Ray Serve deployment through the same proxy; replica scaling"),
    ("repository", "bench_repository.py", "model repository: 10 models vs one alone, calls while a version loads"),
    ("security", "bench_security.py", "production serving: TLS vs plain HTTP (seed), metrics on vs --no-metrics (1x4)"),
    ("deadlines", "bench_deadlines.py", "travelling deadlines: the 1x4 path with a deadline vs without"),
    ("op_overhead", "bench_op_overhead.py", "the op vs Client.infer and a no-I/O tf.function, batch 4"),
    ("memory", "bench_memory.py", "peak RSS growth during one seed call"),
]
TIMEOUT_SECONDS = {"tiny": 600, "quick": 1200, "full": 3600}


def flags_for(source: str, mode: str, json_path: Path) -> list[str]:
    """The flags a bench understands, read from its source (no import)."""
    if "bench_main(" in source:  # the anchor benches: _common.bench_main's command line
        source += '"--quick" "--tiny" "--reps" "--json"'
    flags = []
    if mode in ("quick", "tiny") and '"--quick"' in source:
        flags.append("--quick")
    if mode == "tiny":
        if '"--tiny"' in source:
            flags.append("--tiny")
        elif '"--reps"' in source:
            flags += ["--reps", "1"]
    if '"--json"' in source:
        flags += ["--json", str(json_path)]
    return flags


def run_bench(name: str, path: Path, mode: str, out: Path) -> dict:
    """Runs one bench; returns what happened (markdown, report, status)."""
    json_path = out / f"{name}.json"
    json_path.unlink(missing_ok=True)
    flags = flags_for(path.read_text(), mode, json_path)
    argv = [sys.executable, str(path), *flags]
    print(f"[run_all] {name}: {' '.join(argv[1:])}", file=sys.stderr, flush=True)
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    with open(out / f"{name}.log", "w") as log:
        try:
            done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=log, text=True, env=bench_env(),
                                  timeout=TIMEOUT_SECONDS[mode], cwd=BENCH.parent)
            code, stdout = done.returncode, done.stdout
        except subprocess.TimeoutExpired as expired:
            code = "timeout"
            partial = expired.stdout
            stdout = partial.decode(errors="replace") if isinstance(partial, bytes) else (partial or "")
    seconds = time.monotonic() - t0
    (out / f"{name}.md").write_text(stdout)
    result = {"name": name, "file": path.name, "code": code, "seconds": seconds, "load": load,
              "markdown": stdout, "report": None}
    if json_path.exists():
        result["report"] = json.loads(json_path.read_text())
    if code != 0:
        tail = (out / f"{name}.log").read_text().strip().splitlines()[-15:]
        result["error"] = "\n".join(tail)
    print(f"[run_all] {name}: exit {code} in {seconds:.0f} s", file=sys.stderr, flush=True)
    return result


def chart_data(report: object) -> list[dict]:
    """Charts of a bench's JSON: the anchor benches' ``charts``; for another
    bench's raw samples shaped ``{section: {path: [numbers]}}``, one chart of
    medians (min-max whiskers) per section."""
    if not isinstance(report, dict):
        return []
    if "charts" in report:
        return report["charts"]
    found = []
    for section, paths in report.items():
        if not (isinstance(paths, dict) and paths and all(
                isinstance(v, list) and v and all(isinstance(n, (int, float)) for n in v) for v in paths.values())):
            continue
        labels = list(paths)
        values = [statistics.median(paths[k]) for k in labels]
        found.append({"title": f"{section} (medians of the raw samples; units as in the table)", "unit": section,
                      "labels": labels, "values": values, "lows": [min(paths[k]) for k in labels],
                      "highs": [max(paths[k]) for k in labels],
                      "log": max(values) > 50 * max(min(values), 1e-12)})
    return found


def charts(result: dict, out: Path) -> list[str]:
    """PNG bar charts of a bench's chart data; returns their file names."""
    data = chart_data(result.get("report"))
    if not data:
        return []
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    for i, chart in enumerate(data, 1):
        fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(chart["labels"]) + 1.5), 3.6), dpi=110)
        values = chart["values"]
        xs = range(len(values))
        errors = None
        if chart.get("lows") and chart.get("highs"):
            errors = [[max(0.0, v - lo) for v, lo in zip(values, chart["lows"])],
                      [max(0.0, hi - v) for v, hi in zip(values, chart["highs"])]]
        colors = ["#d95f02" if ("graphpipe" in label.lower() or "remote_call" in label) and "1.0.4" not in label
                  else "#7570b3" for label in chart["labels"]]
        ax.bar(xs, values, yerr=errors, capsize=4, color=colors)
        ax.set_xticks(list(xs), chart["labels"], rotation=20, ha="right", fontsize=8)
        ax.set_ylabel(chart["unit"])
        ax.set_title(chart["title"], fontsize=10)
        if chart.get("log"):
            ax.set_yscale("log")
        for x, v in zip(xs, values):
            ax.annotate(f"{v:.3g}", (x, v), ha="center", va="bottom", fontsize=7,
                        xytext=(0, 2), textcoords="offset points")
        fig.tight_layout()
        name = f"{result['name']}-{i}.png"
        fig.savefig(out / name)
        plt.close(fig)
        names.append(name)
    return names


def strip_title(markdown: str) -> str:
    """A bench's output without its own top-level heading lines; output that
    is not Markdown (no table) goes in a code block."""
    text = re.sub(r"^# .*\n", "", markdown, flags=re.M).strip()
    if text and not re.search(r"^\|[-:| ]+\|$", text, flags=re.M):
        text = f"```\n{text}\n```"
    return text


def markdown_targets(markdown: str) -> list[list[str]]:
    """Rows [target, measured, holds] of the ``| target | measured | holds |``
    tables a bench printed (for benches that write no JSON report)."""
    rows, inside = [], False
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if cells is None:
            inside = False
        elif [c.lower() for c in cells[:3]] == ["target", "measured", "holds"]:
            inside = True
        elif inside and not set(line) <= set("|-: "):
            rows.append((cells + ["", "", ""])[:3])
    return rows


def summary(results: list[dict], missing: list[tuple[str, str, str]], mode: str, info: dict[str, str],
            images: dict[str, list[str]], image_prefix: str) -> str:
    lines = [f"# Benchmark results ({mode} run)", "",
             f"`.venv/bin/python bench/run_all.py{'' if mode == 'full' else ' --' + mode}`; "
             "every ratio compares figures measured in this same run. See `bench/README.md` for what "
             "each bench does.", "", "## Machine", "",
             *md_table(["", ""], [[k, v] for k, v in info.items()], "ll"), ""]
    targets = []
    for r in results:
        report = r.get("report")
        if isinstance(report, dict) and "targets" in report:
            for t in report["targets"]:
                targets.append([t["target"], t["value"],
                                "n/a" if t["holds"] is None else ("yes" if t["holds"] else "**no**"), r["name"]])
        else:
            for target, value, holds in markdown_targets(r["markdown"]):
                no = holds.strip("*").lower() in ("no", "false")
                targets.append([target, value, "**no**" if no else holds.strip("*").lower(), r["name"]])
    if targets:
        lines += ["## Targets", "", *md_table(["target", "measured", "holds", "bench"], targets, "llrl"), ""]
    lines += ["## Benches", "", *md_table(
        ["bench", "file", "status", "seconds", "load avg at start"],
        [[r["name"], r["file"], "ok" if r["code"] == 0 else f"**failed ({r['code']})**", f"{r['seconds']:.0f}",
          f"{r['load']:.2f}"] for r in results]
        + [[name, file, "absent (file not in bench/)", "–", "–"] for name, file, _ in missing], "llrrr"), ""]
    for r in results:
        what = next(d for n, _, d in BENCHES if n == r["name"])
        lines += [f"# {r['name']}: {what}", ""]
        if r["code"] != 0:
            lines += [f"**Failed** (exit {r['code']}); last lines of `{r['name']}.log`:", "", "```",
                      r.get("error", ""), "```", ""]
        body = strip_title(r["markdown"])
        if body:
            lines += [body, ""]
        for image in images.get(r["name"], []):
            lines += [f"![{image}]({image_prefix}{image})", ""]
    for name, file, what in missing:
        lines += [f"# {name}: {what}", "", f"`bench/{file}` is absent: not run.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    parser.add_argument("--tiny", action="store_true", help="smallest sizes, for the smoke test")
    parser.add_argument("--out", type=Path, default=BENCH / "out", help="output folder")
    parser.add_argument("--only", default="", help="comma-separated bench names (default: all)")
    parser.add_argument("--no-results", action="store_true", help="full run without updating bench/RESULTS.md")
    args = parser.parse_args(argv)
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    unknown = only - {n for n, _, _ in BENCHES}
    if unknown:
        parser.error(f"unknown bench(es) {', '.join(sorted(unknown))}; known: {', '.join(n for n, _, _ in BENCHES)}")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    info = machine()

    results, missing = [], []
    for name, file, what in BENCHES:
        if only and name not in only:
            continue
        path = BENCH / file
        if not path.exists():
            print(f"[run_all] {name}: bench/{file} is absent, skipped", file=sys.stderr, flush=True)
            missing.append((name, file, what))
            continue
        results.append(run_bench(name, path, mode, out))

    images = {}
    for r in results:
        try:
            images[r["name"]] = charts(r, out)
        except Exception as error:  # noqa: BLE001 - tables matter more than pictures
            print(f"[run_all] charts for {r['name']} failed: {error}", file=sys.stderr)
    text = summary(results, missing, mode, info, images, "")
    (out / "RESULTS.md").write_text(text)
    print(text)
    if mode == "full" and not args.no_results and not only:
        charts_dir = BENCH / "results"
        charts_dir.mkdir(exist_ok=True)
        for names in images.values():
            for image in names:
                shutil.copy(out / image, charts_dir / image)
        (BENCH / "RESULTS.md").write_text(summary(results, missing, mode, info, images, "results/"))
        print(f"[run_all] wrote {BENCH / 'RESULTS.md'} and its charts in {charts_dir}", file=sys.stderr)
    failed = [r["name"] for r in results if r["code"] != 0]
    if failed:
        print(f"[run_all] failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
