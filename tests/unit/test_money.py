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
    # 万元 only where exact to 0.01万; a table column in one unit (wan=True) rounds.
    assert format_yuan(to_fen("5000000.01"), "zh-CN") == "5,000,000.01元"
    assert format_yuan(to_fen("123500"), "zh-CN") == "12.35万元"
    assert format_yuan(to_fen("123456"), "zh-CN") == "123,456.00元"
    assert format_yuan(to_fen("9999.99"), "zh-CN") == "9,999.99元"
    assert format_yuan(0, "zh-CN", wan=True) == "0.00万元"
    assert format_yuan(to_fen("123456"), "zh-CN", wan=True) == "12.35万元"
    assert format_yuan(to_fen("123449.99"), "zh-CN", wan=True) == "12.34万元"
    assert format_yuan(to_fen("900000"), "zh-CN", wan=True) == "90.00万元"
    assert format_yuan(to_fen("-40"), "zh-CN", wan=True) == "0.00万元"  # not -0.00
    assert format_yuan(to_fen("-4000"), "zh-CN", wan=True) == "-0.40万元"
    assert format_yuan(to_fen("12.5"), "en") == "CNY 12.50"
