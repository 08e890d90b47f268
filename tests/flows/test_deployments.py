from flows.deployments import SPECS, render_prefect_yaml
from taskforce.policy.loader import PROJECT_ROOT


def test_prefect_yaml_is_generated_from_the_deployment_list():
    committed = (PROJECT_ROOT / "prefect.yaml").read_text(encoding="utf-8")
    assert committed == render_prefect_yaml(), (
        "run `taskforce deployments write` and commit prefect.yaml"
    )


def test_every_entrypoint_exists_and_names_are_unique():
    import importlib

    names = [s.name for s in SPECS]
    assert len(names) == len(set(names))
    for spec in SPECS:
        path, func = spec.entrypoint.split(":")
        module = path.removesuffix(".py").replace("/", ".")
        flow = getattr(importlib.import_module(module), func)
        assert flow.name  # a Prefect flow


def test_scheduled_deployments_run_in_shanghai_time():
    import yaml

    data = yaml.safe_load(render_prefect_yaml())
    scheduled = [d for d in data["deployments"] if "schedules" in d]
    assert scheduled and all(
        s["timezone"] == "Asia/Shanghai" for d in scheduled for s in d["schedules"]
    )
