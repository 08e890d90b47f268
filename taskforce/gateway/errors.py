"""A 4xx the gateway answers with a JSON body that names the problem."""

from __future__ import annotations


class GatewayError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        problems: list[dict] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.problems = problems or []

    def body(self) -> dict:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "field": self.field,
                "problems": self.problems,
            }
        }
