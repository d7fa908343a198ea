"""deploy.home.settings_env and the sam3v CLI's own error handling (no stack needed)."""
from __future__ import annotations

import json

import pytest

from jobstore.settings import Settings
from client import cli
from deploy.home import HomeLayout, settings_env


def test_settings_env_points_every_path_under_home(tmp_path, monkeypatch):
    home = tmp_path / "h"
    for key in list(__import__("os").environ):
        if key.startswith("SAM3V_") or key in ("DATA_ROOT", "RUNS_ROOT", "DATABASE_URL"):
            monkeypatch.delenv(key)
    for key, value in settings_env(home, redis_port=6390).items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.database_url == f"sqlite:///{home.resolve() / 'sam3v.db'}"
    assert settings.data_root == home.resolve() / "data"
    assert settings.runs_root == home.resolve() / "runs"
    assert settings.broker_url == "redis://127.0.0.1:6390/0"
    assert settings.gpu_counts == [0]


def test_settings_env_reads_the_running_stacks_redis_port(tmp_path):
    layout = HomeLayout.of(tmp_path)
    assert "SAM3V_BROKER_URL" not in settings_env(tmp_path)
    layout.create()
    layout.redis_port_file.write_text("6411\n")
    assert settings_env(tmp_path)["SAM3V_BROKER_URL"] == "redis://127.0.0.1:6411/0"


def test_submit_names_a_missing_or_broken_config_file(tmp_path):
    with pytest.raises(SystemExit, match="nope.json: file not found"):
        cli.main(["submit", str(tmp_path / "nope.json"), "--url", "http://127.0.0.1:9"])
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(SystemExit, match="broken.json: not valid JSON"):
        cli.main(["submit", str(broken), "--url", "http://127.0.0.1:9"])
    broken.write_text(json.dumps([1, 2]))
    with pytest.raises(SystemExit, match="broken.json: expected a JSON object"):
        cli.main(["submit", str(broken), "--url", "http://127.0.0.1:9"])


def test_http_commands_say_where_the_api_address_comes_from(tmp_path, monkeypatch):
    monkeypatch.delenv("SAM3V_URL", raising=False)
    with pytest.raises(SystemExit, match="no API address.*--url.*SAM3V_URL"):
        cli.main(["status", "1", "--home", str(tmp_path)])


def test_url_and_token_come_from_the_home(tmp_path, monkeypatch):
    monkeypatch.delenv("SAM3V_URL", raising=False)
    monkeypatch.delenv("SAM3V_TOKEN", raising=False)
    layout = HomeLayout.of(tmp_path)
    layout.create()
    layout.url_file.write_text("http://127.0.0.1:1234\n")
    layout.token.write_text("sam3v_secret\n")
    args = cli.build_parser().parse_args(["status", "1", "--home", str(tmp_path)])
    assert cli._connection(args) == ("http://127.0.0.1:1234", "sam3v_secret")
    args = cli.build_parser().parse_args(["status", "1", "--home", str(tmp_path), "--token", "t2",
                                          "--url", "http://h:1"])
    assert cli._connection(args) == ("http://h:1", "t2")
