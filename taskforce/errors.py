"""Errors the core raises for bad input or an illegal step. Each names the field,
what was wrong and what is allowed, so a form or an API can show it as is."""

from __future__ import annotations


class DomainError(ValueError):
    def __init__(
        self, message: str, *, field: str | None = None, allowed: str | None = None
    ) -> None:
        self.message, self.field, self.allowed = message, field, allowed
        text = f"{field}: {message}" if field else message
        if allowed:
            text += f" (allowed: {allowed})"
        super().__init__(text)


class NotFound(DomainError):
    pass


class IllegalTransition(DomainError):
    """The step is not possible in the subject's current state; nothing was changed."""


# pydantic heads the message of a validator's own ValueError or assertion with these words,
# which tell an operator nothing ("responsible: Value error, shares must add up to 100").
_PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")


def problem_text(error: dict) -> str:
    """The message of one of pydantic's `errors()`, as an operator reads it."""
    message = str(error["msg"])
    for prefix in _PYDANTIC_PREFIXES:
        message = message.removeprefix(prefix)
    return message
