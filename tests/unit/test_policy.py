import shutil
from pathlib import Path

import pytest
import yaml

from taskforce.policy import ConfigError, load_org, load_policy
from taskforce.policy.loader import PROJECT_ROOT

CONFIG = PROJECT_ROOT / "config"


@pytest.fixture
def config_copy(tmp_path) -> Path:
    shutil.copytree(CONFIG, tmp_path / "config")
    return tmp_path / "config"


def _edit(path: Path, mutate) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    mutate(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def test_shipped_config_is_valid():
    policy = load_policy(CONFIG)
    assert policy.loop.plan_deadline_working_days == 5
    assert len([m for m in load_org(CONFIG).members if m.group == "leadership"]) == 7


def test_negative_deadline_names_file_and_key(config_copy):
    _edit(config_copy / "taskforce.yaml", lambda d: d["loop"].update(plan_deadline_working_days=-1))
    with pytest.raises(ConfigError) as err:
        load_policy(config_copy)
    message = str(err.value)
    assert "taskforce.yaml" in message
    assert "loop.plan_deadline_working_days" in message
    assert "greater than 0" in message
    assert len(message.splitlines()) == 1


def test_unknown_key_is_refused(config_copy):
    _edit(
        config_copy / "taskforce.yaml", lambda d: d["authority"].update(executive_aproval_max="1")
    )
    with pytest.raises(ConfigError, match=r"authority\.executive_aproval_max: unknown key"):
        load_policy(config_copy)


def test_threshold_order_checked(config_copy):
    _edit(
        config_copy / "taskforce.yaml",
        lambda d: d["authority"].update(leadership_cross_department_min="100.00"),
    )
    with pytest.raises(ConfigError, match="leadership_cross_department_min must be >="):
        load_policy(config_copy)


def test_bad_timezone(config_copy):
    _edit(config_copy / "taskforce.yaml", lambda d: d.update(timezone="Mars/Olympus"))
    with pytest.raises(ConfigError, match="timezone: unknown timezone"):  # no "Value error, "
        load_policy(config_copy)


def test_invalid_yaml_names_the_line(config_copy):
    (config_copy / "taskforce.yaml").write_text("a: [1, 2\nb: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="taskforce.yaml: line"):
        load_policy(config_copy)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_policy(tmp_path)


def test_org_references_checked(config_copy):
    def mutate(d):
        d["members"][0]["unit"] = "nowhere"

    _edit(config_copy / "org.yaml", mutate)
    with pytest.raises(ConfigError, match="members.L1.unit: unknown unit 'nowhere'"):
        load_org(config_copy)


def test_env_points_to_another_folder(config_copy, monkeypatch):
    _edit(config_copy / "taskforce.yaml", lambda d: d["loop"].update(plan_deadline_working_days=7))
    monkeypatch.setenv("TASKFORCE_CONFIG_DIR", str(config_copy))
    assert load_policy().loop.plan_deadline_working_days == 7


@pytest.mark.parametrize(
    "reviews",
    [["leadership", "compliance", "evaluator"], ["compliance", "compliance", "leadership"]],
)
def test_the_budget_reviews_end_with_the_approval_once(config_copy, reviews):
    """三审: the last review is the approval (the leadership group, or the executive group
    within its authority); one placed elsewhere, or a review twice, would be ignored."""
    _edit(config_copy / "taskforce.yaml", lambda d: d["budget"].update(reviews=reviews))
    with pytest.raises(ConfigError, match=r"budget\.reviews: .*the approval \(leadership\) last"):
        load_policy(config_copy)


def test_an_authority_chain_nothing_reads_is_refused(config_copy):
    """Money goes executive → leadership by the authority table (taskforce/authority.py); a
    chain there would look configurable and change nothing."""
    _edit(
        config_copy / "taskforce.yaml",
        lambda d: d["authority"].update(escalation_chain=["executive", "leadership"]),
    )
    with pytest.raises(ConfigError, match=r"authority\.escalation_chain: removed \(the chain is"):
        load_policy(config_copy)


def test_a_config_from_before_the_response_run_stopped_waiting_is_told_what_moved(config_copy):
    """An upgraded site's config/ still has the keys of the waiting response run: the
    refusal says where each went, not only that it is unknown."""

    def old(d):
        d["emergency"].update(flow_poll_seconds=60, flow_max_wait_minutes=1440)
        del d["emergency"]["drill"]["poll_seconds"]

    _edit(config_copy / "taskforce.yaml", old)
    with pytest.raises(ConfigError) as refused:
        load_policy(config_copy)
    text = str(refused.value)
    assert "emergency.flow_poll_seconds: moved to emergency.drill.poll_seconds" in text
    assert "emergency.flow_max_wait_minutes: removed: an emergency-response run no longer" in text
    assert "emergency.drill.poll_seconds: required key is missing" in text


@pytest.mark.parametrize(("size", "ok"), [(1, False), (2, True), (10, True), (11, False)])
def test_the_risk_matrix_is_2_to_10(config_copy, size, ok):
    def sized(d):
        top = size * size
        d["risk"].update(
            matrix_size=size, warning_thresholds={"yellow": top, "orange": top, "red": top}
        )

    _edit(config_copy / "taskforce.yaml", sized)
    if ok:
        assert load_policy(config_copy).risk.matrix_size == size
    else:
        with pytest.raises(ConfigError, match=r"risk\.matrix_size"):
            load_policy(config_copy)


def test_config_check_refuses_a_review_group_org_yaml_does_not_have(config_copy):
    """review.conducted_by named `wg-typo` and config-check said OK: the review's notice
    then went to a tag no channel or member has. Each file is valid alone; the two disagree."""
    from typer.testing import CliRunner

    from taskforce.cli import app

    def mutate(d):
        d["review"]["conducted_by"]["weekly"] = ["executive", "wg-typo"]
        d["review"]["conducted_by"]["quarterly"] = "leadershp"

    _edit(config_copy / "taskforce.yaml", mutate)
    env = {"TASKFORCE_CONFIG_DIR": str(config_copy), "COLUMNS": "200"}
    result = CliRunner().invoke(app, ["config-check"], env=env)
    assert isinstance(result.exception, ConfigError), result.output
    lines = str(result.exception).splitlines()
    assert len(lines) == 2, lines
    quarterly, weekly = sorted(lines, key=lambda line: "weekly" in line)
    assert "taskforce.yaml: review.conducted_by.weekly: 'wg-typo' is not a group" in weekly
    assert "review.conducted_by.quarterly: 'leadershp' is not a group" in quarterly
    for code in ("leadership", "executive", "wg:data", "evaluator", "working_group"):
        assert code in weekly  # what is allowed
    assert "config OK" not in result.output

    _edit(
        config_copy / "taskforce.yaml",
        lambda d: d["review"]["conducted_by"].update(
            weekly=["executive", "working_group", "wg:data"], quarterly="leadership"
        ),
    )
    result = CliRunner().invoke(app, ["config-check"], env=env)
    assert result.exit_code == 0, result.output
    assert "config OK" in result.output
