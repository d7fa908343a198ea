"""build_model loads initial weights from our checkpoints or the upstream layout."""
from __future__ import annotations

import pytest
import torch

from sam3_video import checkpoint
from sam3_video.config import ConfigError, ModelConfig, WeightsRef
from sam3_video.detector.build import build_model
from sam3_video.weights import to_upstream_layout as export_state_dict

from .conftest import tiny_model


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_ROOT", str(tmp_path))
    monkeypatch.delenv("RUNS_ROOT", raising=False)
    return tmp_path


def _assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("layout", ["ours", "upstream"])
def test_init_from_checkpoint(data_root, layout):
    source = tiny_model(seed=5)
    state = source.state_dict()
    blob = {"model": state, "step": 3} if layout == "ours" else export_state_dict(state)
    torch.save(blob, data_root / "init.pt")
    loaded = tiny_model(seed=6, init=WeightsRef(path="init.pt"))
    _assert_same_weights(loaded, source)


def test_init_with_wrong_tensors_names_the_field(data_root):
    state = tiny_model(seed=5).state_dict()
    state.pop("transformer.decoder.query_embed.weight")
    state["dot_prod_scoring.prompt_proj.weight"] = torch.zeros(3, 3)
    torch.save({"model": state}, data_root / "other.pt")
    with pytest.raises(ConfigError) as err:
        build_model(ModelConfig(init=WeightsRef(path="other.pt")))
    message = str(err.value)
    assert "model.init.path" in message and "other.pt" in message
    assert "missing" in message and "shape mismatch" in message


@pytest.mark.parametrize("path", ["absent.pt", "/etc/passwd"])
def test_init_path_missing_or_outside_data_root(data_root, path):
    with pytest.raises(ConfigError, match="model.init.path"):
        build_model(ModelConfig(init=WeightsRef(path=path)))


def test_init_file_that_is_no_checkpoint(data_root):
    (data_root / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ConfigError, match="junk.pt"):
        build_model(ModelConfig(init=WeightsRef(path="junk.pt")))


def test_previous_job_checkpoint_with_rng_state(tmp_path, monkeypatch):
    """Trainer checkpoints hold RNG states as tensors and plain numbers: they load (weights
    only) from a previous job under RUNS_ROOT and from DATA_ROOT alike."""
    runs, data = tmp_path / "runs", tmp_path / "data"
    runs.mkdir(), data.mkdir()
    monkeypatch.setenv("DATA_ROOT", str(data))
    monkeypatch.setenv("RUNS_ROOT", str(runs))
    source = tiny_model(seed=7)
    blob = {"model": source.state_dict(), "rng": [checkpoint.rng_states()], "step": 10}
    torch.save(blob, runs / "step_0000010.pt")
    torch.save(blob, data / "step_0000010.pt")

    _assert_same_weights(tiny_model(init=WeightsRef(path=str(runs / "step_0000010.pt"))), source)
    _assert_same_weights(tiny_model(init=WeightsRef(path="step_0000010.pt")), source)


class _Payload:
    """An object whose unpickling would run code."""

    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_file_pickling_other_objects_is_refused_anywhere(tmp_path, monkeypatch, capsys):
    """No file is ever fully unpickled, a previous job's checkpoint under RUNS_ROOT included
    (numpy RNG state pickled as numpy objects, as checkpoints once held, is refused too)."""
    import numpy as np

    runs, data = tmp_path / "runs", tmp_path / "data"
    runs.mkdir(), data.mkdir()
    monkeypatch.setenv("DATA_ROOT", str(data))
    monkeypatch.setenv("RUNS_ROOT", str(runs))
    state = tiny_model(seed=7).state_dict()
    blobs = {"numpy.pt": {"model": state, "rng": {"numpy": np.random.get_state()}},
             "payload.pt": {"model": state, "extra": _Payload()}}
    for root in (runs, data):
        for name, blob in blobs.items():
            torch.save(blob, root / name)
            with pytest.raises(ConfigError, match="model.init.path: .*not a plain tensor checkpoint"):
                build_model(ModelConfig(init=WeightsRef(path=str(root / name))))
    assert "unpickled code ran" not in capsys.readouterr().out
