from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskforce.money import MoneyError, format_yuan, format_yuan_alike, to_fen, to_yuan


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


def test_amounts_of_one_sentence_share_a_unit():
    alike = format_yuan_alike
    # The trial's sentence: 750.01万 is exact, 20,000,000.01 is not: both in 元.
    assert alike([to_fen("20000000.01"), to_fen("7500100")]) == [
        "20,000,000.01元",
        "7,500,100.00元",
    ]
    assert alike([to_fen("20000000"), to_fen("7500100")]) == ["2,000万元", "750.01万元"]
    assert alike([to_fen("5000000"), 0]) == ["500万元", "0万元"]
    assert alike([to_fen("9999.99"), to_fen("100")]) == ["9,999.99元", "100.00元"]  # below 1万
    assert alike([to_fen("10000"), to_fen("100")]) == ["1万元", "0.01万元"]
    assert alike([to_fen("12.5"), to_fen("10000")], "en") == ["CNY 12.50", "CNY 10,000.00"]


@given(st.lists(st.integers(-(10**13), 10**13), min_size=1, max_size=4))
def test_amounts_alike_are_in_one_unit_and_exact(fens):
    shown = format_yuan_alike(fens)
    units = {text.endswith("万元") for text in shown}
    assert len(units) == 1, shown
    for fen, text in zip(fens, shown, strict=True):  # nothing rounded away
        number = Decimal(text.removesuffix("元").removesuffix("万").replace(",", ""))
        assert number * (10_000 if text.endswith("万元") else 1) == to_yuan(fen)
