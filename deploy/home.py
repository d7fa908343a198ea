"""The local stack's home directory: its layout and the settings env derived from it.

    DIR/sam3v.db   SQLite job store          DIR/redis   embedded Redis data (+ port file)
    DIR/data       DATA_ROOT (demo datasets) DIR/logs    one log per child process
    DIR/runs       RUNS_ROOT                 DIR/token   the first admin API token
                                             DIR/url     the API's URL while it runs
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from client.home import DEFAULT_HOME, TOKEN_FILE, URL_FILE

__all__ = ["DEFAULT_HOME", "HomeLayout", "broker_url", "settings_env"]


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
        for path in (self.root, self.data, self.runs, self.redis, self.logs):
            path.mkdir(parents=True, exist_ok=True)


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
