# SPDX-License-Identifier: Apache-2.0
"""A quiet start for the ``tf-graphpipe`` command: TensorFlow's start-up lines
(oneDNN, cpu_feature_guard, absl's "before absl::InitializeLog()" banner)
are hidden unless ``--log-level debug`` asks for them.

It has to happen in the package's ``__init__``, before TensorFlow is
imported: the command's module (``tf_graphpipe.cli``) is only imported after
the package, and TensorFlow prints while it is imported. Two mechanisms,
because TensorFlow logs through two libraries: ``TF_CPP_MIN_LOG_LEVEL=2``
silences its own logging (INFO and WARNING) for the whole run, and absl's
log lines written during the import itself (which that variable does not
reach) are taken out of what the import wrote to file descriptor 2; every
other line (errors, Python warnings) is written back.

Only a process that is the command changes anything, and only when the
user has not set ``TF_CPP_MIN_LOG_LEVEL`` themselves: a program that imports
tf_graphpipe keeps TensorFlow's logging as it is.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence

__all__ = ["import_tensorflow"]

COMMAND = "tf-graphpipe"
MODULE = "tf_graphpipe"

# An absl or TSL log record at INFO or WARNING ("I0000 00:00:17... 123 port.cc:153] ..."
# or "2026-01-01 10:00:00.123456: I tensorflow/...cc:12] ...").
# absl writes the seconds as the whole Unix time until InitializeLog() is called.
_RECORD = re.compile(rb"^(?:[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ |\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] )\S+:\d+\] ")
# What ends a dropped record's continuation lines: another record, a Python
# warning or a traceback.
_NOT_CONTINUATION = re.compile(
    rb"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ |\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] |\S+:\d+: \w+: |Traceback )")
_ABSL_BANNER = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def command_arguments(orig_argv: Sequence[str]) -> list[str] | None:
    """The arguments given to ``tf-graphpipe`` when ``orig_argv`` (the
    interpreter's command line) runs the command, either as the installed
    script or as ``python -m tf_graphpipe``; None otherwise."""
    options = iter(orig_argv[1:])
    for arg in options:  # the interpreter's own options, up to what it runs
        if arg == "-m" or arg.startswith("-m"):
            module = arg[2:] or next(options, "")
            return list(options) if module == MODULE else None
        if arg in ("-W", "-X"):
            next(options, None)
        elif arg == "-c" or not arg.startswith("-"):
            break
    # The installed script: python /path/bin/tf-graphpipe ARGS (argv[0] is the script).
    if sys.argv and os.path.basename(sys.argv[0]) == COMMAND:
        return list(sys.argv[1:])
    return None


def wants_tensorflow_lines(arguments: Sequence[str]) -> bool:
    """Whether the command was asked to show TensorFlow's own logging."""
    for i, arg in enumerate(arguments):
        if arg == "--log-level=debug" or (arg == "--log-level" and arguments[i + 1:i + 2] == ["debug"]):
            return True
    return False


def without_start_up_lines(text: bytes) -> bytes:
    """``text`` minus INFO/WARNING log records (with their continuation
    lines) and absl's banner; errors and anything else are kept."""
    kept: list[bytes] = []
    in_dropped_record = False
    for line in text.splitlines(keepends=True):
        if _RECORD.match(line):
            in_dropped_record = True
        elif line.rstrip(b"\r\n") == _ABSL_BANNER:
            in_dropped_record = False
        elif not in_dropped_record or _NOT_CONTINUATION.match(line):
            in_dropped_record = False
            kept.append(line)
    return b"".join(kept)


@contextlib.contextmanager
def _start_up_lines_hidden() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            rest = without_start_up_lines(capture.read())
            if rest:
                os.write(2, rest)


def import_tensorflow() -> None:
    """Imports TensorFlow quietly when this process is the ``tf-graphpipe``
    command (see the module docstring); does nothing otherwise."""
    arguments = command_arguments(getattr(sys, "orig_argv", sys.argv))
    if arguments is None or wants_tensorflow_lines(arguments) or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    with _start_up_lines_hidden():
        import tensorflow  # noqa: F401 - imported here so that its start-up lines are caught
