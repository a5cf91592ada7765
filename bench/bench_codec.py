# SPDX-License-Identifier: Apache-2.0
"""Codec speed on the seed workload (SPEC section 4), as ratios to an anchor
measured in the same run.

Workload: an InferRequest of 128x224x224x3 float32 (77 MB) and an
InferResponse of 128x7x7x512 float32 (12.8 MB). Four steps, as a client and
a server run them: encode request, decode request (server side), encode
response, decode response. Anchor: one ``np.copyto`` of the same bytes into a
reused buffer (the least any encoder that must copy the tensor can do).
Steps and anchor are interleaved in every repetition; medians and min-max
are reported. A second table shows that decoding does not grow with the
tensor (it verifies offsets and makes views, it never touches the data).

Usage::

    .venv/bin/python bench/bench_codec.py            # seed workload, 15 reps
    .venv/bin/python bench/bench_codec.py --quick    # small sizes, a smoke run
"""
from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from tf_graphpipe import _native

FLOAT32 = 10
SEED_REQUEST = (128, 224, 224, 3)
SEED_RESPONSE = (128, 7, 7, 512)
QUICK_REQUEST = (4, 224, 224, 3)
QUICK_RESPONSE = (4, 7, 7, 512)


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """Seconds one call takes, and its result (freed by the caller, untimed)."""
    start = time.perf_counter_ns()
    result = fn()
    return (time.perf_counter_ns() - start) / 1e9, result


def encode_request(x: np.ndarray, copy: bool = True) -> _native.Message:
    """copy=False is what Client.infer sends: large tensors referenced, not
    copied, and sent as parts (scatter-gather)."""
    return _native.encode_infer_request([x], [FLOAT32], ["images"], ["features"], b"", copy=copy)


def encode_response(y: np.ndarray) -> _native.Message:
    return _native.encode_infer_response([y], [FLOAT32])


def mb(nbytes: int) -> str:
    return f"{nbytes / 1e6:.1f} MB"


def fmt_ms(samples: list[float]) -> tuple[str, str]:
    med = statistics.median(samples) * 1e3
    return f"{med:.2f}", f"{min(samples) * 1e3:.2f}–{max(samples) * 1e3:.2f}"


def fmt_us(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1e6:.1f}"


def seed_table(request_shape: tuple[int, ...], response_shape: tuple[int, ...], reps: int) -> list[str]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(request_shape, dtype=np.float32)
    y = rng.standard_normal(response_shape, dtype=np.float32)
    x_copy, y_copy = np.empty_like(x), np.empty_like(y)
    np.copyto(x_copy, x)  # touch the reused buffers once, outside the timing
    np.copyto(y_copy, y)

    steps = ["encode request", "decode request", "encode response", "decode response"]
    extra = ["anchor", "encode copied", "fresh", "malloc"]
    # The server receives the request as one contiguous body.
    received = bytearray(bytes(encode_request(x)))
    samples: dict[str, list[float]] = {k: [] for k in [*steps, "codec total", *extra]}

    # Warm-up: first-touch of allocator arenas, import-time costs.
    for _ in range(2):
        m = encode_request(x)
        _native.decode_request(m)
        r = encode_response(y)
        _native.decode_infer_response(r)
        del m, r

    for rep in range(reps):
        def anchor() -> None:
            t1, _ = timed(lambda: np.copyto(x_copy, x))
            t2, _ = timed(lambda: np.copyto(y_copy, y))
            samples["anchor"].append(t1 + t2)

        def codec() -> None:
            t_er, message = timed(lambda: encode_request(x, copy=False))
            assert message.parts > 1
            t_dr, decoded = timed(lambda: _native.decode_request(received))
            assert decoded[3][0].shape == request_shape
            t_es, response = timed(lambda: encode_response(y))
            t_ds, outputs = timed(partial(_native.decode_infer_response, response))
            assert outputs[0].shape == response_shape
            for name, t in zip(steps, (t_er, t_dr, t_es, t_ds)):
                samples[name].append(t)
            samples["codec total"].append(t_er + t_dr + t_es + t_ds)
            del decoded, outputs, message, response

        def encode_copied() -> None:
            # Context only: a request that owns all its bytes (one copy).
            t, message = timed(lambda: encode_request(x))
            samples["encode copied"].append(t)
            del message

        def fresh() -> None:
            # Context only: the same copies into newly allocated buffers, which
            # is what an encoder building a new message must pay (page faults).
            t1, a = timed(lambda: np.copyto(np.empty_like(x), x))
            t2, b = timed(lambda: np.copyto(np.empty_like(y), y))
            samples["fresh"].append(t1 + t2)
            del a, b

        def malloc() -> None:
            # Context only: a copy into plain malloc'd memory (4 KiB pages, no
            # huge-page advice), like any C++ buffer made with new[].
            t1, a = timed(x.tobytes)
            t2, b = timed(y.tobytes)
            samples["malloc"].append(t1 + t2)
            del a, b

        order = ([anchor, codec, encode_copied, fresh, malloc] if rep % 2 == 0
                 else [codec, malloc, fresh, encode_copied, anchor])
        for run in order:
            run()
            gc.collect()

    nx, ny = x.nbytes, y.nbytes
    sizes = {"encode request": nx, "decode request": nx, "encode response": ny, "decode response": ny,
             "codec total": nx + ny, "anchor": nx + ny, "encode copied": nx, "fresh": nx + ny,
             "malloc": nx + ny}
    labels = {
        "encode request": f"encode request ({mb(nx)}, as Client.infer sends it: referenced, scatter-gather)",
        "decode request": "decode request (server side)",
        "encode response": f"encode response ({mb(ny)})",
        "decode response": "decode response",
        "codec total": "**codec total**",
        "anchor": f"**anchor: np.copyto of the same {mb(nx + ny)} into a reused buffer**",
        "encode copied": "context: encode request into a message owning every byte (one copy)",
        "fresh": "context: np.copyto into a fresh NumPy buffer (NumPy asks for huge pages)",
        "malloc": "context: x.tobytes() + y.tobytes() (fresh malloc'd buffer, 4 KiB pages)",
    }
    lines = [
        f"Request {'x'.join(map(str, request_shape))} float32, response "
        f"{'x'.join(map(str, response_shape))} float32; {reps} interleaved repetitions.",
        "",
        "| step | median ms | min–max ms | GB/s (median) |",
        "|---|---:|---:|---:|",
    ]
    for key in [*steps, "codec total", *extra]:
        med, spread = fmt_ms(samples[key])
        rate = sizes[key] / statistics.median(samples[key]) / 1e9
        rate_text = "(no copy)" if key.startswith("decode") or key == "encode request" else f"{rate:.1f}"
        lines.append(f"| {labels[key]} | {med} | {spread} | {rate_text} |")
    ratio = statistics.median(samples["codec total"]) / statistics.median(samples["anchor"])
    per_rep = [c / a for c, a in zip(samples["codec total"], samples["anchor"])]
    lines.append(
        f"| **ratio codec total / anchor** | **{ratio:.2f}×** | "
        f"{min(per_rep):.2f}–{max(per_rep):.2f} (per repetition) | target ≤ 1.30 |"
    )
    return lines


def decode_size_table(small_shape: tuple[int, ...], large_shape: tuple[int, ...], reps: int) -> list[str]:
    """Decode time at two tensor sizes: it must not grow with the data."""
    rows = []
    results = {}
    for shape in (small_shape, large_shape):
        t = np.ones(shape, np.float32)
        request = encode_request(t)
        response = encode_response(t)
        for _ in range(3):
            _native.decode_request(request)
            _native.decode_infer_response(response)
        req_times, resp_times = [], []
        for _ in range(reps * 20):
            req_times.append(timed(partial(_native.decode_request, request))[0])
            resp_times.append(timed(partial(_native.decode_infer_response, response))[0])
        results[shape] = (t.nbytes, req_times, resp_times)
        del request, response, t
    (n_small, rq_s, rs_s), (n_large, rq_l, rs_l) = results[small_shape], results[large_shape]
    rows += [
        "| decode | " + f"{mb(n_small)} tensor µs | {mb(n_large)} tensor µs | large / small |",
        "|---|---:|---:|---:|",
        f"| decode request | {fmt_us(rq_s)} | {fmt_us(rq_l)} | "
        f"{statistics.median(rq_l) / statistics.median(rq_s):.2f}× |",
        f"| decode response | {fmt_us(rs_s)} | {fmt_us(rs_l)} | "
        f"{statistics.median(rs_l) / statistics.median(rs_s):.2f}× |",
        "",
        f"(data grew {n_large / n_small:.0f}×; medians of {reps * 20} calls each)",
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few repetitions")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 15, quick 5)")
    args = parser.parse_args()
    reps = args.reps or (5 if args.quick else 15)
    request_shape, response_shape = (QUICK_REQUEST, QUICK_RESPONSE) if args.quick else (SEED_REQUEST, SEED_RESPONSE)

    print("## Codec: encode + decode of the seed workload vs np.copyto\n")
    print("\n".join(seed_table(request_shape, response_shape, reps)))
    print("\n## Decode time does not depend on tensor size\n")
    small = (1, 256, 256, 4)  # 1 MB float32
    print("\n".join(decode_size_table(small, request_shape, reps)))


if __name__ == "__main__":
    main()
