# SPDX-License-Identifier: Apache-2.0
"""The server's token file: what it accepts, how it is re-read, what it never says."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from tf_graphpipe.server.auth import TokenStore

OLD, NEW = "old-token-4d1e6c0a9b", "new-token-7f2b8e5d13"


def _write(path: Path, text: str) -> None:
    """Atomically, as the docs ask: a new file renamed over the old one."""
    staged = path.with_suffix(".tmp")
    staged.write_text(text)
    os.replace(staged, path)


def test_tokens_listed_in_the_file_are_accepted_and_others_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"# rotation: old and new\n{OLD}\n\n  {NEW}  \n")
    store = TokenStore(path)
    assert store.count == 2
    assert store.refusal(f"Bearer {OLD}") is None
    assert store.refusal(f"bearer {NEW}".encode()) is None  # the scheme is case-insensitive
    assert store.refusal(None) == "this server requires a bearer token: send 'Authorization: Bearer <token>'"
    assert store.refusal(f"Bearer {OLD}x") == "the bearer token was not accepted"
    assert store.refusal(f"Basic {OLD}") .startswith("the Authorization header is not a bearer token")
    assert store.refusal("Bearer ") == "the bearer token was not accepted"
    assert store.refusal("Bearer # rotation: old and new") == "the bearer token was not accepted"


def test_rewritten_file_rotates_the_tokens(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(OLD + "\n")
    store = TokenStore(path, check_seconds=0.0)
    assert store.refusal(f"Bearer {OLD}") is None
    _write(path, NEW + "\n")
    assert store.refusal(f"Bearer {NEW}") is None
    assert store.refusal(f"Bearer {OLD}") == "the bearer token was not accepted"


def test_rewrite_in_place_is_seen_too(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(OLD)
    store = TokenStore(path, check_seconds=0.0)
    time.sleep(0.01)  # a different mtime even on coarse clocks
    path.write_text(NEW)
    assert store.refusal(f"Bearer {NEW}") is None


def test_unreadable_file_keeps_the_loaded_tokens_and_never_logs_them(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "tokens"
    path.write_text(OLD)
    store = TokenStore(path, check_seconds=0.0)
    path.unlink()
    with caplog.at_level(logging.DEBUG, logger="tf_graphpipe.server"):
        assert store.refusal(f"Bearer {OLD}") is None
        _write(path, NEW)
        assert store.refusal(f"Bearer {NEW}") is None
    assert "could not be re-read" in caplog.text
    assert OLD not in caplog.text and NEW not in caplog.text


def test_emptied_file_refuses_every_token(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(OLD)
    store = TokenStore(path, check_seconds=0.0)
    _write(path, "# revoked\n")
    assert store.refusal(f"Bearer {OLD}") == "the bearer token was not accepted"


def test_file_without_tokens_is_refused_at_start(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# nothing yet\n\n")
    with pytest.raises(ValueError, match="holds no token"):
        TokenStore(path)
    with pytest.raises(FileNotFoundError):
        TokenStore(tmp_path / "missing")


def test_changes_are_looked_for_at_most_once_per_interval(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(OLD)
    store = TokenStore(path, check_seconds=3600.0)
    _write(path, NEW)
    assert store.refusal(f"Bearer {OLD}") is None  # not re-read yet: the interval has not passed
