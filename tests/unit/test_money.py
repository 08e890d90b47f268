from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskforce.money import MoneyError, format_yuan, to_fen, to_yuan


def test_to_fen_exact():
    assert to_fen("4999999.99") == 499999999
    assert to_fen(Decimal("5000000")) == 500000000
    assert to_fen("1,234.50") == 123450


@pytest.mark.parametrize("bad", ["0.001", "abc", "NaN", "Infinity"])
def test_to_fen_refuses(bad):
    with pytest.raises(MoneyError):
        to_fen(bad)


def test_float_refused():
    with pytest.raises(MoneyError, match="float"):
        to_fen(0.1)  # type: ignore[arg-type]


@given(st.integers(-(10**15), 10**15))
def test_round_trip(fen):
    assert to_fen(to_yuan(fen)) == fen


def test_format():
    assert format_yuan(to_fen("5000000"), "zh-CN") == "500万元"
    assert format_yuan(to_fen("12.5"), "en") == "CNY 12.50"
