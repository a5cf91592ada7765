# SPDX-License-Identifier: Apache-2.0
"""Shared pieces of the anchor benchmarks: statistics and Markdown tables,
server subprocesses on 127.0.0.1 that are always stopped, the seed
workload's shapes, and the ``--quick`` / ``--json`` command line every
bench accepts (``run_all.py`` relies on it)."""
from __future__ import annotations

import argparse
import atexit
import importlib.util
import json
import os
import platform
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent

SEED_REQUEST = (128, 224, 224, 3)   # 77 MB float32
SEED_RESPONSE = (128, 7, 7, 512)    # 12.8 MB float32
IMAGE = SEED_REQUEST[1:]
FEATURES = SEED_RESPONSE[1:]
STARTUP_SECONDS = 120


# ---- numbers -------------------------------------------------------------------------


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def percentile(xs: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]


def spread(xs: Sequence[float], scale: float = 1.0, digits: int = 2) -> str:
    return f"{min(xs) * scale:.{digits}f}–{max(xs) * scale:.{digits}f}"


def mb(nbytes: int) -> str:
    return f"{nbytes / 1e6:.1f} MB"


def shape_text(shape: Sequence[int]) -> str:
    return "×".join(map(str, shape))


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None) -> list[str]:
    """A Markdown table; ``align``: one of 'l'/'r' per column (default: first
    left, the rest right)."""
    align = align or "l" + "r" * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def interleaved(rep: int, runs: Sequence[Callable[[], None]]) -> None:
    """Runs ``runs`` in order on even repetitions and reversed on odd ones, so
    neither side always runs first on a noisy machine."""
    for run in (runs if rep % 2 == 0 else list(reversed(runs))):
        run()


# ---- reports -------------------------------------------------------------------------


@dataclass
class Chart:
    """One bar chart: ``values[i]`` for ``labels[i]``, with min–max whiskers."""

    title: str
    unit: str
    labels: list[str]
    values: list[float]
    lows: list[float] = field(default_factory=list)
    highs: list[float] = field(default_factory=list)
    log: bool = False


@dataclass
class Report:
    title: str
    lines: list[str] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    targets: list[dict] = field(default_factory=list)  # {"target", "value", "holds"}

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def target(self, text: str, value: str, holds: bool | None) -> None:
        self.targets.append({"target": text, "value": value, "holds": holds})

    def markdown(self) -> str:
        out = [f"## {self.title}", "", *self.lines]
        if self.targets:
            out += ["", *md_table(["target", "measured", "holds"],
                                  [[t["target"], t["value"], _yes(t["holds"])] for t in self.targets],
                                  "llr")]
        return "\n".join(out) + "\n"


def _yes(holds: bool | None) -> str:
    return "n/a" if holds is None else ("**yes**" if holds else "**no**")


def bench_main(description: str, run: Callable[[argparse.Namespace], Report],
               extra: Callable[[argparse.ArgumentParser], None] | None = None,
               argv: Sequence[str] | None = None) -> Report:
    """The command line shared by the anchor benches: ``--quick``, ``--reps``,
    ``--json PATH`` (the report with its chart data, for ``run_all.py``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes, few repetitions (about a minute)")
    parser.add_argument("--tiny", action="store_true", help="smallest sizes, for the smoke test (seconds)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default depends on the mode)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    if extra:
        extra(parser)
    args = parser.parse_args(argv)
    if args.tiny:
        args.quick = True
    report = run(args)
    print(report.markdown(), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(asdict(report), indent=1))
    return report


# ---- processes -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_env() -> dict[str, str]:
    """The environment of every process a bench starts: ``bench/`` importable
    (``anchor_servers``, ``_common``); ``tf_graphpipe`` from wherever this
    process found it (the installed package, or the source tree when
    PYTHONPATH points there)."""
    env = dict(os.environ)
    paths = [str(BENCH), *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)]
    spec = importlib.util.find_spec("tf_graphpipe")  # found, not imported
    if spec is not None and spec.origin:
        root = Path(spec.origin).resolve().parent.parent
        if root.name != "site-packages":  # never hand one venv's packages to another (reference venv)
            paths.append(str(root))
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    # No current directory first on sys.path: `python -m tf_graphpipe serve`
    # started from the repository root would import the source tree, which
    # has no built native module, instead of the installed package.
    env["PYTHONSAFEPATH"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


_LIVE: list[Server] = []


class Server:
    """A server subprocess started with ``argv``; ready once it prints a line
    starting with ``ready_prefix``: ``.line`` waits for it, so servers
    created one after the other start in parallel. Stopped by ``stop()``, on
    ``with`` exit, and at interpreter exit whatever happens."""

    def __init__(self, argv: Sequence[str], ready_prefix: str | tuple[str, ...] = ("http://", "grpc://"),
                 name: str = "") -> None:
        self.name = name or " ".join(argv[:4])
        self.ready_prefix = ready_prefix
        self.stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=self.stderr,
                                        stdin=subprocess.DEVNULL, env=bench_env(), start_new_session=True)
        _LIVE.append(self)
        self._line: str | None = None

    @property
    def line(self) -> str:
        """The URL line the server printed once listening."""
        if self._line is None:
            line = _read_line(self.process, STARTUP_SECONDS)
            if not line.startswith(self.ready_prefix):
                err = self.stderr_text()
                self.stop()
                raise RuntimeError(f"{self.name} printed {line!r}, not a URL; stderr:\n{err[-3000:]}")
            self._line = line
        return self._line

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout and not self.process.stdout.closed:
            self.process.stdout.close()
        if self in _LIVE:
            _LIVE.remove(self)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


def _read_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    data = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while not data.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                break
            chunk = os.read(process.stdout.fileno(), 1)
            if not chunk:
                break
            data += chunk
    return data.decode(errors="replace").strip()


def graphpipe_server(model: str, input_spec: str, output_spec: str, *extra: str) -> Server:
    """``python -m tf_graphpipe serve MODEL`` on a free 127.0.0.1 port."""
    return Server([sys.executable, "-m", "tf_graphpipe", "serve", model, "--host", "127.0.0.1",
                   "--port", "0", "--input-spec", input_spec, "--output-spec", output_spec,
                   "--log-level", "warning", *extra], name=f"tf-graphpipe serve {model}")


def anchor_server(kind: str, *extra: str) -> Server:
    """One of ``anchor_servers.py``'s servers (prints its URL when ready)."""
    return Server([sys.executable, str(BENCH / "anchor_servers.py"), kind, "--port", str(free_port()), *extra],
                  name=f"anchor server {kind}")


def reference_python() -> Path | None:
    """The reference client's venv python (graphpipe==1.0.4), built on first
    use by ``tests/support/peer_venvs.py``; None when it cannot be had."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from support import peer_venvs
        return peer_venvs.reference_python()
    except Exception as error:  # noqa: BLE001 - reported, the bench goes on without it
        print(f"(reference graphpipe venv unavailable: {error})", file=sys.stderr)
        return None
    finally:
        sys.path.remove(str(REPO / "tests"))


# ---- the machine ---------------------------------------------------------------------


def machine() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        info["cpu"] = platform.processor()
    info["cores"] = f"{os.cpu_count()} logical (affinity: {len(os.sched_getaffinity(0))})"
    try:
        kb = int(next(line for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")).split()[1])
        info["memory"] = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        pass
    info["kernel"] = platform.release()
    try:
        info["transparent huge pages"] = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().strip()
    except OSError:
        pass
    info["python"] = platform.python_version()
    try:
        from importlib.metadata import version
        for dist in ("tensorflow-cpu", "numpy", "protobuf", "grpcio"):
            try:
                info[dist] = version(dist)
            except Exception:  # noqa: BLE001
                pass
    except ImportError:
        pass
    info["load average at start"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    info["date"] = time.strftime("%Y-%m-%d %H:%M %Z")
    return info
