"""Money is exact (ARCHITECTURE.md rule 6): integer fen in storage, Decimal yuan at the edges."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

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


def format_yuan(fen: int, locale: str = "zh-CN") -> str:
    yuan = to_yuan(fen)
    if locale == "zh-CN":
        if abs(fen) >= 10_000 * FEN_PER_YUAN:
            return f"{(yuan / 10_000).normalize():,f}万元"
        return f"{yuan:,}元"
    return f"CNY {yuan:,}"
