"""docker-compose.yml against the Compose Specification schema and the deployment rules.

Each rule is also run on a deliberately broken copy, so a rule that can never fail fails here.
"""
import copy
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.procs import free_port
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
    assert script.index("jobstore.migrate()") < script.index("exec python -m api ")
    assert "/healthz" in " ".join(api["healthcheck"]["test"])


def test_api_start_command_names_code_that_exists(compose):
    """The migrate one-liner and the API server (python -m api) are Python names the image
    must have (the job store moved from api.store to jobstore once; the command has to
    follow)."""
    import importlib
    import importlib.util

    script = compose["services"]["api"]["command"][-1]
    code = re.search(r"python -c '([^']*)'", script).group(1)
    compile(code, "<api command>", "exec")
    for module in re.findall(r"\bimport (\w+)|from (\w+(?:\.\w+)*) import", code):
        importlib.import_module(next(m for m in module if m))
    import jobstore
    assert callable(jobstore.migrate)
    server = re.search(r"exec python -m (\S+) ", script).group(1)
    assert server == "api" and importlib.util.find_spec("api.__main__") is not None


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
    from jobstore.settings import Settings

    expected = {f"SAM3V_{name.upper()}" for name in Settings.model_fields}
    assert expected - documented_names() == set()


@pytest.mark.parametrize("name", ["docker-compose.yml", "deploy/compose.multihost.yml"])
def test_env_example_documents_every_compose_variable(name):
    used = set(re.findall(r"\$\{(SAM3V_[A-Z0-9_]+)", (ROOT / name).read_text()))
    assert used and used - documented_names() == set()


MULTIHOST_ENV = {
    "SAM3V_DATABASE_URL": "postgresql+psycopg://sam3v:pg-S3cret@api-host:5432/sam3v",
    "SAM3V_POSTGRES_PASSWORD": "pg-S3cret",
    "SAM3V_BROKER_URL": "redis://:r3dis-S3cret@api-host:6379/0",
    "SAM3V_REDIS_PASSWORD": "r3dis-S3cret",
    "SAM3V_FLOWER_BASIC_AUTH": "admin:fl0wer-S3cret",
    "SAM3V_HOST_NAME": "gpuhost1", "SAM3V_NFS_SERVER": "nfs", "SAM3V_NFS_EXPORT": "/export/runs",
}
SECRET_VALUES = ["pg-S3cret", "r3dis-S3cret", "fl0wer-S3cret"]


def load(name: str, env: dict[str, str]) -> dict:
    """A compose file with ${...} substituted from `env`, as compose reads it."""
    return yaml.safe_load(rules.interpolate((ROOT / name).read_text(), env))


def multihost(env: dict[str, str] = MULTIHOST_ENV) -> dict:
    return rules.merge(load("docker-compose.yml", env), load("deploy/compose.multihost.yml", env))


def without(name: str) -> dict[str, str]:
    return {k: v for k, v in MULTIHOST_ENV.items() if k != name}


def as_run(text: str) -> str:
    """What the container gets: compose's $$ escape is a literal $."""
    return text.replace("$$", "$")


def test_multihost_override_keeps_every_rule():
    """docker-compose.yml + deploy/compose.multihost.yml, as compose would merge them with
    a .env holding MULTIHOST_ENV."""
    merged = multihost()
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


# --- Row 10: secrets are required, and on no command line -----------------------------------

def test_row10_multihost_requires_postgres_password():
    with pytest.raises(ValueError, match="SAM3V_POSTGRES_PASSWORD"):
        multihost(without("SAM3V_POSTGRES_PASSWORD"))
    assert multihost()["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == "pg-S3cret"
    # Single host: no shared default password; unset, the postgres image refuses to initialise.
    postgres = load_raw("docker-compose.yml")["services"]["postgres"]
    assert postgres["environment"]["POSTGRES_PASSWORD"] == "${SAM3V_POSTGRES_PASSWORD:-}"
    assert "change-me" not in (ROOT / "docker-compose.yml").read_text()
    assert "change-me" not in (ROOT / "deploy" / "compose.multihost.yml").read_text()


def test_row10_multihost_requires_redis_password():
    with pytest.raises(ValueError, match="SAM3V_REDIS_PASSWORD"):
        multihost(without("SAM3V_REDIS_PASSWORD"))
    assert multihost()["services"]["redis"]["environment"]["REDISCLI_AUTH"] == "r3dis-S3cret"


def test_row10_flower_requires_basic_auth():
    with pytest.raises(ValueError, match="SAM3V_FLOWER_BASIC_AUTH"):
        multihost(without("SAM3V_FLOWER_BASIC_AUTH"))
    flower = multihost()["services"]["flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"] == "admin:fl0wer-S3cret"
    # The broker (with the Redis password) comes from the environment as well.
    assert flower["environment"]["CELERY_BROKER_URL"] == MULTIHOST_ENV["SAM3V_BROKER_URL"]
    single = load_raw("docker-compose.yml")["services"]["flower"]
    assert single["environment"]["FLOWER_BASIC_AUTH"] == "${SAM3V_FLOWER_BASIC_AUTH:-}"


@pytest.fixture
def fake_bin(tmp_path):
    """A PATH directory whose celery and docker-entrypoint.sh stand in for the images' own."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "celery").write_text('#!/bin/sh\necho "celery $*"\n')
    (bin_dir / "docker-entrypoint.sh").write_text('#!/bin/sh\nexec "$@"\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return bin_dir


def run_script(script: str, env: dict[str, str], bin_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", as_run(script)], capture_output=True, text=True, timeout=30,
                          env={"PATH": f"{bin_dir}:{os.environ['PATH']}", **env})


def test_row10_flower_refuses_to_start_without_basic_auth(fake_bin):
    """Single host, where compose cannot require the variable (it would stop every
    `docker compose up`, flower profile or not): the container refuses to start instead."""
    command = load_raw("docker-compose.yml")["services"]["flower"]["command"]
    assert command[:2] == ["sh", "-c"]
    for value in ["", "admin", ":pw", "admin:"]:
        refused = run_script(command[2], {"FLOWER_BASIC_AUTH": value}, fake_bin)
        assert refused.returncode == 1 and "SAM3V_FLOWER_BASIC_AUTH" in refused.stderr, value
    started = run_script(command[2], {"FLOWER_BASIC_AUTH": "admin:fl0wer-S3cret"}, fake_bin)
    assert started.returncode == 0
    assert started.stdout.strip() == "celery flower --port=5555"   # no secret in its argv


def test_row10_no_secret_on_a_command_line():
    for compose in (load_raw("docker-compose.yml"), load_raw("deploy/compose.multihost.yml"),
                    multihost()):
        assert rules.secret_problems(compose) == []
    for name, svc in multihost()["services"].items():
        for where, _, value in rules.commands(svc):
            text = value if isinstance(value, str) else " ".join(value)
            assert not [s for s in SECRET_VALUES if s in text], (name, where)


def test_row10_secret_on_a_command_line_is_caught():
    """The definitions this replaced: --requirepass and redis-cli -a put the password in
    `ps` and `docker inspect`; a default password is the same on every installation."""
    old = {"services": {
        "redis": {
            "command": ["sh", "-c", 'exec redis-server --appendonly yes --requirepass "$$REDIS_PASSWORD"'],
            "environment": {"REDIS_PASSWORD": "${SAM3V_REDIS_PASSWORD:?set it}"},
            "healthcheck": {"test": ["CMD-SHELL", 'redis-cli -a "$$REDIS_PASSWORD" ping | grep -q PONG']}},
        "flower": {"command": ["celery", "--broker=redis://:${SAM3V_REDIS_PASSWORD}@redis:6379/0",
                               "flower", "--basic-auth=admin:pw"]},
        "postgres": {"environment": {"POSTGRES_PASSWORD": "${SAM3V_POSTGRES_PASSWORD:-change-me}"}},
    }}
    assert rules.secret_problems(old) == [
        "redis: command passes a secret with --requirepass on the command line",
        "redis: command expands $REDIS_PASSWORD into the arguments of 'exec' (visible in ps)",
        "redis: healthcheck passes a secret with -a on the command line",
        "redis: healthcheck expands $REDIS_PASSWORD into the arguments of 'redis-cli' (visible in ps)",
        "flower: command has compose substitute ${SAM3V_REDIS_PASSWORD}: the secret becomes part "
        "of the command line",
        "flower: command passes a secret with --basic-auth on the command line",
        "flower: command has a URL with a password on the command line",
        "postgres: POSTGRES_PASSWORD defaults to 'change-me' when SAM3V_POSTGRES_PASSWORD is unset"]


def test_row10_redis_refuses_a_password_unsafe_in_urls(fake_bin):
    script = multihost()["services"]["redis"]["command"][2]
    for value in ["", "has space", "p@ss", "a:b", "x/y"]:
        refused = run_script(script, {"REDISCLI_AUTH": value}, fake_bin)
        assert refused.returncode == 1 and "SAM3V_REDIS_PASSWORD" in refused.stderr, value


def test_row10_redis_takes_its_password_on_stdin(fake_bin, tmp_path):
    """The multi-host redis command, run as the container runs it (docker-entrypoint.sh
    only execs here): the server requires the password it read on stdin, the healthcheck
    authenticates through REDISCLI_AUTH, and the password is in no process's arguments."""
    redis = multihost()["services"]["redis"]
    port = free_port()
    script = redis["command"][2].replace("redis-server ", f"redis-server --port {port} ", 1)
    env = {"PATH": f"{fake_bin}:{os.environ['PATH']}", "HOME": str(tmp_path)}
    auth = {**env, "REDISCLI_AUTH": redis["environment"]["REDISCLI_AUTH"]}
    server = subprocess.Popen(["sh", "-c", as_run(script)], cwd=tmp_path, env=auth,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cli = ["redis-cli", "-p", str(port)]
    try:
        deadline = time.monotonic() + 60  # generous: a loaded CI host starts redis slowly
        while "NOAUTH" not in subprocess.run(cli + ["ping"], env=env, capture_output=True,
                                             text=True).stdout:
            assert server.poll() is None and time.monotonic() < deadline, "redis did not start"
            time.sleep(0.1)
        assert (Path("/proc") / str(server.pid) / "cmdline").read_bytes().find(b"S3cret") == -1
        health = as_run(redis["healthcheck"]["test"][1]).replace("redis-cli", " ".join(cli))
        assert subprocess.run(["sh", "-c", health], env=auth).returncode == 0
        wrong = {**env, "REDISCLI_AUTH": "wrong"}
        assert subprocess.run(["sh", "-c", health], env=wrong, capture_output=True).returncode != 0
        policy = subprocess.run(cli + ["config", "get", "maxmemory-policy"], env=auth,
                                capture_output=True, text=True).stdout.split()
        assert policy == ["maxmemory-policy", "noeviction"]   # the options still apply
    finally:
        server.terminate()
        server.wait(timeout=20)


# --- Row 10: published ports bind loopback unless .env says otherwise -----------------------

BIND_VARIABLES = ("${SAM3V_BIND_HOST:-127.0.0.1}:", "${SAM3V_PRIVATE_BIND_HOST:-127.0.0.1}:")


def test_row10_published_ports_bind_loopback_by_default():
    for compose in (load_raw("docker-compose.yml"), load_raw("deploy/compose.multihost.yml"),
                    multihost()):
        assert rules.published_port_problems(compose) == []
    for name in COMPOSE_FILES:
        ports = [p for svc in load_raw(name)["services"].values() for p in svc.get("ports", [])]
        assert ports and all(str(p).startswith(BIND_VARIABLES) for p in ports), ports


def test_row10_bind_host_is_configurable():
    merged = multihost({**MULTIHOST_ENV, "SAM3V_BIND_HOST": "10.0.0.5",
                        "SAM3V_PRIVATE_BIND_HOST": "10.1.0.5", "SAM3V_API_PORT": "8080"})
    services = merged["services"]
    assert services["api"]["ports"] == ["10.0.0.5:8080:8000"]
    assert services["flower"]["ports"] == ["10.0.0.5:5555:5555"]
    assert services["redis"]["ports"] == ["10.1.0.5:6379:6379"]
    assert services["postgres"]["ports"] == ["10.1.0.5:5432:5432"]


def test_row10_a_port_on_every_interface_is_caught():
    """The entries this replaced published on 0.0.0.0."""
    old = {"services": {"api": {"ports": ["${SAM3V_API_PORT:-8000}:8000"]},
                        "redis": {"ports": ["6379:6379", "0.0.0.0:6380:6379", 5432]},
                        "flower": {"ports": ["[::1]:5555:5555", "${SAM3V_BIND_HOST:-127.0.0.1}:5556:5555"]}}}
    assert rules.published_port_problems(old) == [
        "api: port '${SAM3V_API_PORT:-8000}:8000' binds every interface; "
        "bind a host address that defaults to 127.0.0.1",
        "redis: port '6379:6379' binds every interface; bind a host address that defaults to 127.0.0.1",
        "redis: port '0.0.0.0:6380:6379' binds 0.0.0.0 by default, not 127.0.0.1",
        "redis: port 5432 binds every interface; bind a host address that defaults to 127.0.0.1"]


def test_row10_readme_documents_tls_in_front():
    """The API is on loopback; deploy/README.md says how other machines reach it: TLS in a
    reverse proxy, with a working example for Caddy and for nginx."""
    readme = (ROOT / "deploy" / "README.md").read_text()
    section = readme[readme.index("### TLS: a reverse proxy in front"):]
    section = section[:section.index("\n## ")]
    assert "reverse_proxy 127.0.0.1:8000" in section                 # Caddyfile
    assert "proxy_pass http://127.0.0.1:8000;" in section            # nginx
    assert "listen 443 ssl;" in section and "ssl_certificate " in section
    assert "proxy_buffering off;" in section                         # server-sent events
    assert "SAM3V_BIND_HOST" in section
    assert "(#tls-a-reverse-proxy-in-front)" in readme               # linked from the api


# --- Row 4: memory and PID limits ------------------------------------------------------------

MEM_LIMIT_VARIABLES = {"api": "SAM3V_API_MEM_LIMIT", "worker-gpu0": "SAM3V_WORKER_MEM_LIMIT",
                       "worker-gpu1": "SAM3V_WORKER_MEM_LIMIT", "redis": "SAM3V_REDIS_MEM_LIMIT",
                       "flower": "SAM3V_FLOWER_MEM_LIMIT", "postgres": "SAM3V_POSTGRES_MEM_LIMIT"}


def test_row4_every_long_running_service_has_memory_and_pid_limits(compose):
    assert set(compose["services"]) == set(MEM_LIMIT_VARIABLES)
    for merged in (compose, multihost()):
        assert rules.limit_problems(merged) == []
        assert rules.redis_problems(merged) == []
    for name, svc in compose["services"].items():
        assert rules.parse_bytes(rules.interpolate(svc["mem_limit"])) >= 256 * 2**20, name
        assert svc["pids_limit"] >= 128, name


def test_row4_memory_limits_are_configurable_by_env(compose):
    for name, variable in MEM_LIMIT_VARIABLES.items():
        assert re.fullmatch(r"\$\{%s:-\d+[mg]\}" % variable, compose["services"][name]["mem_limit"])
    services = load("docker-compose.yml", {"SAM3V_WORKER_MEM_LIMIT": "200g",
                                           "SAM3V_REDIS_MEM_LIMIT": "8g",
                                           "SAM3V_REDIS_MAXMEMORY": "4gb"})["services"]
    assert services["worker-gpu0"]["mem_limit"] == services["worker-gpu1"]["mem_limit"] == "200g"
    assert services["redis"]["mem_limit"] == "8g"
    assert rules.option(services["redis"]["command"], "--maxmemory") == "4gb"
    merged = multihost({**MULTIHOST_ENV, "SAM3V_REDIS_MAXMEMORY": "4gb"})
    assert rules.option(rules.redis_server_args(merged["services"]["redis"]), "--maxmemory") == "4gb"


def test_row4_pids_limit_is_a_literal_integer_for_compose_1_29(compose):
    """docker-compose 1.29 substitutes ${...} into a string and does not convert pids_limit
    back (its type conversions leave it out); docker-py's HostConfig then raises "Invalid
    type for pids_limit param: expected int". So the number is written out."""
    for name, svc in compose["services"].items():
        assert type(svc["pids_limit"]) is int, name
    broken = copy.deepcopy(compose)
    broken["services"]["api"]["pids_limit"] = "${SAM3V_API_PIDS_LIMIT:-512}"
    assert rules.limit_problems(broken) == [
        "api: pids_limit '${SAM3V_API_PIDS_LIMIT:-512}' must be a literal integer "
        "(docker-compose 1.29 would pass a string to docker-py)"]


def test_row4_missing_or_unusable_limits_are_caught(compose):
    broken = copy.deepcopy(compose)
    services = broken["services"]
    del services["api"]["mem_limit"]
    del services["postgres"]["pids_limit"]
    services["flower"]["pids_limit"] = -1                     # docker: unlimited
    services["worker-gpu0"]["mem_limit"] = "${SAM3V_WORKER_MEM_LIMIT:-16g}"   # = shm_size
    services["redis"]["mem_limit"] = "1g"                     # maxmemory 1gb > half of it
    assert rules.limit_problems(broken) == [
        "redis: --maxmemory 1gb is more than half of mem_limit (the append-only rewrite forks)",
        "api: no mem_limit",
        "worker-gpu0: mem_limit must exceed shm_size (16gb): /dev/shm counts against it",
        "flower: pids_limit -1 does not limit anything",
        "postgres: no pids_limit"]
    redis = services["redis"]["command"]
    del redis[redis.index("--maxmemory"):redis.index("--maxmemory") + 2]
    assert "redis: no --maxmemory" in rules.limit_problems(broken)[0]


def test_row4_multihost_redis_keeps_messages_and_its_memory_cap():
    """The multi-host redis command is a shell script of its own: it must keep what the
    single-host one has (the rules read the redis-server line of the script)."""
    args = rules.redis_server_args(multihost()["services"]["redis"])
    assert rules.option(args, "--appendonly") == "yes"
    assert rules.option(args, "--maxmemory-policy") == "noeviction"
    assert rules.option(args, "--maxmemory") == "1gb"
    assert args[-1] == "-"                                    # config (requirepass) on stdin
    assert rules.redis_problems({"services": {"redis": {"command": ["sh", "-c", "exec redis-server"]}}}) == [
        "redis: needs --appendonly yes", "redis: needs --maxmemory-policy noeviction"]


def test_row4_size_parser():
    assert rules.parse_bytes("512m") == 512 * 2**20
    assert rules.parse_bytes("16gb") == rules.parse_bytes("16g") == 16 * 2**30
    assert rules.parse_bytes(1024) == 1024
    with pytest.raises(ValueError):
        rules.parse_bytes("lots")


def test_row4_limits_are_documented():
    readme = (ROOT / "deploy" / "README.md").read_text()
    section = readme[readme.index("### Limits"):]
    section = section[:section.index("\n### ")]
    for variable in set(MEM_LIMIT_VARIABLES.values()) | {"SAM3V_REDIS_MAXMEMORY"}:
        assert f"`{variable}`" in section, variable
    for name, svc in load_raw("docker-compose.yml")["services"].items():
        row = next(line for line in section.splitlines() if line.startswith(f"| {name}")
                   or line.startswith(f"| worker-gpu0, {name}"))
        assert row.endswith(f"| {svc['pids_limit']} |"), name
        assert svc["mem_limit"].split(":-")[1].rstrip("}") in row, name
    assert "docker-compose.override.yml" in section


# --- The real docker-compose, where installed (Debian: apt-get install docker-compose) --------

def compose_cli(tmp_path: Path, env: dict[str, str], *files: str) -> subprocess.CompletedProcess:
    """`docker-compose config` (parses, interpolates and validates; needs no engine) on a
    copy of the compose files with a .env made from .env.example plus `env`."""
    for name in COMPOSE_FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text()
                                   + "".join(f"{k}={v}\n" for k, v in env.items()))
    argv = ["docker-compose"] + [a for f in files for a in ("-f", f)] + ["config"]
    return subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)})


def test_compose_files_load_in_the_docker_compose_cli(tmp_path):
    single = compose_cli(tmp_path, {}, "docker-compose.yml")
    assert single.returncode == 0, single.stderr
    merged = compose_cli(tmp_path, MULTIHOST_ENV, "docker-compose.yml", "deploy/compose.multihost.yml")
    assert merged.returncode == 0, merged.stderr
    for result in (single, merged):
        services = yaml.safe_load(result.stdout)["services"]
        for name, svc in services.items():
            assert type(svc["pids_limit"]) is int and svc["mem_limit"], name
            for port in svc.get("ports", []):   # 1.29 prints the short syntax, v2 the long one
                host = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
                assert host == "127.0.0.1", (name, port)
    missing = compose_cli(tmp_path, without("SAM3V_REDIS_PASSWORD"),
                          "docker-compose.yml", "deploy/compose.multihost.yml")
    assert missing.returncode != 0 and "set SAM3V_REDIS_PASSWORD" in missing.stderr


# --- deploy/compose.cpu.yml: a machine without GPUs (tests/deploy/test_compose_up.py runs it) --

CPU_RULES = [rules.schema_problems, rules.health_and_restart_problems, rules.volume_problems,
             rules.secret_problems, rules.published_port_problems,
             rules.limit_problems, rules.redis_problems]


def test_cpu_override_keeps_the_rules_and_pulls_nothing():
    assert rules.compose_v1_problems(load_raw("deploy/compose.cpu.yml")) == []
    merged = rules.merge(load("docker-compose.yml", {}), load("deploy/compose.cpu.yml", {}))
    for rule in CPU_RULES:
        assert rule(merged) == [], rule.__name__
    services = merged["services"]
    assert {n for n, s in services.items() if not s.get("profiles")} == {"redis", "api", "worker-cpu"}
    worker = services["worker-cpu"]
    assert rules.option(worker["command"], "-Q") == "cpu" and not rules.gpu_devices(worker)
    assert worker["environment"]["SAM3V_WORKER_GPUS"] == ""
    # shutdown_problems but memlock (compose.cpu.yml says why): checkpoint on stop, tini.
    assert worker["init"] is True and worker["stop_signal"] == "SIGTERM"
    assert rules.parse_duration(worker["stop_grace_period"]) >= 300 + 30
    assert "memlock" not in worker["ulimits"]
    assert services["api"]["environment"]["SAM3V_GPU_COUNTS"] == "0"
    # Every service it starts runs the service image: no registry needed.
    assert {services[n]["image"] for n in ("redis", "api", "worker-cpu")} == {"sam3v:latest"}
    assert "--appendonly" in services["redis"]["command"] and services["redis"]["working_dir"] == "/data"


def test_cpu_override_loads_in_the_docker_compose_cli(tmp_path):
    (tmp_path / "deploy").mkdir()
    shutil.copy(ROOT / "deploy" / "compose.cpu.yml", tmp_path / "deploy")
    result = compose_cli(tmp_path, {}, "docker-compose.yml", "deploy/compose.cpu.yml")
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert services["worker-cpu"]["volumes"] and services["worker-gpu0"]["profiles"] == ["gpu"]
    assert type(services["worker-cpu"]["pids_limit"]) is int
