# SPDX-License-Identifier: Apache-2.0
"""Load with slow readers: 32 clients at once fetch 4 MiB answers (GraphPipe
and v2 binary, whose blobs are views of the model's output) through small
receive windows, reading a little at a time, so the server's writes stall and
resume for all of them while other answers are prepared. Every byte of every
answer must be the one the model produced for that client."""
from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np

import tf_graphpipe
from tf_graphpipe import _native

CLIENTS = 32
ROUNDS = 2
ELEMENTS = 1 << 20  # float32: 4 MiB answers
FLOAT32 = 10  # the GraphPipe wire type


def ramp(seed: np.ndarray) -> np.ndarray:
    """A 4 MiB answer that differs for every seed."""
    return np.arange(ELEMENTS, dtype=np.float32) * np.float32(1 + int(seed.reshape(-1)[0]) % 7) + seed.reshape(-1)[0]


def _graphpipe_request(seed: int) -> bytes:
    body = bytes(_native.encode_infer_request([np.array([seed], np.float32)], [FLOAT32], [], [], b""))
    return b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body


def _v2_request(seed: int) -> bytes:
    header = json.dumps({"inputs": [{"name": "seed", "datatype": "FP32", "shape": [1],
                                     "parameters": {"binary_data_size": 4}}],
                         "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}).encode()
    body = header + np.array([seed], np.float32).tobytes()
    return (b"POST /v2/models/ramp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
            b"Inference-Header-Content-Length: %d\r\n\r\n" % (len(body), len(header))) + body


class SlowReader:
    """A keep-alive connection with a small receive window, read 16 KiB at a time."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 10)
        self.sock.settimeout(60)
        self.sock.connect(("127.0.0.1", port))
        self.data = bytearray()

    def _more(self) -> None:
        chunk = self.sock.recv(16 << 10)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-answer")
        self.data += chunk
        time.sleep(0.001)

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.data:
            self._more()
        end = self.data.index(b"\r\n\r\n")
        lines = bytes(self.data[:end]).decode("latin-1").split("\r\n")
        del self.data[:end + 4]
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers["content-length"])
        while len(self.data) < length:
            self._more()
        body = bytes(self.data[:length])
        del self.data[:length]
        return int(lines[0].split()[1]), headers, body


def test_32_slow_readers_of_large_answers_get_every_byte_exact() -> None:
    failures: list[str] = []
    checked = [0]
    lock = threading.Lock()

    with tf_graphpipe.serve(ramp, name="ramp", input_specs=["seed:float32:1"],
                            output_specs=["y:float32:-1"]) as server:
        def client(index: int) -> None:
            reader = SlowReader(server.port)
            try:
                for round_ in range(ROUNDS):
                    seed = index * ROUNDS + round_
                    expected = ramp(np.array([seed], np.float32))
                    v2 = (index + round_) % 2 == 1
                    reader.sock.sendall(_v2_request(seed) if v2 else _graphpipe_request(seed))
                    status, headers, body = reader.answer()
                    if status != 200:
                        raise AssertionError(f"status {status}: {body[:200]!r}")
                    if v2:
                        json_size = int(headers["inference-header-content-length"])
                        meta = json.loads(body[:json_size])
                        assert meta["outputs"][0]["parameters"]["binary_data_size"] == expected.nbytes
                        assert body[json_size:] == expected.tobytes(), f"client {index} round {round_}: v2 bytes differ"
                    else:
                        assert body == bytes(_native.encode_infer_response([expected], [FLOAT32])), \
                            f"client {index} round {round_}: GraphPipe bytes differ"
                    with lock:
                        checked[0] += 1
            except Exception as exc:  # noqa: BLE001 - reported below, with the client's number
                with lock:
                    failures.append(f"client {index}: {type(exc).__name__}: {exc}")
            finally:
                reader.sock.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(180)
        assert not any(thread.is_alive() for thread in threads), "a client hung"
        assert not failures, failures[:5]
        assert checked[0] == CLIENTS * ROUNDS
        # Every answer is out: the server holds no request bytes any more.
        assert server.dispatcher.budget.in_flight == 0
