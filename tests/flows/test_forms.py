"""Every deployment's form says what each of its top-level fields is for."""

from __future__ import annotations

import importlib
import re

import yaml

from tests.conftest import ROOT


def test_every_top_level_parameter_of_every_deployment_is_described():
    """Prefect titles a parameter with its name (`form`, `options`, `path`) and shows a
    description only from its default Field: a trial found 27 of them with no word."""
    from prefect.utilities.callables import parameter_schema

    bare = []
    for deployment in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]:
        module, function = deployment["entrypoint"].split(":")
        flow_fn = getattr(
            importlib.import_module(module.removesuffix(".py").replace("/", ".")), function
        )
        schema = parameter_schema(flow_fn.fn).model_dump_for_openapi()
        bare += [
            f"{deployment['name']}.{name}"
            for name, field in schema["properties"].items()
            if not field.get("description")
            # Words, not a class name ("AnswerForm.") or a doubled stop.
            or re.search(r"\w+Form\b|\.\.", field["description"])
        ]
    assert bare == []


def test_a_reserve_draw_form_offers_only_the_groups_that_may_approve_money():
    """approved_by offered the expert pool and the compliance officer, which the run then
    refused ("the expert group has no approval authority")."""
    from taskforce.budget.forms import ReserveDrawForm as LedgerDrawForm
    from taskforce.emergency.forms import ReserveDrawForm

    for form in (ReserveDrawForm, LedgerDrawForm):
        field = form.model_json_schema()
        choices = field["$defs"]["Approver"]["enum"]
        assert choices == ["executive", "leadership"], form
