import pytest
import yaml

from flows.deployments import SPECS, render_prefect_yaml
from taskforce.policy import load_policy
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


def test_every_schedule_is_a_cron_of_config_reviews():
    """No cadence is written in code (SPEC's numbers are config defaults): each scheduled
    deployment names a key of config `reviews`, and its cron in prefect.yaml is that key's."""
    import yaml

    from taskforce.policy import load_policy
    from taskforce.policy.schema import Reviews

    reviews = load_policy().reviews
    crons = {
        d["name"]: d["schedules"][0]["cron"]
        for d in yaml.safe_load(render_prefect_yaml())["deployments"]
        if "schedules" in d
    }
    scheduled = [s for s in SPECS if s.schedule]
    assert {s.name for s in scheduled} == set(crons)
    for spec in scheduled:
        assert spec.schedule in Reviews.model_fields, spec.name
        assert crons[spec.name] == getattr(reviews, spec.schedule)
    # A red item is taken up the morning after it turns red, not at the next Monday's sweep.
    assert crons["dispatch-sweep"] == "0 9 * * *"
    assert crons["deliver-notifications"] == crons["dispatch-pending-emergencies"] == "* * * * *"


def test_emergency_response_runs_at_once_come_from_config():
    """A storm made a response run per emergency: unbounded, they took every slot of the
    emergency pool, and the sweep and the operators' forms waited minutes for one (a storm
    trial). They are limited by config; the others wait without a process."""
    limits = {
        d["name"]: d.get("concurrency_limit")
        for d in yaml.safe_load(render_prefect_yaml())["deployments"]
    }
    assert limits["emergency-response"] == {
        "limit": load_policy().emergency.response_runs_at_once,
        "collision_strategy": "ENQUEUE",
    }
    assert limits["acknowledge-emergency"] is None  # a form never waits behind the responses
    pools = {
        d["name"]: d["work_pool"] for d in yaml.safe_load(render_prefect_yaml())["deployments"]
    }
    # A queue of their own, which the README limits as the deployment is: the server hands
    # the worker only the runs that may start.
    assert pools["emergency-response"] == {
        "name": "taskforce-emergency",
        "work_queue_name": "responses",
    }
    assert pools["dispatch-pending-emergencies"] == {"name": "taskforce-emergency"}


def test_taskforce_serve_builds_every_deployment_with_its_schedule():
    """An operator trial: `taskforce serve` (the README's one process for a small office)
    crashed at start-up building its deployments (`to_deployment` took no schedule dict)."""
    from flows.deployments import resolve_cron, runner_deployments

    timezone = load_policy().timezone
    served = {d.name: d for d in runner_deployments()}
    assert set(served) == {spec.name for spec in SPECS}
    for spec in SPECS:
        schedules = [s.schedule for s in served[spec.name].schedules or []]
        cron = resolve_cron(spec)
        assert [(s.cron, s.timezone) for s in schedules] == ([(cron, timezone)] if cron else [])


@pytest.mark.slow  # a process per flow module
def test_every_deployed_flow_tidies_its_refusals():
    """An operator trial: `raise-warning` refused an unknown member with three tracebacks
    ("Engine execution exited with unexpected exception"): its module was the one that
    never imported `tasks`, which installs the run-log filters. Each entrypoint is loaded
    as a worker loads it, in a process of its own."""
    import subprocess
    import sys

    check = (
        "import logging, sys; from prefect.flows import load_flow_from_entrypoint; "
        "load_flow_from_entrypoint(sys.argv[1]); "
        "names = {type(f).__name__ for f in logging.getLogger('prefect.flow_runs').filters}; "
        "sys.exit(0 if 'RefusalWithoutTraceback' in names else 3)"
    )
    modules = {spec.entrypoint.split(":")[0]: spec.entrypoint for spec in SPECS}
    runs = {
        path: subprocess.Popen([sys.executable, "-c", check, entrypoint], cwd=PROJECT_ROOT)
        for path, entrypoint in modules.items()
    }
    assert {path: run.wait(120) for path, run in runs.items()} == dict.fromkeys(modules, 0)
