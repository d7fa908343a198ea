"""Fixtures every test room shares, and the CI rule that a skipped test fails the run.

A test that needs a service (redis-server, PostgreSQL, torchrun) gets the real one:
deploy/setup.sh installs them. Under CI (CI=true) a skip would hide a missing install
step, so any skipped test makes the session fail with its reason listed.
"""
from __future__ import annotations

import os

import pytest

from tests.support.procs import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One real redis-server for the session (tests that restart Redis make their own)."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.close()


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write_line(f"CI: {len(skipped)} test(s) skipped; in CI every service is "
                            "installed, so a skip is a failure:", red=True)
        for report in skipped:
            reporter.write_line(f"  {report.nodeid}: {report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
