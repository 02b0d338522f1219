"""The trial config: defaults, coercion at the edge, and clear errors naming the key."""

from __future__ import annotations

import pytest

from trainables.config import ConfigError, TrialConfig, parse_overrides


def test_burgess_defaults():
    c = TrialConfig()
    assert (c.lr, c.batch_size, c.latent_dim, c.channels, c.hidden) == (5e-4, 64, 10, 32, 256)
    assert (c.objective, c.gamma, c.c_start, c.c_max, c.c_steps) == (
        "capacity",
        1000,
        0,
        25,
        100_000,
    )


def test_from_dict_coerces_strings_and_round_trips(tmp_path):
    c = TrialConfig.from_dict({"beta": "4", "steps": 10.0, "cuda_graph": "false"})
    assert (c.beta, c.steps, c.cuda_graph) == (4.0, 10, False)
    c2 = c.replace(c_schedule="piecewise", c_points=[[0, 0], [5, 2.5]])
    c2.save(tmp_path / "c.json")
    assert TrialConfig.load(tmp_path / "c.json") == c2


def test_on_and_off_read_by_yaml_as_booleans_stay_on_and_off():
    sets = parse_overrides(["prerender=on", "channels_last=off"])
    c = TrialConfig.from_dict(sets)
    assert (c.prerender, c.channels_last) == ("on", False)
    with pytest.raises(ConfigError, match="encoder='on' is out of range"):
        TrialConfig.from_dict(parse_overrides(["encoder=on"]))


@pytest.mark.parametrize(
    ("values", "names"),
    [
        ({"bta": 1}, "'bta'"),
        ({"beta": -1}, "beta"),
        ({"gamma": -3}, "gamma"),
        ({"c_start": 5, "c_max": 2}, "c_max"),
        ({"steps": 0}, "steps"),
        ({"steps": 1.5}, "steps"),
        ({"lr": "fast"}, "lr"),
        ({"encoder": "pixels"}, "encoder"),
        ({"objective": "elbo"}, "objective"),
        ({"c_schedule": "piecewise"}, "c_points"),
        ({"c_schedule": "piecewise", "c_points": [[5, 1], [2, 2]]}, "c_points"),
        ({"device": "tpu"}, "device"),
        ({"precision": "fp8"}, "precision"),
        ({"channels_last": "maybe"}, "channels_last"),
        ({"prerender": "always"}, "prerender"),
    ],
)
def test_bad_values_name_their_key(values, names):
    with pytest.raises(ConfigError, match=names) as e:
        TrialConfig.from_dict(values)
    assert "\n" not in str(e.value)


def test_parse_overrides_reads_yaml_values():
    got = parse_overrides(
        ["beta=4", "encoder=factors", "c_points=[[0, 0], [10, 5]]", "eval_fast=false"]
    )
    assert got == {
        "beta": 4,
        "encoder": "factors",
        "c_points": [[0, 0], [10, 5]],
        "eval_fast": False,
    }
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["beta"])


def test_a_config_error_carries_its_field():
    import pickle

    with pytest.raises(ConfigError) as e:
        TrialConfig.from_dict({"gamma": -1})
    assert e.value.key == "gamma" and "gamma=-1" in str(e.value)
    with pytest.raises(ConfigError) as e:
        TrialConfig.from_dict({"gamma": "lots"})
    assert e.value.key == "gamma"
    with pytest.raises(ConfigError) as e:
        TrialConfig.from_dict({"gama": 1})
    assert e.value.key == "gama"
    back = pickle.loads(pickle.dumps(e.value))  # Ray ships errors between processes
    assert (back.key, str(back)) == (e.value.key, str(e.value))
