# SPDX-License-Identifier: Apache-2.0
"""A short coverage-guided fuzz run of cc/core's decoders under AddressSanitizer,
LeakSanitizer and UndefinedBehaviorSanitizer (libFuzzer targets in fuzz/).

scripts/fuzz_build.sh installs clang when it is absent and builds the targets;
scripts/fuzz_run.sh runs them. Each target, besides surviving its input,
checks that decoded views stay inside the buffer and agree with their shapes,
and that a decoded message re-encodes into bytes that decode to the same
values. The long run (>= 10^6 inputs per target) is documented in
docs/robustness.md.
"""
from __future__ import annotations

import re
import subprocess

import pytest

from conftest import REPO

TARGETS = ["decode_request_fuzzer", "decode_infer_response_fuzzer",
           "decode_metadata_response_fuzzer", "read_answer_fuzzer", "read_v2_answer_fuzzer",
           "decode_v2_request_fuzzer"]
SECONDS_PER_TARGET = 6
BIN = REPO / "build" / "fuzz" / "bin"


@pytest.fixture(scope="module")
def built() -> None:
    run = subprocess.run(["bash", str(REPO / "scripts" / "fuzz_build.sh")], capture_output=True, text=True,
                         timeout=1200)
    assert run.returncode == 0, f"scripts/fuzz_build.sh failed:\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"


@pytest.mark.parametrize("target", TARGETS)
def test_target_is_built_with_address_and_undefined_behaviour_sanitizers(built, target: str) -> None:
    binary = (BIN / target).read_bytes()
    for runtime, marker in (("AddressSanitizer", b"__asan_report_load"), ("UndefinedBehaviorSanitizer",
                                                                       b"__ubsan_handle_"),
                            ("libFuzzer", b"LLVMFuzzerTestOneInput")):
        assert marker in binary, f"{target} is not built with {runtime}"


def test_short_fuzz_run_finds_no_crash_leak_or_undefined_behaviour(built) -> None:
    run = subprocess.run(["bash", str(REPO / "scripts" / "fuzz_run.sh"), "-t", str(SECONDS_PER_TARGET)],
                         capture_output=True, text=True, timeout=600)
    report = run.stdout + run.stderr
    assert run.returncode == 0, f"the fuzzers found a problem:\n{report[-6000:]}"
    for target in TARGETS:
        found = re.search(rf"fuzz_run: {target}: (\d+) inputs, corpus \d+, no crash", report)
        assert found and int(found.group(1)) > 1000, f"{target} did not run:\n{report}"
