"""deploy.home.settings_env, the sam3v CLI's own error handling and `sam3v tokens create`
(no stack needed)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

import jobstore
from api.auth import lookup_token
from client import cli
from deploy import cli as sam3v
from deploy.home import HomeLayout, settings_env
from jobstore.settings import Settings


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


def test_submit_names_a_missing_or_broken_config_file(tmp_path, capsys):
    assert cli.main(["submit", str(tmp_path / "nope.json"), "--url", "http://127.0.0.1:9"]) == 2
    assert "nope.json: file not found" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert cli.main(["submit", str(broken), "--url", "http://127.0.0.1:9"]) == 2
    assert "broken.json: not valid JSON" in capsys.readouterr().err
    broken.write_text(json.dumps([1, 2]))
    assert cli.main(["submit", str(broken), "--url", "http://127.0.0.1:9"]) == 2
    assert "broken.json: expected a JSON object" in capsys.readouterr().err


def test_http_commands_say_where_the_api_address_comes_from(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SAM3V_URL", raising=False)
    assert cli.main(["status", "1", "--home", str(tmp_path)]) == 2
    assert re.search("no API address.*--url.*SAM3V_URL", capsys.readouterr().err)


def test_unreachable_api_exits_3_without_a_traceback(tmp_path, capsys):
    from deploy.redis_server import free_port

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert cli.main(["show", "1", "--url", url, "--token", "t"]) == 3
    err = capsys.readouterr().err
    assert f"cannot reach the API at {url}" in err and "Traceback" not in err


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


def test_cli_prints_only_a_working_token(tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAM3V_")}
    out = subprocess.run([sys.executable, "-m", "deploy.cli", "tokens", "create", "--user", "carol",
                          "--admin", "--home", str(home)], env=env, capture_output=True,
                         text=True, check=True, cwd=os.getcwd()).stdout
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sam3v_")
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'sam3v.db'}")
    caller = lookup_token(jobstore.get_engine(settings), lines[0])
    assert caller.name == "carol" and caller.is_admin
    bad = subprocess.run([sys.executable, "-m", "deploy.cli", "tokens", "create", "--home", str(home)],
                         env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "--user" in bad.stderr and bad.stdout == ""


def test_sam3v_is_the_client_parser_plus_up_and_tokens(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SAM3V_URL", raising=False)
    parser = sam3v.build_parser()
    up = parser.parse_args(["up", "--port", "0", "--home", str(tmp_path)])
    assert (up.command, up.host, up.port, up.home) == ("up", "127.0.0.1", 0, str(tmp_path))
    status = parser.parse_args(["wait", "3", "--timeout", "5"])
    assert (status.command, status.job_id, status.timeout, status.poll) == ("wait", 3, 5.0, 2.0)
    parser.print_help()
    listed = capsys.readouterr().out
    assert listed.index("up") < listed.index("tokens") < listed.index("submit") < listed.index("status")
    # The client alone knows only the HTTP commands.
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["up"])
    assert sam3v.main(["status", "1", "--home", str(tmp_path)]) == 2
    assert "no API address" in capsys.readouterr().err
