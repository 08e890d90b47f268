import shutil

import pytest


@pytest.fixture
def flow_db(_templates, tmp_path, monkeypatch, prefect_server):
    """A fresh SQLite domain database made the process default, with the Prefect test server up.

    Flow runs (and the runner's child processes) find it through TASKFORCE_DATABASE_URL.
    """
    from taskforce.db import get_engine

    path = tmp_path / "flows.db"
    shutil.copy(_templates("sqlite"), path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("TASKFORCE_DATABASE_URL", url)
    engine = get_engine(url)
    yield engine
    engine.dispose()
