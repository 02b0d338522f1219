"""The results contract's key builders and parsers: each parser inverts its builder and
refuses every other column, so no figure reads a column as something it is not."""

from __future__ import annotations

import math

import pytest

from analysis.contract import (
    TRAIN_COLUMNS,
    format_value,
    info_key,
    is_probe_key,
    jsonable,
    kl_key,
    last_line,
    latent_factor_info_key,
    mean_defined,
    mean_var_key,
    metric_value,
    mi_key,
    parse_kl_key,
    parse_mi_key,
)


@pytest.mark.parametrize("i", [0, 7, 12])
def test_parsers_invert_their_builders(i):
    assert parse_kl_key(kl_key(i)) == i
    assert parse_mi_key(mi_key(i, "pos_x")) == (i, "pos_x")
    assert is_probe_key(info_key(i)) and is_probe_key(mean_var_key(i))
    assert is_probe_key(latent_factor_info_key(i, "scale"))


@pytest.mark.parametrize("column", [*TRAIN_COLUMNS, "kl_zz", "kl_z", "mi/z3", "mi/zx/shape"])
def test_parsers_refuse_other_columns(column):
    assert parse_kl_key(column) is None and parse_mi_key(column) is None
    assert not is_probe_key(column)


def test_undefined_values_are_none_and_null():
    assert metric_value(3) == 3.0 and metric_value(0.5) == 0.5
    for undefined in (None, True, "1.0", math.nan, math.inf):
        assert metric_value(undefined) is None
    assert mean_defined([1.0, None, 2.0]) == 1.5  # a seed that failed is left out
    assert mean_defined([None, None]) is None and mean_defined([]) is None
    assert jsonable({"mig": math.nan, "recon": 1.5, "x": "a"}) == {
        "mig": None,
        "recon": 1.5,
        "x": "a",
    }


def test_reasons_and_labels():
    assert last_line("Traceback ...\n  File x\nValueError: bad\n\n") == "ValueError: bad"
    assert last_line("\n \n") is None
    assert format_value(4.0) == "4" and format_value(0.000123456) == "0.0001235"
    assert format_value("image") == "image"
