"""Money is exact (ARCHITECTURE.md rule 6): integer fen in storage, Decimal yuan at the edges."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

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


def to_yuan(fen: int) -> Decimal:
    return (Decimal(fen) / FEN_PER_YUAN).quantize(Decimal("0.01"))


FEN_PER_WAN = 10_000 * FEN_PER_YUAN  # 万元


def format_yuan(fen: int, locale: str = "zh-CN", *, wan: bool = False) -> str:
    """An amount as the office reads it. zh-CN: in 万元 from 10,000 yuan up when that is
    exact to 0.01万 (500万元, 12.35万元), else in 元 (5,000,000.01元: never "500.000001万元");
    `wan=True` always in 万元 rounded to 0.01万, for a table column in one unit. en: CNY."""
    yuan = to_yuan(fen)
    if locale != "zh-CN":
        return f"CNY {yuan:,}"
    if wan:
        wan_ = (Decimal(fen) / FEN_PER_WAN).quantize(Decimal("0.01"), ROUND_HALF_UP)
        return f"{wan_ + 0:,}万元"  # + 0: -40 元 is 0.00万元, not -0.00万元
    if abs(fen) >= FEN_PER_WAN and fen % (FEN_PER_WAN // 100) == 0:
        return f"{(yuan / 10_000).normalize():,f}万元"
    return f"{yuan:,}元"
