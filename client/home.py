"""Where a running local stack (`sam3v up --home DIR`) leaves what the client reads:
DIR/url (the API's address) and DIR/token (the first admin token). The launcher writes
them; deploy/home.py takes these names from here, so writer and reader agree."""
from __future__ import annotations

from pathlib import Path

DEFAULT_HOME = ".sam3v"
URL_FILE = "url"
TOKEN_FILE = "token"


def home_dir(home: str | Path | None = None) -> Path:
    """The stack home, absolute (DEFAULT_HOME when none is given)."""
    return Path(home or DEFAULT_HOME).expanduser().resolve()
