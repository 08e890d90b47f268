"""Money is exact (ARCHITECTURE.md rule 6): integer fen in storage, Decimal yuan at the edges."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated

from pydantic import Field, WithJsonSchema

FEN_PER_YUAN = 100


class MoneyError(ValueError):
    pass


def to_fen(amount: Decimal | str | int) -> int:
    """Yuan (Decimal, str or int) to integer fen; refuses floats and sub-fen precision."""
    if isinstance(amount, float):
        raise MoneyError("money must not be a float; pass a Decimal or a string")
    try:
        value = Decimal(str(amount).replace(",", "").strip())
    except InvalidOperation as exc:
        raise MoneyError(f"{amount!r} is not an amount of money") from exc
    if not value.is_finite():
        raise MoneyError(f"{amount!r} is not a finite amount")
    fen = value * FEN_PER_YUAN
    if fen != fen.to_integral_value():
        raise MoneyError(f"{amount!r} has more than two decimal places (fen is the smallest unit)")
    return int(fen)


# An amount as people type it or a spreadsheet exports it: digits, thousands in groups of
# three or none, decimals. to_fen alone also takes 1e7 and 1,0,0 (Decimal's syntax, commas
# dropped): a slip, not an amount.
TYPED_YUAN = re.compile(r"-?([0-9]+|[0-9]{1,3}(,[0-9]{3})+)(\.[0-9]+)?")  # ASCII digits only
TYPED_YUAN_ALLOWED = "yuan with at most 2 decimals, e.g. 86000000.00 or 86,000,000.00"
_YUAN_SIGNS = "¥￥"


def untyped_yuan(text: str) -> str | None:
    """A typed amount as a form takes it ("¥86,000,000.00" -> "86000000.00"), or None when
    the text is not one (as TYPED_YUAN, with a ¥ before it allowed)."""
    # A full-width comma (，) is a comma as an IME types it (the budget ledger's import takes it).
    bare = text.strip().lstrip(_YUAN_SIGNS).strip().replace("，", ",")
    return bare.replace(",", "") if TYPED_YUAN.fullmatch(bare) else None


def to_yuan(fen: int) -> Decimal:
    return (Decimal(fen) / FEN_PER_YUAN).quantize(Decimal("0.01"))


FEN_PER_WAN = 10_000 * FEN_PER_YUAN  # 万元


def format_yuan(fen: int, locale: str = "zh-CN", *, wan: bool = False) -> str:
    """An amount as the office reads it. zh-CN: in 万元 from 10,000 yuan up when that is
    exact to 0.01万 (500万元, 12.35万元), else in 元 (5,000,000.01元: never "500.000001万元");
    `wan=True` always in 万元 rounded to 0.01万, for a table column in one unit. en: CNY."""
    if locale != "zh-CN":
        return f"CNY {to_yuan(fen):,}"
    if wan:
        wan_ = (Decimal(fen) / FEN_PER_WAN).quantize(Decimal("0.01"), ROUND_HALF_UP)
        return f"{wan_ + 0:,}万元"  # + 0: -40 元 is 0.00万元, not -0.00万元
    return format_yuan_alike([fen])[0]


def format_yuan_alike(fens: list[int], locale: str = "zh-CN") -> list[str]:
    """Amounts read side by side, in one unit: zh-CN in 万元 when every one is exact to
    0.01万 and one reaches 1万, else all in 元 ("已支出 750.01万元，已批 20,000,000.01元"
    made the reader convert). en: CNY, as format_yuan."""
    if locale != "zh-CN":
        return [format_yuan(fen, locale) for fen in fens]
    in_wan = any(abs(fen) >= FEN_PER_WAN for fen in fens) and all(
        fen % (FEN_PER_WAN // 100) == 0 for fen in fens
    )
    if in_wan:
        return [f"{(to_yuan(fen) / 10_000).normalize() + 0:,f}万元" for fen in fens]
    return [f"{to_yuan(fen):,}元" for fen in fens]


# --- amounts in forms -------------------------------------------------------------------
# A form's JSON schema is what the Prefect UI (and the API, for a deployment's parameters)
# checks before a run starts. Pydantic's own schema for a Decimal gives its string branch no
# pattern, so "-5", "五万" or "8600万" made a run that failed on the worker. These say it:
# a number within bounds, or digits with at most two decimals (no separators, no unit).
# The model validates again (ge / gt, 15 digits, 2 decimals): a form may lose its schema.
_DIGITS = r"\d{1,13}(\.\d{1,2})?"
_LARGEST = 9_999_999_999_999.99  # 15 digits, two of them decimals


def _amount_schema(*, signed: bool = False, exclusive: bool = False) -> WithJsonSchema:
    number: dict = {"type": "number", "maximum": _LARGEST}
    if signed:
        number["minimum"] = -_LARGEST
    else:
        number["exclusiveMinimum" if exclusive else "minimum"] = 0
    # More than 0: a digit other than 0 somewhere ("0", "0.00" refused before a run).
    nonzero = "(?=.*[1-9])" if exclusive else ""
    text = {"type": "string", "pattern": f"^{'-?' if signed else ''}{nonzero}{_DIGITS}$"}
    # Shown under the field in the UI, and what a refusal's pattern means (an operator trial
    # met the pattern alone in the API's answer: "'8600万' does not match '^(?=…'").
    example = "-2500000 or 120000.50" if signed else "86000000 or 120000.50"
    description = (
        f"In yuan (元): digits with at most two decimals, e.g. {example}; no 万, no commas."
    )
    return WithJsonSchema({"anyOf": [number, text], "description": description})


# Yuan, 0 or more (an estimate, an issue's budget).
Yuan = Annotated[Decimal, Field(ge=0, max_digits=15, decimal_places=2), _amount_schema()]
# Yuan, more than 0 (a payment, a line, a year's total).
PositiveYuan = Annotated[
    Decimal, Field(gt=0, max_digits=15, decimal_places=2), _amount_schema(exclusive=True)
]
# Yuan, either sign (an adjustment: 调增 / 调减).
SignedYuan = Annotated[Decimal, Field(max_digits=15, decimal_places=2), _amount_schema(signed=True)]
