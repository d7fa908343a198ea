"""The client alone (`pip install ./client`, no torch) against a real running stack:
a YAML spec submitted with `sam3v-client submit --follow` trains and succeeds, and an
error answer prints the server's message without a traceback."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deploy.redis_server import free_port
from tests.deploy.conftest import StackProcess

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory) -> Path:
    """A fresh venv holding only the client package (from a copy, so the build leaves
    nothing in the checkout)."""
    tmp = tmp_path_factory.mktemp("client-pkg")
    source = tmp / "client"
    shutil.copytree(ROOT / "client", source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run([str(venv / "bin" / "pip"), "install", "--disable-pip-version-check",
                                "-q", str(source)], capture_output=True, text=True, timeout=400)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return venv


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = StackProcess(tmp_path_factory.mktemp("client-stack") / "home", free_port())
    stack.start()
    try:
        yield stack
        assert stack.stop(signal.SIGINT) == 0
    finally:
        stack.kill_everything()


def run_client(venv: Path, stack: StackProcess, *args: str, timeout_s: float = 300):
    # No SAM3V_* of this process and no home: only what the command line says.
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(venv)}
    return subprocess.run([str(venv / "bin" / "sam3v-client"), *args, "--url", stack.url,
                           "--token", stack.token()], env=env, cwd=venv, text=True,
                          capture_output=True, timeout=timeout_s)


def test_the_client_package_installs_without_torch(client_venv):
    python = str(client_venv / "bin" / "python")
    probe = subprocess.run([python, "-c", "import importlib.util as u; "
                            "print(u.find_spec('torch'), u.find_spec('sam3'), u.find_spec('fastapi'))"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.split() == ["None", "None", "None"], probe.stdout
    imported = subprocess.run([python, "-c", "from client.api_client import Sam3vClient; print(Sam3vClient.__name__)"],
                              capture_output=True, text=True)
    assert imported.returncode == 0 and imported.stdout.strip() == "Sam3vClient", imported.stderr


def test_a_yaml_spec_trains_through_the_client_alone(client_venv, stack, tmp_path):
    config = json.loads((ROOT / "examples" / "train_tiny.json").read_text())
    config.update(max_steps=3, checkpoint_every=3)
    config["schedule"]["warmup_steps"] = 1
    config["data"].pop("val", None)
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(config))

    submitted = run_client(client_venv, stack, "submit", str(spec), "--follow")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    job_id = int(submitted.stdout.strip().splitlines()[-1])
    shown = run_client(client_venv, stack, "show", str(job_id))
    assert shown.returncode == 0 and json.loads(shown.stdout)["state"] == "succeeded", shown.stdout
    assert json.loads(shown.stdout)["config"]["max_steps"] == 3


def test_errors_print_the_server_message_and_no_traceback(client_venv, stack, tmp_path):
    missing = run_client(client_venv, stack, "show", "999999")
    assert missing.returncode == 2, missing
    assert "999999" in missing.stderr and "Traceback" not in missing.stderr, missing.stderr

    bad = tmp_path / "bad.yaml"
    bad.write_text("max_steps: [1, 2\n")
    refused = run_client(client_venv, stack, "submit", str(bad))
    assert refused.returncode == 2 and "not valid YAML" in refused.stderr, refused.stderr

    wrong = tmp_path / "wrong.yml"
    wrong.write_text(yaml.safe_dump({"max_steps": "many"}))
    invalid = run_client(client_venv, stack, "submit", str(wrong))
    assert invalid.returncode == 2 and "max_steps" in invalid.stderr, invalid.stderr
    assert "Traceback" not in invalid.stderr
