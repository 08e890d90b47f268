"""On SQLite the gateway's connections leave the write-ahead log to its checkpointer thread
(group_commit.WalCheckpointer), which checkpoints without blocking writers; elsewhere
nothing changes."""

from __future__ import annotations

from sqlalchemy import text

from taskforce.db import unit_of_work
from taskforce.emergency import service
from taskforce.emergency.forms import EmergencyIntake
from taskforce.emergency.models import Level
from taskforce.gateway.auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from taskforce.gateway.group_commit import WalCheckpointer
from tests.gateway.server import SECRET

NATIVE = "/v1/emergencies/monitoring"


def _autocheckpoint(engine) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()


def test_gateway_connections_leave_checkpoints_to_the_checkpointer(gateway, engine, ctx):
    body = b'{"dedup_key": "wal-first", "level": "II", "title": "first write"}'
    now = int(ctx.now().timestamp())
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(now),
        SIGNATURE_HEADER: sign(SECRET, now, body),
    }
    assert gateway.client.post(NATIVE, content=body, headers=headers).status_code == 202
    checkpointer = WalCheckpointer(engine)  # a second one on the same engine adds nothing
    if engine.dialect.name != "sqlite":
        assert not checkpointer.enabled
        return
    assert checkpointer.enabled
    assert _autocheckpoint(engine) == 0
    with unit_of_work(engine) as s:
        service.open_emergencies(
            s,
            ctx,
            [
                service.IntakeRequest(
                    EmergencyIntake(level=Level.II, title=f"告警 {i}", working_group="wg:data"),
                    "monitoring",
                    f"wal-{i}",
                    "gateway:test",
                )
                for i in range(50)
            ],
        )
    busy, pages, done = checkpointer.checkpoint()
    assert busy == 0 and pages > 0 and done == pages  # all of the log is in the database
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM emergency")).scalar() >= 50
