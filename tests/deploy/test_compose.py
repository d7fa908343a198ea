"""docker-compose.yml against the Compose Specification schema and the deployment rules.

Each rule is also run on a deliberately broken copy, so a rule that can never fail fails here.
"""
import copy
import re
from pathlib import Path

import pytest
import yaml

from tests.deploy import compose_rules as rules

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILES = ["docker-compose.yml", "deploy/compose.multihost.yml"]


def load_raw(name: str) -> dict:
    """A compose file as written, ${...} not substituted."""
    return yaml.safe_load((ROOT / name).read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.mark.parametrize("rule", rules.ALL_RULES, ids=lambda r: r.__name__)
def test_compose_file_keeps_rule(compose, rule):
    assert rule(compose) == []


def test_schema_is_the_compose_specification():
    schema = rules.compose_schema()
    assert schema["title"] == "Compose Specification"
    assert "services" in schema["properties"]


def test_schema_rejects_a_misspelt_key(compose):
    broken = copy.deepcopy(compose)
    broken["services"]["api"]["healtcheck"] = broken["services"]["api"].pop("healthcheck")
    assert any("healtcheck" in p for p in rules.schema_problems(broken))


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_file_is_read_by_docker_compose_1_29(name):
    assert rules.compose_v1_problems(load_raw(name)) == []


def test_compose_v2_only_syntax_is_caught(compose):
    broken = copy.deepcopy(compose)
    broken["name"] = "sam3v"
    api = broken["services"]["api"]
    api["env_file"] = [{"path": ".env", "required": False}]
    api["healthcheck"]["start_interval"] = "1s"
    api["ports"] = [{"target": 8000, "published": 8000, "host_ip": "127.0.0.1"}]
    broken["services"]["redis"]["develop"] = {}
    assert rules.compose_v1_problems(broken) == [
        "top-level key 'name' is Compose v2 only",
        "redis: key 'develop' is Compose v2 only",
        "api: env_file entry {'path': '.env', 'required': False} must be a plain path "
        "(path/required is Compose v2.24+ only)",
        "api: healthcheck key 'start_interval' is Compose v2 only",
        "api: port key 'host_ip' is Compose v2 only (use the short syntax)"]


def test_a_gpu_shared_by_two_workers_is_caught(compose):
    broken = copy.deepcopy(compose)
    broken["services"]["worker-gpu1"]["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] = ["0"]
    assert rules.gpu_problems(broken) == ["GPU 0 reserved by both worker-gpu0 and worker-gpu1"]


def test_a_queue_that_does_not_match_the_gpu_count_is_caught(compose):
    broken = copy.deepcopy(compose)
    worker = broken["services"]["worker-gpu0"]
    worker["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] = ["2", "3"]
    problems = rules.queue_problems(broken)
    assert any("expected 'gpu2'" in p for p in problems)
    assert any("SAM3V_WORKER_GPUS='0'" in p for p in problems)
    worker["environment"]["SAM3V_WORKER_GPUS"] = "0,1"
    worker["command"][worker["command"].index("-Q") + 1] = "gpu2"
    assert rules.queue_problems(broken) == []


def test_missing_healthcheck_restart_or_state_volume_is_caught(compose):
    broken = copy.deepcopy(compose)
    del broken["services"]["redis"]["healthcheck"]
    broken["services"]["api"]["restart"] = "no"
    broken["services"]["worker-gpu0"]["volumes"] = [
        v for v in broken["services"]["worker-gpu0"]["volumes"] if not v.startswith("runs:")]
    broken["services"]["api"]["volumes"].append("scratch:/tmp/scratch")
    assert rules.health_and_restart_problems(broken) == [
        "redis: no healthcheck",
        "api: restart is 'no', expected one of ['always', 'on-failure', 'unless-stopped']"]
    assert rules.volume_problems(broken) == [
        "api: volume 'scratch' (for /tmp/scratch) is not declared under volumes:",
        "worker-gpu0: state path /srv/sam3v/runs is not on a volume"]


def test_datasets_and_weights_are_read_only(compose):
    broken = copy.deepcopy(compose)
    vols = broken["services"]["api"]["volumes"]
    vols[:] = [v.removesuffix(":ro") for v in vols]
    assert rules.volume_problems(broken) == [
        "api: /srv/sam3v/data must be mounted read-only",
        "api: /srv/sam3v/data/weights must be mounted read-only"]


def test_worker_shutdown_settings_are_checked(compose):
    broken = copy.deepcopy(compose)
    worker = broken["services"]["worker-gpu0"]
    worker["stop_grace_period"] = "5m"   # < the 300 s grace + 30 s
    worker["environment"]["REMAP_SIGTERM"] = "SIGQUIT"
    problems = rules.shutdown_problems(broken)
    assert len(problems) == 2
    assert "REMAP_SIGTERM" in problems[0] and "stop_grace_period" in problems[1]


def test_flower_and_extra_workers_are_opt_in(compose):
    services = compose["services"]
    default = {name for name, svc in services.items() if not svc.get("profiles")}
    assert default == {"redis", "api", "worker-gpu0"}
    assert services["flower"]["profiles"] == ["flower"]


def test_api_migrates_before_serving_and_checks_healthz(compose):
    api = compose["services"]["api"]
    script = api["command"][-1]
    assert script.index("store.migrate()") < script.index("uvicorn api.main:app")
    assert "/healthz" in " ".join(api["healthcheck"]["test"])


def test_redis_keeps_messages(compose):
    command = compose["services"]["redis"]["command"]
    assert rules.option(command, "--appendonly") == "yes"
    assert rules.option(command, "--maxmemory-policy") == "noeviction"


def test_duration_parser():
    assert rules.parse_duration("1m30s") == 90
    assert rules.parse_duration("10m") == 600
    with pytest.raises(ValueError):
        rules.parse_duration("ten minutes")


def documented_names() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*(SAM3V_[A-Z0-9_]+)=", text, flags=re.M))


def test_env_example_documents_every_setting():
    try:
        from jobstore.settings import Settings   # where the Settings object lives now
    except ImportError:
        from api.settings import Settings        # before the jobstore package

    expected = {f"SAM3V_{name.upper()}" for name in Settings.model_fields}
    assert expected - documented_names() == set()


@pytest.mark.parametrize("name", ["docker-compose.yml", "deploy/compose.multihost.yml"])
def test_env_example_documents_every_compose_variable(name):
    used = set(re.findall(r"\$\{(SAM3V_[A-Z0-9_]+)", (ROOT / name).read_text()))
    assert used and used - documented_names() == set()


MULTIHOST_ENV = {
    "SAM3V_DATABASE_URL": "postgresql+psycopg://sam3v:pw@api-host:5432/sam3v",
    "SAM3V_BROKER_URL": "redis://:secret@api-host:6379/0", "SAM3V_REDIS_PASSWORD": "secret",
    "SAM3V_HOST_NAME": "gpuhost1", "SAM3V_NFS_SERVER": "nfs", "SAM3V_NFS_EXPORT": "/export/runs",
}


def test_multihost_override_keeps_every_rule():
    """docker-compose.yml + deploy/compose.multihost.yml, as compose would merge them with
    a .env holding MULTIHOST_ENV."""
    def load(name):
        return yaml.safe_load(rules.interpolate((ROOT / name).read_text(), MULTIHOST_ENV))

    merged = rules.merge(load("docker-compose.yml"), load("deploy/compose.multihost.yml"))
    for rule in rules.ALL_RULES:
        assert rule(merged) == [], rule.__name__
    for name in ("api", "worker-gpu0", "worker-gpu1"):
        env = merged["services"][name]["environment"]
        assert env["SAM3V_DATABASE_URL"].startswith("postgresql")
        assert env["SAM3V_BROKER_URL"] == MULTIHOST_ENV["SAM3V_BROKER_URL"]
    assert merged["volumes"]["runs"]["driver_opts"]["type"] == "nfs"
    assert "gpuhost1-gpu0@%h" in merged["services"]["worker-gpu0"]["command"]


def test_multihost_override_refuses_to_start_without_its_settings():
    text = (ROOT / "deploy" / "compose.multihost.yml").read_text()
    with pytest.raises(ValueError, match="SAM3V_DATABASE_URL"):
        rules.interpolate(text, {k: v for k, v in MULTIHOST_ENV.items() if k != "SAM3V_DATABASE_URL"})


def test_dockerfile_keeps_the_base_image_torch():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^FROM \$\{BASE_IMAGE\}", dockerfile, flags=re.M)
    assert "pip install -c /tmp/keep-torch.txt" in dockerfile
