# SPDX-License-Identifier: Apache-2.0
"""The model repository without HTTP: what it finds on disk, what it loads,
what it serves by name and version, and how versions come and go (real
SavedModels and .keras files in tmp_path, each version answering differently)."""
from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tf_graphpipe.server.demo_model import expected
from tf_graphpipe.server.repository import LoadFailed, ModelNotFound, ModelRepository
from tf_graphpipe.server.repository_config import ConfigError, ModelConfig
from tf_graphpipe.server.repository_layout import load_version, scan, warm_up
from tf_graphpipe.server.served_version import ServedVersion

from support import onnx_test_models
from support.repository_fixtures import (
    WARM_UP_GATE,
    Templates,
    X,
    add_version,
    example,
    factor_of,
    truncate_saved_model,
    wait_for,
)

POLL = 0.05


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    return Templates(tmp_path_factory.mktemp("templates"))


@pytest.fixture
def repositories() -> Iterator[list[ModelRepository]]:
    opened: list[ModelRepository] = []
    yield opened
    for repository in opened:
        repository.close()


def _start(repositories: list[ModelRepository], root: Path, poll: float = POLL) -> ModelRepository:
    repository: ModelRepository = ModelRepository(root, lambda model, config: config, poll_seconds=poll)
    repositories.append(repository)
    repository.start()
    return repository


def _answer(repository: ModelRepository, name: str | None, version: str | None = None) -> float:
    served = repository.acquire(name, version)
    try:
        return factor_of(served.model.run([X], b"")["y"])
    finally:
        served.exit()


def _states(repository: ModelRepository, name: str) -> dict[int, str]:
    for model in repository.models():
        if model["name"] == name:
            return {v["version"]: v["state"] for v in model["versions"]}
    return {}


# ---- the layout ---------------------------------------------------------------------


def test_scan_finds_model_and_version_directories_and_ignores_the_rest(tmp_path) -> None:
    for path in ("m/1", "m/2", "m/10", "m/.incoming-3", "m/0", "m/007", "m/latest", ".hidden/1", "n"):
        (tmp_path / path).mkdir(parents=True)
    (tmp_path / "README.txt").write_text("not a model")
    (tmp_path / "m" / "3").write_text("a file, not a version directory")
    found = scan(tmp_path)
    assert sorted(found) == ["m", "n"]
    assert sorted(found["m"].versions) == [1, 2, 10]
    assert found["n"].versions == {}


def test_each_model_kind_loads_from_a_version_directory(tmp_path, templates) -> None:
    saved = load_version(templates.saved_model(2), "scale", 7, ModelConfig())
    assert (saved.name, saved.version) == ("scale", "7")
    assert factor_of(saved.run([X], b"")["y"]) == 2.0
    keras = load_version(templates.keras(1), "classify", 1, ModelConfig())
    np.testing.assert_allclose(keras.run([X], b"")["probabilities"], expected(X), rtol=1e-5)
    (tmp_path / "1").mkdir()
    config = ModelConfig(callable="support.repository_fixtures:triple")
    assert factor_of(load_version(tmp_path / "1", "triple", 1, config).run([X], b"")["output0"]) == 3.0
    (tmp_path / "onnx" / "2").mkdir(parents=True)
    onnx_test_models.trivial(tmp_path / "onnx" / "2" / "model.onnx")
    onnx = load_version(tmp_path / "onnx" / "2", "identity", 2, ModelConfig())
    assert (onnx.name, onnx.version) == ("identity", "2")
    np.testing.assert_array_equal(onnx.run([X], b"")["y"], X)


@pytest.mark.parametrize(
    ("files", "config", "refusal"),
    [
        ([], ModelConfig(), "no model in it"),
        (["saved_model.pb", "model.keras"], ModelConfig(), "holds a SavedModel and model.keras"),
        (["model.keras"], ModelConfig(callable="support.repository_fixtures:triple"), "names a callable"),
        (["model.onnx"], ModelConfig(), "ONNX Runtime cannot load it"),
    ],
)
def test_version_directory_that_cannot_be_served_is_refused(tmp_path, files, config, refusal) -> None:
    version = tmp_path / "1"
    version.mkdir()
    for name in files:
        (version / name).write_bytes(b"\0")
    with pytest.raises((ValueError, RuntimeError), match=refusal):
        load_version(version, "m", 1, config)


def test_warm_up_runs_only_when_inputs_are_declared(tmp_path, templates) -> None:
    (tmp_path / "1").mkdir()
    undeclared = load_version(tmp_path / "1", "t", 1, ModelConfig(callable="support.repository_fixtures:triple"))
    assert not warm_up(undeclared)
    assert warm_up(load_version(templates.saved_model(1), "scale", 1, ModelConfig()))


# ---- leases -------------------------------------------------------------------------


def test_retired_version_drains_after_its_last_call() -> None:
    version = ServedVersion("m", 1, None, None)  # type: ignore[arg-type]
    assert version.enter() and version.enter()
    version.retire()
    assert not version.enter()  # no new calls once retired
    version.exit()
    assert not version.drained.is_set()
    version.exit()
    assert version.drained.is_set()


# ---- serving by name and version ----------------------------------------------------


def test_example_repository_serves_what_each_policy_selects(tmp_path, repositories) -> None:
    root = example().build(tmp_path / "models")
    repository = _start(repositories, root)
    assert repository.ready
    assert _states(repository, "scale") == {2: "available", 1: "available"}  # "all"
    assert _states(repository, "classify") == {1: "available"}
    assert _answer(repository, "scale") == 2.0  # no version: the newest
    assert _answer(repository, "scale", "1") == 1.0
    assert repository.lookup("classify").model.version == "1"


def test_unknown_model_or_version_is_refused_by_name(tmp_path, repositories, templates) -> None:
    add_version(tmp_path, "scale", 1, templates.saved_model(1))
    add_version(tmp_path, "other", 1, templates.saved_model(3))
    repository = _start(repositories, tmp_path)
    with pytest.raises(ModelNotFound, match="model 'nope' is not served") as info:
        repository.acquire("nope")
    assert info.value.status == 404
    with pytest.raises(ModelNotFound, match="model 'scale' has no version 9 served"):
        repository.acquire("scale", "9")
    with pytest.raises(ModelNotFound, match="has no version x1"):
        repository.acquire("scale", "x1")
    with pytest.raises(ModelNotFound, match="serves 2 models: call /models/<name> \\(other, scale\\)"):
        repository.acquire(None)


def test_only_model_is_served_without_a_name(tmp_path, repositories, templates) -> None:
    add_version(tmp_path, "scale", 4, templates.saved_model(2))
    assert _answer(_start(repositories, tmp_path), None) == 2.0


# ---- hot reload ---------------------------------------------------------------------


def test_new_version_is_swapped_in_and_the_old_one_drains(tmp_path, repositories, templates) -> None:
    add_version(tmp_path, "scale", 1, templates.saved_model(1))
    repository = _start(repositories, tmp_path)
    old = repository.acquire("scale")  # a call in flight on version 1
    add_version(tmp_path, "scale", 2, templates.saved_model(2))
    wait_for(lambda: repository.lookup("scale").version == 2, what="version 2 served")
    assert _answer(repository, "scale") == 2.0
    assert _states(repository, "scale") == {2: "available", 1: "draining"}
    assert not old.drained.is_set()
    assert factor_of(old.model.run([X], b"")["y"]) == 1.0  # the call in flight finishes on version 1
    old.exit()
    assert old.drained.is_set()
    assert _states(repository, "scale") == {2: "available"}
    with pytest.raises(ModelNotFound):
        repository.acquire("scale", "1")


def test_removed_version_and_model_stop_being_served(tmp_path, repositories, templates) -> None:
    for version in (1, 2):
        add_version(tmp_path, "scale", version, templates.saved_model(version))
    (tmp_path / "scale" / "config.json").write_text('{"version_policy": "all"}')
    add_version(tmp_path, "keep", 1, templates.saved_model(3))
    repository = _start(repositories, tmp_path)
    shutil.rmtree(tmp_path / "scale" / "2")
    wait_for(lambda: _states(repository, "scale") == {1: "available"}, what="version 2 unloaded")
    assert _answer(repository, "scale") == 1.0
    shutil.rmtree(tmp_path / "scale")
    wait_for(lambda: not _states(repository, "scale"), what="model removed")
    with pytest.raises(ModelNotFound, match="'scale'"):
        repository.acquire("scale")
    assert _answer(repository, "keep") == 3.0
    assert _answer(repository, None) == 3.0  # now the only model


def test_broken_version_is_logged_and_the_previous_one_served(tmp_path, repositories, templates, caplog) -> None:
    add_version(tmp_path, "scale", 1, templates.saved_model(1))
    add_version(tmp_path, "scale", 2, templates.saved_model(2))
    truncate_saved_model(tmp_path / "scale" / "2")
    with caplog.at_level(logging.INFO, logger="tf_graphpipe.server"):
        repository = _start(repositories, tmp_path)
    assert _answer(repository, "scale") == 1.0
    assert repository.ready  # the newest version that loads is what the policy serves
    failures = [r.getMessage() for r in caplog.records if "version 2 failed to load" in r.getMessage()]
    assert len(failures) == 1 and "saved_model.pb" in failures[0], caplog.text
    assert "model 'scale': serving version 1" in caplog.text
    [model] = repository.models()
    assert [v["state"] for v in model["versions"]] == ["failed", "available"]
    assert model["versions"][0]["error"]
    time.sleep(5 * POLL)
    assert len([r for r in caplog.records if "failed to load" in r.getMessage()]) == 1  # not retried unchanged
    shutil.rmtree(tmp_path / "scale" / "2")  # the operator fixes it: tried again
    add_version(tmp_path, "scale", 2, templates.saved_model(2))
    wait_for(lambda: repository.lookup("scale").version == 2, what="the fixed version 2")
    assert _answer(repository, "scale") == 2.0


def test_config_change_loads_the_model_again(tmp_path, repositories, templates, caplog) -> None:
    for version in (1, 2):
        add_version(tmp_path, "scale", version, templates.saved_model(version))
    repository = _start(repositories, tmp_path)
    assert _states(repository, "scale") == {2: "available"}
    (tmp_path / "scale" / "config.json").write_text('{"version_policy": {"specific": [1]}}')
    wait_for(lambda: _states(repository, "scale") == {1: "available"}, what="the specific version")
    assert _answer(repository, "scale") == 1.0
    with caplog.at_level(logging.ERROR, logger="tf_graphpipe.server"):
        (tmp_path / "scale" / "config.json").write_text('{"version_policy": {"specific": [1]}, "batch": 2}')
        wait_for(lambda: "keeps its previous config" in caplog.text, what="the refusal logged")
    assert str(tmp_path / "scale" / "config.json") in caplog.text and "unknown key 'batch'" in caplog.text
    assert _answer(repository, "scale") == 1.0
    [model] = repository.models()
    assert "unknown key 'batch'" in model["error"]


def test_invalid_config_at_start_is_refused_naming_file_and_key(tmp_path, templates) -> None:
    add_version(tmp_path, "scale", 1, templates.saved_model(1))
    (tmp_path / "scale" / "config.json").write_text('{"max_batch_size": "big"}')
    repository: ModelRepository = ModelRepository(tmp_path, lambda model, config: None)
    with pytest.raises(ConfigError, match=r"scale/config.json: key 'max_batch_size'"):
        repository.start()


def test_missing_repository_directory_is_refused(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        ModelRepository(tmp_path / "absent", lambda model, config: None)


def test_not_ready_while_a_version_loads(tmp_path, repositories, templates) -> None:
    add_version(tmp_path, "scale", 1, templates.saved_model(1))
    repository = _start(repositories, tmp_path)
    assert repository.ready
    WARM_UP_GATE.clear()
    model = tmp_path / "gated"
    (model / "1").mkdir(parents=True)
    (model / "config.json").write_text(
        '{"callable": "support.repository_fixtures:slow_warm_up", "inputs": ["x:float32:-1,4"]}')
    try:
        wait_for(lambda: _states(repository, "gated") == {1: "loading"}, what="the load to start")
        assert not repository.ready
    finally:
        WARM_UP_GATE.set()
    wait_for(lambda: repository.ready, what="ready")
    assert _states(repository, "gated") == {1: "available"}


# ---- load and unload requests -------------------------------------------------------


def test_unload_and_load_requests_without_polling(tmp_path, repositories, templates) -> None:
    add_version(tmp_path, "scale", 1, templates.saved_model(1))
    repository = _start(repositories, tmp_path, poll=0)
    repository.unload("scale").result(30)
    with pytest.raises(ModelNotFound):
        repository.acquire("scale")
    assert repository.index() == [{"name": "scale", "state": "UNAVAILABLE", "reason": "unloaded"}]
    add_version(tmp_path, "scale", 2, templates.saved_model(2))
    add_version(tmp_path, "later", 1, templates.saved_model(3))
    time.sleep(5 * POLL)  # no polling: nothing changes by itself
    assert {e["name"]: e["state"] for e in repository.index()} == {"scale": "UNAVAILABLE", "later": "UNAVAILABLE"}
    repository.load("scale").result(60)
    assert _answer(repository, "scale") == 2.0
    repository.load("later").result(60)
    assert _answer(repository, "later") == 3.0
    assert repository.index(ready_only=True) == [
        {"name": "later", "version": "1", "state": "READY"}, {"name": "scale", "version": "2", "state": "READY"}]
    with pytest.raises(ModelNotFound, match="'absent'"):
        repository.load("absent").result(30)
    with pytest.raises(ModelNotFound, match="'absent'"):
        repository.unload("absent").result(30)


def test_load_request_reports_why_nothing_could_be_served(tmp_path, repositories, templates) -> None:
    add_version(tmp_path, "scale", 1, templates.saved_model(1))
    repository = _start(repositories, tmp_path, poll=0)
    add_version(tmp_path, "broken", 1, templates.saved_model(1))
    truncate_saved_model(tmp_path / "broken" / "1")
    with pytest.raises(LoadFailed, match="failed to load 'broken': version 1: ") as info:
        repository.load("broken").result(60)
    assert info.value.status == 400
    assert not repository.ready  # a model in the repository that serves nothing
    assert _answer(repository, "scale") == 1.0
