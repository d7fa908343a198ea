"""The local stack's home directory: its layout and the settings env derived from it.

    DIR/sam3v.db   SQLite job store          DIR/redis   embedded Redis data (+ port file)
    DIR/data       DATA_ROOT (demo datasets) DIR/logs    one log per child process
    DIR/runs       RUNS_ROOT                 DIR/token   the first admin API token
                                             DIR/url     the API's URL while it runs

Everything in it is private to the user who runs the stack: the directories are 0700
and the launcher runs its processes (Redis, API, worker, trainers) with umask 077, so
the database, logs, token file, run directories and checkpoints are 0600/0700.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from client.home import DEFAULT_HOME, TOKEN_FILE, URL_FILE

__all__ = ["DEFAULT_HOME", "HomeLayout", "PRIVATE_DIR", "PRIVATE_FILE", "PRIVATE_UMASK",
           "broker_url", "settings_env"]

PRIVATE_UMASK = 0o077  # the stack's processes: new files 0600, new folders 0700
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


@dataclass(frozen=True)
class HomeLayout:
    root: Path

    @classmethod
    def of(cls, home: str | Path) -> "HomeLayout":
        return cls(Path(home).expanduser().resolve())

    @property
    def database(self) -> Path:
        return self.root / "sam3v.db"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def redis(self) -> Path:
        return self.root / "redis"

    @property
    def redis_port_file(self) -> Path:
        # Written by the launcher while its Redis runs, so other commands can find it.
        return self.redis / "port"

    @property
    def url_file(self) -> Path:
        # The API's address, written by the launcher while it runs (read by `sam3v submit`).
        return self.root / URL_FILE

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def token(self) -> Path:
        return self.root / TOKEN_FILE

    def create(self) -> None:
        """The home and its folders, 0700 (an existing home from before is tightened)."""
        for path in (self.root, self.data, self.runs, self.redis, self.logs):
            path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
            path.chmod(PRIVATE_DIR)

    def make_private(self) -> None:
        """create(), and the files a stack of an older version left readable to others
        (the database and its journals, token, url, lock, logs, Redis data) become 0600.
        What lies under runs/ and data/ is out of reach through the 0700 folders."""
        self.create()
        for folder in (self.root, self.logs, self.redis):
            for path in folder.iterdir():
                if path.is_file() and not path.is_symlink():
                    path.chmod(PRIVATE_FILE)


def broker_url(redis_port: int) -> str:
    return f"redis://127.0.0.1:{redis_port}/0"


def settings_env(home: str | Path, redis_port: int | None = None) -> dict[str, str]:
    """The SAM3V_* variables that point jobstore.settings.Settings at `home`.

    The broker URL is included when the Redis port is known: given, or recorded in
    DIR/redis/port by a running `sam3v up`.
    """
    layout = HomeLayout.of(home)
    env = {
        "SAM3V_HOME": str(layout.root),
        "SAM3V_DATABASE_URL": f"sqlite:///{layout.database}",
        "SAM3V_DATA_ROOT": str(layout.data),
        "SAM3V_RUNS_ROOT": str(layout.runs),
        # The local stack runs one CPU worker, so only CPU jobs can be served.
        "SAM3V_GPU_COUNTS": "0",
    }
    if redis_port is None and layout.redis_port_file.is_file():
        text = layout.redis_port_file.read_text().strip()
        redis_port = int(text) if text.isascii() and text.isdigit() and len(text) <= 5 else None
    if redis_port is not None:
        env["SAM3V_BROKER_URL"] = broker_url(redis_port)
    return env
