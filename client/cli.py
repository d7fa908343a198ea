"""The HTTP half of `sam3v`: the commands that talk to a running API.

    sam3v submit CONFIG.json [--kind train|eval] [--gpus N] [--url U] [--token T | --home DIR]
    sam3v status JOB_ID    /    sam3v wait JOB_ID [--timeout S]

The HTTP commands find the API from --url, else $SAM3V_URL, else DIR/url written by a
running `sam3v up --home DIR`; the token from --token, else $SAM3V_TOKEN, else DIR/token.

This package imports nothing of the server, so it runs where only httpx is installed
(`python -m client.cli`). The installed `sam3v` command is deploy/cli.py: this parser
plus the server-side commands (`sam3v up`, `sam3v tokens create`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from client.home import DEFAULT_HOME, TOKEN_FILE, URL_FILE, home_dir

EXIT_FAILED = 1   # `wait`: the job finished, but not successfully
EXIT_USAGE = 2


def _connection(args) -> tuple[str, str | None]:
    home = home_dir(args.home)
    url_file, token_file = home / URL_FILE, home / TOKEN_FILE
    url = args.url or os.environ.get("SAM3V_URL")
    if not url and url_file.is_file():
        url = url_file.read_text().strip()
    if not url:
        raise SystemExit(f"sam3v: no API address: pass --url, set SAM3V_URL, or start "
                         f"`sam3v up --home {home}` (it writes {url_file})")
    token = args.token or os.environ.get("SAM3V_TOKEN")
    if not token and token_file.is_file():
        token = token_file.read_text().strip()
    return url, token


def _client(args):
    from client.api_client import Sam3vClient

    return Sam3vClient(*_connection(args))


def _print(job: dict) -> None:
    try:
        print(json.dumps(job, indent=2), flush=True)
    except BrokenPipeError:  # `sam3v status 1 | head`: the reader left, nothing to report
        sys.stdout = None


def cmd_submit(args) -> int:
    path = Path(args.config)
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"sam3v submit: {path}: file not found") from None
    except json.JSONDecodeError as err:
        raise SystemExit(f"sam3v submit: {path}: not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise SystemExit(f"sam3v submit: {path}: expected a JSON object")
    # A job envelope (as the worker writes to job.json) carries its kind and config.
    kind = args.kind
    if "kind" in config and "config" in config:
        kind, config = args.kind or config["kind"], config["config"]
    with _client(args) as client:
        _print(client.submit(kind or "train", config, gpus=args.gpus, name=args.name))
    return 0


def cmd_status(args) -> int:
    with _client(args) as client:
        _print(client.job(args.job_id))
    return 0


def cmd_wait(args) -> int:
    with _client(args) as client:
        job = client.wait(args.job_id, timeout_s=args.timeout, poll_s=args.poll)
    _print(job)
    return 0 if job["state"] == "succeeded" else EXIT_FAILED


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="API address, e.g. http://127.0.0.1:8000")
    parser.add_argument("--token", help="API token (default: $SAM3V_TOKEN or DIR/token)")
    parser.add_argument("--home", help=f"local stack home to read url/token from (default {DEFAULT_HOME})")


def build_parser(server_commands=None) -> argparse.ArgumentParser:
    """The `sam3v` parser with the HTTP commands. `server_commands(subparsers)`, if given,
    adds more commands ahead of them (deploy/cli.py adds `up` and `tokens`)."""
    parser = argparse.ArgumentParser(prog="sam3v", description="SAM3 video fine-tuning service")
    sub = parser.add_subparsers(dest="command", required=True)
    if server_commands is not None:
        server_commands(sub)

    submit = sub.add_parser("submit", help="submit a job config (JSON); prints the job")
    submit.add_argument("config", help="a TrainConfig/EvalConfig JSON file, e.g. examples/train_tiny.json")
    submit.add_argument("--kind", choices=["train", "eval"], help="default: train (or the envelope's kind)")
    submit.add_argument("--gpus", type=int, help="override config.gpus (0 = CPU)")
    submit.add_argument("--name", help="a free label for the job")
    _add_connection_options(submit)

    for name, text in (("status", "print a job"), ("wait", "wait until a job finishes; exit 0 if it succeeded")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("job_id", type=int)
        _add_connection_options(cmd)
        if name == "wait":
            cmd.add_argument("--timeout", type=float, help="give up after this many seconds")
            cmd.add_argument("--poll", type=float, default=2.0, help="seconds between polls")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run a parsed HTTP command (submit, status, wait); its exit code."""
    from client.api_client import ApiError

    try:
        return {"submit": cmd_submit, "status": cmd_status, "wait": cmd_wait}[args.command](args)
    except ApiError as err:
        print(f"sam3v {args.command}: {err}", file=sys.stderr)
        return EXIT_FAILED
    except TimeoutError as err:
        print(f"sam3v {args.command}: {err}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
