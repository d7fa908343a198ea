"""Rules docker-compose.yml must keep, as functions returning a list of problems.

No Docker engine runs in CI, so these stand in for `docker compose up`: each rule reads the
parsed compose file (a dict, YAML merge keys already applied) and names what is wrong.
"""
from __future__ import annotations

import json
import re
import shlex
from importlib import resources

RESTART_POLICIES = {"always", "unless-stopped", "on-failure"}
# Where each kind of service keeps state that must survive a container being replaced.
STATE_PATHS = {
    "redis": ["/data"],
    "api": ["/srv/sam3v/state", "/srv/sam3v/runs"],
    "worker": ["/srv/sam3v/state", "/srv/sam3v/runs"],
    "postgres": ["/var/lib/postgresql/data"],
}
READ_ONLY_PATHS = ["/srv/sam3v/data", "/srv/sam3v/data/weights"]

# What docker-compose 1.29 (Debian's `docker-compose` package) reads. It validates every file
# against its own, older copy of the Compose Specification, with additionalProperties false,
# so a key that only Compose v2 knows (top-level `name`, env_file entries with `required`,
# healthcheck `start_interval`, long-syntax port `host_ip`, ...) stops it with an error.
V1_TOP_LEVEL_KEYS = {"version", "services", "volumes", "networks", "secrets", "configs"}
V1_SERVICE_KEYS = {
    "blkio_config", "build", "cap_add", "cap_drop", "cgroup_parent", "command", "configs",
    "container_name", "cpu_count", "cpu_percent", "cpu_period", "cpu_quota", "cpu_rt_period",
    "cpu_rt_runtime", "cpu_shares", "cpus", "cpuset", "credential_spec", "depends_on", "deploy",
    "device_cgroup_rules", "devices", "dns", "dns_opt", "dns_search", "domainname", "entrypoint",
    "env_file", "environment", "expose", "extends", "external_links", "extra_hosts", "group_add",
    "healthcheck", "hostname", "image", "init", "ipc", "isolation", "labels", "links", "logging",
    "mac_address", "mem_limit", "mem_reservation", "mem_swappiness", "memswap_limit",
    "network_mode", "networks", "oom_kill_disable", "oom_score_adj", "pid", "pids_limit",
    "platform", "ports", "privileged", "profiles", "pull_policy", "read_only", "restart",
    "runtime", "scale", "secrets", "security_opt", "shm_size", "stdin_open",
    "stop_grace_period", "stop_signal", "storage_opt", "sysctls", "tmpfs", "tty", "ulimits",
    "user", "userns_mode", "volumes", "volumes_from", "working_dir"}
V1_HEALTHCHECK_KEYS = {"disable", "interval", "retries", "start_period", "test", "timeout"}
V1_PORT_KEYS = {"mode", "target", "published", "protocol"}
V1_LIMIT_KEYS = {"cpus", "memory"}


def compose_schema() -> dict:
    """The Compose Specification JSON schema, as vendored by the check-jsonschema package."""
    files = resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((files / "compose-spec.json").read_text())


def schema_problems(compose: dict) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(compose_schema())
    return [f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in validator.iter_errors(compose)]


def workers(compose: dict) -> dict[str, dict]:
    return {name: svc for name, svc in compose["services"].items() if name.startswith("worker")}


def gpu_devices(service: dict) -> list[dict]:
    reservations = service.get("deploy", {}).get("resources", {}).get("reservations", {})
    return [d for d in reservations.get("devices", []) if "gpu" in d.get("capabilities", [])]


def gpu_ids(service: dict) -> list[str]:
    return [str(i) for d in gpu_devices(service) for i in d.get("device_ids", [])]


def option(command: list[str], flag: str) -> str | None:
    """Value following `flag` in an exec-form command, or None."""
    return command[command.index(flag) + 1] if flag in command[:-1] else None


def volume_mounts(service: dict) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) for every volume, short or long syntax."""
    mounts = []
    for v in service.get("volumes", []):
        if isinstance(v, str):
            # The source may hold ${VAR:-default}, whose default has no colon here.
            parts = re.sub(r"\$\{[^}]*\}", "VAR", v).split(":")
            source = v.rsplit(":", len(parts) - 1)[0]
            mounts.append((source, parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
        else:
            mounts.append((v.get("source", ""), v["target"], bool(v.get("read_only"))))
    return mounts


def service_kind(name: str) -> str:
    return "worker" if name.startswith("worker") else name


def gpu_problems(compose: dict) -> list[str]:
    problems, owner = [], {}
    for name, svc in workers(compose).items():
        devices = gpu_devices(svc)
        if not devices:
            problems.append(f"{name}: reserves no GPU (deploy.resources.reservations.devices)")
        for d in devices:
            if d.get("driver") != "nvidia" or not d.get("device_ids"):
                problems.append(f"{name}: GPU reservation needs driver nvidia and device_ids")
        for gpu in gpu_ids(svc):
            if gpu in owner:
                problems.append(f"GPU {gpu} reserved by both {owner[gpu]} and {name}")
            owner[gpu] = name
    return problems


def queue_problems(compose: dict) -> list[str]:
    """Each worker consumes gpu<N> where N = its GPUs, and SAM3V_WORKER_GPUS lists 0..N-1
    (inside the container the reserved GPUs are renumbered from 0)."""
    problems, ids, nodes = [], {}, {}
    for name, svc in workers(compose).items():
        env = svc.get("environment", {})
        n = len(gpu_ids(svc))
        listed = env.get("SAM3V_WORKER_GPUS")
        if listed is None or [g.strip() for g in str(listed).split(",") if g.strip()] != [str(i) for i in range(n)]:
            problems.append(f"{name}: SAM3V_WORKER_GPUS={listed!r} does not list its {n} GPUs as 0..{n - 1}")
        queue = option(svc.get("command", []), "-Q")
        if queue != f"gpu{n}":
            problems.append(f"{name}: consumes queue {queue!r}, but owns {n} GPU(s): expected 'gpu{n}'")
        worker_id = env.get("SAM3V_WORKER_ID")
        if not worker_id or worker_id in ids:
            problems.append(f"{name}: SAM3V_WORKER_ID {worker_id!r} missing or shared with {ids.get(worker_id)}")
        ids[worker_id] = name
        node = option(svc.get("command", []), "-n")
        if not node or node.split("@")[0] != worker_id:
            problems.append(f"{name}: celery node name {node!r} should be '{worker_id}@%h' (its healthcheck pings it)")
        if (node, svc.get("hostname")) in nodes:
            problems.append(f"{name}: node name {node!r} on host {svc.get('hostname')!r} is not unique")
        nodes[(node, svc.get("hostname"))] = name
    return problems


def health_and_restart_problems(compose: dict) -> list[str]:
    problems = []
    for name, svc in compose["services"].items():
        test = svc.get("healthcheck", {}).get("test")
        if not test or svc["healthcheck"].get("disable"):
            problems.append(f"{name}: no healthcheck")
        if svc.get("restart") not in RESTART_POLICIES:
            problems.append(f"{name}: restart is {svc.get('restart')!r}, expected one of {sorted(RESTART_POLICIES)}")
    return problems


def volume_problems(compose: dict) -> list[str]:
    problems = []
    declared = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        mounts = volume_mounts(svc)
        by_target = {target: (source, ro) for source, target, ro in mounts}
        for path in STATE_PATHS.get(service_kind(name), []):
            source, _ = by_target.get(path, ("", False))
            if not source:
                problems.append(f"{name}: state path {path} is not on a volume")
        for source, target, _ in mounts:
            named = not source.startswith((".", "/", "$", "~"))
            if named and source not in declared:
                problems.append(f"{name}: volume {source!r} (for {target}) is not declared under volumes:")
        if service_kind(name) in {"api", "worker"}:
            for path in READ_ONLY_PATHS:
                if path not in by_target or not by_target[path][1]:
                    problems.append(f"{name}: {path} must be mounted read-only")
    return problems


def shutdown_problems(compose: dict) -> list[str]:
    """Workers must checkpoint on `docker compose stop`. SIGTERM is the worker's graceful
    shutdown (worker/celery_app.py: the trainer gets SIGTERM and SAM3V_CANCEL_GRACE_S to
    checkpoint, then the task requeues the job); Docker must wait longer than that."""
    problems = []
    for name, svc in workers(compose).items():
        env = svc.get("environment", {})
        if svc.get("init") is not True:
            problems.append(f"{name}: needs init: true (signal forwarding, zombie reaping)")
        if "REMAP_SIGTERM" in env:
            # A remapped SIGTERM skips the warm shutdown hook that stops the trainer first.
            problems.append(f"{name}: REMAP_SIGTERM bypasses the worker's graceful stop")
        if svc.get("stop_signal", "SIGTERM") != "SIGTERM":
            problems.append(f"{name}: stop_signal must be SIGTERM")
        grace = float(interpolate(str(env.get("SAM3V_CANCEL_GRACE_S", "30"))))
        if parse_duration(svc.get("stop_grace_period", "10s")) < grace + 30:
            problems.append(f"{name}: stop_grace_period must exceed SAM3V_CANCEL_GRACE_S ({grace:g} s) "
                            "+ 30 s, or Docker kills the trainer mid-checkpoint")
        if grace < 60:
            problems.append(f"{name}: SAM3V_CANCEL_GRACE_S {grace:g} s is too short for a full-size checkpoint")
        if not svc.get("shm_size"):
            problems.append(f"{name}: no shm_size (DataLoader workers share batches via /dev/shm)")
        ulimits = svc.get("ulimits", {})
        if ulimits.get("memlock") != -1 or "stack" not in ulimits:
            problems.append(f"{name}: ulimits need memlock: -1 and a stack size")
    return problems


def compose_v1_problems(compose: dict) -> list[str]:
    """Keys docker-compose 1.29 would refuse (see V1_SERVICE_KEYS); Compose v2 reads all of
    these too, so a file that passes works with both."""
    problems = [f"top-level key {key!r} is Compose v2 only" for key in compose
                if key not in V1_TOP_LEVEL_KEYS and not key.startswith("x-")]
    for name, svc in compose.get("services", {}).items():
        problems += [f"{name}: key {key!r} is Compose v2 only" for key in svc
                     if key not in V1_SERVICE_KEYS and not key.startswith("x-")]
        env_file = svc.get("env_file", [])
        for entry in [env_file] if isinstance(env_file, str) else env_file:
            if not isinstance(entry, str):
                problems.append(f"{name}: env_file entry {entry!r} must be a plain path "
                                "(path/required is Compose v2.24+ only)")
        problems += [f"{name}: healthcheck key {key!r} is Compose v2 only"
                     for key in svc.get("healthcheck", {}) if key not in V1_HEALTHCHECK_KEYS]
        for port in svc.get("ports", []):
            if isinstance(port, dict):
                problems += [f"{name}: port key {key!r} is Compose v2 only (use the short syntax)"
                             for key in port if key not in V1_PORT_KEYS]
        limits = svc.get("deploy", {}).get("resources", {}).get("limits", {})
        problems += [f"{name}: deploy.resources.limits.{key} is Compose v2 only"
                     for key in limits if key not in V1_LIMIT_KEYS]
    return problems


# A secret, by the name of the variable that holds it (POSTGRES_PASSWORD, REDISCLI_AUTH,
# FLOWER_BASIC_AUTH, SAM3V_REDIS_PASSWORD, ...).
SECRET_NAME = re.compile(r"PASSWORD|SECRET|(?:^|_)AUTH$")
# Options that take a secret on the command line (redis-server, redis-cli, flower, ...).
SECRET_FLAGS = {"--requirepass", "--masterauth", "-a", "--pass", "--password", "--basic-auth",
                "--basic_auth", "--auth"}
URL_WITH_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:]*:[^\s/@]+@")
# ${VAR} / $VAR that compose substitutes (a $$ is compose's escape for a literal $), and the
# $$VAR that reaches the shell as $VAR.
COMPOSE_REF = re.compile(r"(?<!\$)\$\{?([A-Za-z_][A-Za-z0-9_]*)")
SHELL_REF = re.compile(r"\$\$\{?([A-Za-z_][A-Za-z0-9_]*)")
# Shell builtins and keywords: their words are never a process's argv.
ARGV_FREE = {"case", "[", "test", "echo", "printf", "export", "unset", ":"}
SHELL_PREFIX_WORDS = {"if", "then", "elif", "else", "while", "until", "do", "!", "{", "("}
SHELLS = {"sh", "/bin/sh", "bash", "/bin/bash"}


def commands(service: dict) -> list[tuple[str, str, list[str] | str]]:
    """(where, kind, value) for command, entrypoint and healthcheck test: kind "argv" with
    the argument list compose execs, or "shell" with the script a shell runs."""
    out = []
    for where in ("command", "entrypoint"):
        value = service.get(where)
        if isinstance(value, str):
            value = shlex.split(value)   # compose splits a string command; no shell runs it
        if not value:
            continue
        if value[0] in SHELLS and len(value) > 2 and value[1] == "-c":
            out.append((where, "shell", value[2]))
        else:
            out.append((where, "argv", [str(v) for v in value]))
    test = service.get("healthcheck", {}).get("test")
    if isinstance(test, str):
        out.append(("healthcheck", "shell", test))
    elif test and test[0] == "CMD-SHELL":
        out.append(("healthcheck", "shell", " ".join(test[1:])))
    elif test and test[0] == "CMD":
        out.append(("healthcheck", "argv", [str(v) for v in test[1:]]))
    return out


def shell_lines(script: str) -> list[str]:
    """The script's lines that the shell parses as commands: continuations joined, here-doc
    bodies (which a command reads on stdin) left out."""
    lines, delimiter = [], None
    for line in script.replace("\\\n", " ").splitlines():
        if delimiter is not None:
            if line.strip() == delimiter:
                delimiter = None
            continue
        lines.append(line)
        heredoc = re.search(r"<<-?\s*(['\"]?)(\w+)\1", line)
        if heredoc:
            delimiter = heredoc.group(2)
    return lines


def words(text: str) -> list[str]:
    try:
        return shlex.split(text, comments=True)
    except ValueError:
        return text.split()


def argv_secret_problems(name: str, where: str, kind: str, value: list[str] | str) -> list[str]:
    problems = []
    text = value if kind == "shell" else " ".join(value)
    for ref in COMPOSE_REF.findall(text):
        if SECRET_NAME.search(ref):
            problems.append(f"{name}: {where} has compose substitute ${{{ref}}}: the secret "
                            "becomes part of the command line")
    lines = shell_lines(value) if kind == "shell" else [shlex.join(value)]
    argv_words = [w for line in lines for w in words(line)] if kind == "shell" else value
    for flag in sorted(SECRET_FLAGS & {w.split("=")[0] for w in argv_words}):
        problems.append(f"{name}: {where} passes a secret with {flag} on the command line")
    if any(URL_WITH_PASSWORD.search(w) for w in argv_words):
        problems.append(f"{name}: {where} has a URL with a password on the command line")
    if kind == "shell":
        for line in lines:
            for simple in re.split(r"&&|\|\||[;|]", line):
                refs = [r for r in SHELL_REF.findall(simple) if SECRET_NAME.search(r)]
                first = [w for w in words(simple) if w not in SHELL_PREFIX_WORDS][:1]
                if refs and first and first[0] not in ARGV_FREE:
                    problems.append(f"{name}: {where} expands ${refs[0]} into the arguments of "
                                    f"{first[0]!r} (visible in ps)")
    return problems


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def secret_problems(compose: dict) -> list[str]:
    """No secret on a command line (`ps`, `docker inspect` show it): no secret flag, no URL
    with a password, no secret variable expanded into a process's arguments (a shell
    builtin's words and a here-doc fed on stdin are fine). A secret in the environment
    has no default (`change-me` would be a password every installation shares)."""
    problems = []
    for name, svc in compose["services"].items():
        for where, kind, value in commands(svc):
            problems += argv_secret_problems(name, where, kind, value)
        for key, value in environment(svc).items():
            if SECRET_NAME.search(key):
                for var, default in re.findall(r"\$\{([A-Za-z0-9_]+):?-([^}]+)\}", value):
                    problems.append(f"{name}: {key} defaults to {default!r} when {var} is unset")
    return problems


LOOPBACK = {"127.0.0.1", "::1"}


def port_host_ip(entry: str | int | dict) -> str | None:
    """The host address a published port binds (None: every interface), with ${...} at
    their defaults."""
    if isinstance(entry, dict):
        return entry.get("host_ip")
    text = str(entry)
    try:
        text = interpolate(text)
    except ValueError:
        pass
    text = text.split("/")[0]
    if text.startswith("["):                       # [::1]:8000:8000
        return text[1:].split("]")[0]
    parts = text.rsplit(":", 2)
    return parts[0] if len(parts) == 3 and parts[0] else None


def published_port_problems(compose: dict) -> list[str]:
    """A published port binds loopback unless .env says otherwise (Docker's own iptables
    rules let a 0.0.0.0 port past ufw/firewalld). Expose a service through a TLS reverse
    proxy, or on a private network by setting the bind address."""
    problems = []
    for name, svc in compose["services"].items():
        for entry in svc.get("ports", []):
            host = port_host_ip(entry)
            if host is None:
                problems.append(f"{name}: port {entry!r} binds every interface; "
                                "bind a host address that defaults to 127.0.0.1")
            elif host not in LOOPBACK:
                problems.append(f"{name}: port {entry!r} binds {host} by default, not 127.0.0.1")
    return problems


def parse_bytes(text: str | int) -> int:
    """Compose/Docker sizes: 512m, 64g, 16gb, 1gb (units of 1024), or a bare byte count.
    (Redis reads 1g as 10^9 and 1gb as 2^30; taking both as 2^30 errs on the large side.)"""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = re.fullmatch(r"(\d+)\s*([bkmg]?)b?", str(text).strip().lower())
    if not match:
        raise ValueError(f"not a size: {text!r}")
    return int(match.group(1)) * 1024 ** "bkmg".index(match.group(2) or "b")


def redis_server_args(service: dict) -> list[str] | None:
    """The arguments after `redis-server` in the service's command (exec form, or the line
    of a shell script that starts it), ${...} at their defaults."""
    for where, kind, value in commands(service):
        if where != "command":
            continue
        for line in shell_lines(value) if kind == "shell" else [shlex.join(value)]:
            argv = [w for w in words(line) if not w.startswith("<<")]
            if "redis-server" in argv:
                return [interpolate(w) for w in argv[argv.index("redis-server") + 1:]]
    return None


def limit_problems(compose: dict) -> list[str]:
    """Every service runs for as long as the stack does, so each has a memory limit and a
    process/thread limit (a leak or a fork loop takes down one container, not the host).
    pids_limit must be a literal integer: docker-compose 1.29 passes a ${...} value on as a
    string, and docker-py refuses it when creating the container."""
    problems = []
    for name, svc in compose["services"].items():
        mem = None
        if "mem_limit" not in svc:
            problems.append(f"{name}: no mem_limit")
        else:
            try:
                mem = parse_bytes(interpolate(str(svc["mem_limit"])))
            except ValueError as e:
                problems.append(f"{name}: mem_limit: {e}")
        pids = svc.get("pids_limit")
        if pids is None:
            problems.append(f"{name}: no pids_limit")
        elif not isinstance(pids, int) or isinstance(pids, bool):
            problems.append(f"{name}: pids_limit {pids!r} must be a literal integer "
                            "(docker-compose 1.29 would pass a string to docker-py)")
        elif pids <= 0:
            problems.append(f"{name}: pids_limit {pids} does not limit anything")
        if mem and service_kind(name) == "worker" and "shm_size" in svc:
            if mem <= parse_bytes(svc["shm_size"]):
                problems.append(f"{name}: mem_limit must exceed shm_size ({svc['shm_size']}): "
                                "/dev/shm counts against it")
        if mem and name == "redis":
            maxmemory = option(redis_server_args(svc) or [], "--maxmemory")
            if maxmemory is None:
                problems.append("redis: no --maxmemory: the kernel kills Redis at mem_limit "
                                "instead of Redis refusing writes (noeviction)")
            elif parse_bytes(maxmemory) > mem // 2:
                problems.append(f"redis: --maxmemory {maxmemory} is more than half of mem_limit "
                                "(the append-only rewrite forks)")
    return problems


def redis_problems(compose: dict) -> list[str]:
    """A queued message survives a restart (append-only file) and is never evicted."""
    args = redis_server_args(compose["services"].get("redis", {}))
    if args is None:
        return ["redis: command does not start redis-server"]
    problems = []
    if option(args, "--appendonly") != "yes":
        problems.append("redis: needs --appendonly yes")
    if option(args, "--maxmemory-policy") != "noeviction":
        problems.append("redis: needs --maxmemory-policy noeviction")
    return problems


def interpolate(text: str, env: dict[str, str] | None = None) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} against `env` (default: empty),
    leaving $$ escapes alone. Raises ValueError for a required variable that is unset."""
    env = env or {}

    def value(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op == ":?":
            raise ValueError(f"{name}: {arg}")
        return arg if op == ":-" else ""

    return re.sub(r"(?<!\$)\$\{([A-Z0-9_]+)(?:(:-|:\?)([^}]*))?\}", value, text)


def merge(base: dict, override: dict) -> dict:
    """Compose's merge of an override file, as far as these rules need it: mappings merge
    key by key, anything else (command, lists) is replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_duration(text: str | int) -> float:
    """Compose durations: '1m30s', '10m', '90s', or a bare number of seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a compose duration: {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


ALL_RULES = [schema_problems, gpu_problems, queue_problems, health_and_restart_problems,
             volume_problems, shutdown_problems, compose_v1_problems, secret_problems,
             published_port_problems, limit_problems, redis_problems]
