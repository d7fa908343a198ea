"""The web dashboard: static files from api/ui/, served without auth. The page holds no
data; its scripts send the pasted token with every API call."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from api.errors import ApiError

router = APIRouter(include_in_schema=False)
UI_DIR = Path(__file__).resolve().parent.parent / "ui"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
# Scripts and styles from this origin only; blob: for overlays and checkpoints fetched
# with the token; no framing (the page shows a token field).
HEADERS = {"Cache-Control": "no-cache",
           "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
                                      "media-src 'self' blob:; frame-ancestors 'none'",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _files() -> dict[str, Path]:
    """The servable files by name, listed once: a request can name only these (no paths)."""
    if not UI_DIR.is_dir():
        return {}
    return {f.name: f for f in UI_DIR.iterdir() if f.is_file() and f.suffix in MEDIA_TYPES}


FILES = _files()


def _serve(name: str) -> FileResponse:
    path = FILES.get(name)
    if path is None:
        raise ApiError(404, f"ui file {name[:100]!r} not found" if FILES else
                       f"the dashboard's files are not installed ({UI_DIR} is missing)")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=HEADERS)


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui")
def ui_no_slash() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)  # relative URLs in index.html need the slash


@router.get("/ui/")
def ui_index() -> FileResponse:
    return _serve("index.html")


@router.get("/ui/{name}")
def ui_file(name: str) -> FileResponse:
    return _serve(name)
