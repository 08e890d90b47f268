"""Descriptions for a flow's top-level parameters, as the Prefect UI shows them.

Prefect titles a parameter with its name and reads its description only from the default
`Field` (an `Annotated` description is dropped), so an operator saw bare `form`, `options`
or `path` with no word under them. Constraints stay in `Annotated`, where the form checks
them before a run starts; the words go in the default built here.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field


def form_of(model: type[BaseModel]) -> Any:
    """A required `form` parameter described by its model's first docstring line."""
    doc = (model.__doc__ or "").strip()
    if not doc:
        raise TypeError(f"{model.__name__} needs a docstring: it is the form's description")
    what = doc.splitlines()[0].rstrip(".。 ")
    return Field(..., description=f"{what}. 逐项填写下列字段 Fill in the fields below.")


# The acting member of a form's run (the trail names them).
Actor = Annotated[str, Field(min_length=1, max_length=64)]
ACTOR = Field(..., description="Acting member 操作人: your member code (e.g. L1, E1).")


def described(default: Any, description: str) -> Any:
    """A parameter with this default and this description."""
    return Field(default, description=description)
