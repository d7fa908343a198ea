"""The HTTP half of `sam3v`: the commands that talk to a running API.

    sam3v submit CONFIG.json|CONFIG.yaml [--kind train|eval|predict] [--gpus N] [--name N] [--follow]
    sam3v jobs [--state S] [--kind K] [--name N] [--limit N]
    sam3v show ID  (alias: status)      sam3v watch ID      sam3v wait ID [--timeout S]
    sam3v logs ID [-f] [--attempt N]    sam3v cancel ID     sam3v retry ID     sam3v delete ID
    sam3v download ID [--checkpoint NAME|latest] [-o PATH]
    sam3v predictions ID [--offset N] [--limit N]     sam3v overlays ID [-o DIR]
  each with [--url U] [--token T | --home DIR]

The HTTP commands find the API from --url, else $SAM3V_URL, else DIR/url written by a
running `sam3v up --home DIR`; the token from --token, else $SAM3V_TOKEN, else DIR/token.

This package imports nothing of the server, so it runs where only httpx (and PyYAML, for
YAML specs) is installed: `pip install ./client` gives it as `sam3v-client`. The installed `sam3v` command is deploy/cli.py: this parser
plus the server-side commands (`sam3v up`, `sam3v tokens create`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from client.home import DEFAULT_HOME, TOKEN_FILE, URL_FILE, home_dir

EXIT_OK = 0
EXIT_FAILED = 1    # watch / wait / submit --follow: the job failed or was cancelled (or wait timed out)
EXIT_REFUSED = 2   # the request was refused: a 4xx answer, a bad argument or input file
EXIT_SERVER = 3    # the server failed (5xx), could not be reached, or a download did not verify

EPILOG = """\
exit codes:
  0  done (watch/wait/submit --follow: the job succeeded)
  1  the job failed or was cancelled (watch, wait, submit --follow), or wait timed out
  2  the request was refused: a 4xx answer (its detail and field errors are printed on
     stderr), or a bad argument or input file
  3  the server failed (5xx) or could not be reached, or a download's sha256 did not match

The API comes from --url, else $SAM3V_URL, else DIR/url of a running `sam3v up --home DIR`
(default .sam3v); the token from --token, else $SAM3V_TOKEN, else DIR/token.
"""


class CliError(Exception):
    """A problem on this side (a missing file, no API address): message and exit code."""

    def __init__(self, message: str, code: int = EXIT_REFUSED):
        super().__init__(message)
        self.code = code


def _connection(args) -> tuple[str, str | None]:
    home = home_dir(args.home)
    url_file, token_file = home / URL_FILE, home / TOKEN_FILE
    url = args.url or os.environ.get("SAM3V_URL")
    if not url and url_file.is_file():
        url = url_file.read_text().strip()
    if not url:
        raise CliError(f"no API address: pass --url, set SAM3V_URL, or start "
                       f"`sam3v up --home {home}` (it writes {url_file})")
    token = args.token or os.environ.get("SAM3V_TOKEN")
    if not token and token_file.is_file():
        token = token_file.read_text().strip()
    return url, token


def _client(args):
    from client.api_client import Sam3vClient

    return Sam3vClient(*_connection(args))


def _out(text: str = "") -> None:
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `sam3v jobs | head`: the reader left, nothing to report
        sys.stdout = None


def _print(job: dict) -> None:
    _out(json.dumps(job, indent=2))


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def _job_line(job: dict) -> str:
    progress = job.get("progress") or {}
    line = f"job {job['id']} {job['state']} (attempt {job['attempt']}/{job['max_attempts']})"
    if progress.get("step"):
        line += f"  step {progress['step']}/{progress.get('max_steps') or '?'}"
    if job.get("failure"):
        failure = job["failure"]
        line += f"  failure: {failure.get('kind')}: {failure.get('message')}"
    return line


YAML_SUFFIXES = (".yaml", ".yml")


def read_spec(path: Path) -> dict:
    """A job spec file: YAML by its suffix (.yaml/.yml), JSON otherwise; a mapping."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise CliError(f"{path}: file not found") from None
    if path.suffix.lower() in YAML_SUFFIXES:
        import yaml

        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise CliError(f"{path}: not valid YAML ({err})") from None
    else:
        try:
            config = json.loads(text)
        except json.JSONDecodeError as err:
            raise CliError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(config, dict):
        kind = "YAML mapping" if path.suffix.lower() in YAML_SUFFIXES else "JSON object"
        raise CliError(f"{path}: expected a {kind}")
    return config


# -- commands
def cmd_submit(args) -> int:
    config = read_spec(Path(args.config))
    # A job envelope (as the worker writes to job.json) carries its kind and config.
    kind = args.kind
    if "kind" in config and "config" in config:
        kind, config = args.kind or config["kind"], config["config"]
    with _client(args) as client:
        job = client.submit(kind or "train", config, gpus=args.gpus, name=args.name,
                            priority=args.priority)
        _out(f"submitted job {job['id']} ({job['kind']}, {job['state']}, queue {job['queue']})")
        code = EXIT_OK
        if args.follow:
            code = _watch(client, job["id"], args.poll)
    _out(str(job["id"]))  # the last line: JOB=$(sam3v submit f.json | tail -1)
    return code


def cmd_jobs(args) -> int:
    import itertools

    with _client(args) as client:
        jobs = list(itertools.islice(client.iter_jobs(args.state, args.kind, args.name,
                                                      page_size=min(args.limit, 200)), args.limit))
    if args.json:
        _out(json.dumps(jobs, indent=2))
        return EXIT_OK
    table = [("ID", "STATE", "KIND", "NAME", "OWNER", "STEP", "ETA", "CREATED")]
    for j in jobs:
        p = j.get("progress") or {}
        table.append((str(j["id"]), j["state"], j["kind"], j.get("name") or "-", j.get("owner", "-"),
                      f"{p.get('step', 0)}/{p.get('max_steps') or '?'}", _eta(p.get("eta_seconds")),
                      j["created_at"][:19]))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        _out("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return EXIT_OK


def cmd_show(args) -> int:
    with _client(args) as client:
        _print(client.job(args.job_id))
    return EXIT_OK


def cmd_wait(args) -> int:
    with _client(args) as client:
        job = client.wait(args.job_id, timeout_s=args.timeout, poll_s=args.poll)
    _print(job)
    return EXIT_OK if job["state"] == "succeeded" else EXIT_FAILED


WATCHED_METRICS = ("loss", "lr")  # shown on watch's step lines when the job logs them


def _event_line(job_id: int, event) -> str | None:
    data = event.data if isinstance(event.data, dict) else {}
    if event.event == "state":
        line = f"job {job_id} {data.get('state')} (attempt {data.get('attempt')})"
        if data.get("reason"):
            line += f": {data['reason_kind'] + ': ' if data.get('reason_kind') else ''}{data['reason']}"
        return line
    if event.event == "checkpoint":
        return f"checkpoint {data.get('name')} (step {data.get('step')}, {data.get('size_bytes')} bytes)"
    return None


def _metric_values(client, job_id: int, data: dict) -> tuple[int, str] | None:
    """(step, "loss 0.51  lr 0.002") for a metrics event: the event names the series, the
    values come from GET /jobs/{id}/metrics. None when it names none of WATCHED_METRICS."""
    step, names = data.get("step"), [n for n in WATCHED_METRICS if n in data.get("names", [])]
    if step is None or not names:
        return None
    try:
        series = client.metrics(job_id, names=names, since_step=step)["series"]
    except Exception:  # only a nicety: the stream goes on without it
        return None
    values = []
    for s in sorted(series, key=lambda s: WATCHED_METRICS.index(s["name"])):
        point = next((p for p in s["points"] if p["step"] == step), None)
        if point is not None and point["value"] is not None:
            values.append(f"{s['name']} {point['value']:.4g}")
    return (step, "  ".join(values)) if values else None


def _follow_events(client, job_id: int) -> None:
    """One line per state change, per step (with loss, lr and ETA) and per checkpoint."""
    metrics: tuple[int, str] | None = None  # the newest metric values not printed yet
    last_step = None
    for event in client.events(job_id):
        data = event.data if isinstance(event.data, dict) else {}
        if event.event == "metrics":
            metrics = _metric_values(client, job_id, data)
            if metrics is not None and last_step is not None and metrics[0] <= last_step:
                _out(f"step {metrics[0]}  {metrics[1]}")  # its step line came first
                metrics = None
        elif event.event == "progress":
            last_step = data.get("step")
            line = f"step {last_step}/{data.get('max_steps') or '?'}"
            if metrics is not None and metrics[0] == last_step:
                line += f"  {metrics[1]}"
                metrics = None
            _out(f"{line}  eta {_eta(data.get('eta_seconds'))}")
        else:
            line = _event_line(job_id, event)
            if line:
                _out(line)


def _watch(client, job_id: int, poll_s: float = 2.0) -> int:
    """Print the job's events until it has finished; fall back to polling if the stream
    fails. EXIT_OK if it succeeded, EXIT_FAILED otherwise."""
    import httpx

    from client.api_client import FINISHED_STATES, ApiError

    job = client.job(job_id)  # a missing job is a 404 here, not a silent stream
    _out(_job_line(job))
    try:
        _follow_events(client, job_id)
    except (httpx.HTTPError, ApiError) as err:
        if isinstance(err, ApiError) and err.status_code == 404:
            raise
        print(f"sam3v watch: the event stream failed ({err}); polling instead", file=sys.stderr)
        last = None
        while True:
            job = client.job(job_id)
            line = _job_line(job)
            if line != last:
                _out(line)
                last = line
            if job["state"] in FINISHED_STATES:
                break
            time.sleep(poll_s)
    job = client.job(job_id)
    _out(_job_line(job))
    return EXIT_OK if job["state"] == "succeeded" else EXIT_FAILED


def cmd_watch(args) -> int:
    with _client(args) as client:
        return _watch(client, args.job_id, args.poll)


def cmd_logs(args) -> int:
    from client.api_client import FINISHED_STATES

    with _client(args) as client:
        attempt = args.attempt
        offset = 0
        if attempt is None:  # a job not started yet has no log (attempt 0): wait for one with -f
            while (job := client.job(args.job_id))["attempt"] == 0:
                if not args.follow or job["state"] in FINISHED_STATES:
                    print(f"sam3v logs: job {args.job_id} is {job['state']} and has not started: "
                          "no log yet", file=sys.stderr)
                    return EXIT_OK
                time.sleep(args.poll)
        while True:
            chunk = client.logs(args.job_id, attempt=attempt, offset=offset)
            if chunk["text"]:
                try:
                    sys.stdout.write(chunk["text"])
                    sys.stdout.flush()
                except BrokenPipeError:
                    sys.stdout = None
                    return EXIT_OK
            offset = chunk["next_offset"]
            attempt = chunk["attempt"]
            if not chunk["eof"]:
                continue
            if not args.follow:
                return EXIT_OK
            job = client.job(args.job_id)
            if args.attempt is None and job["attempt"] > attempt:
                attempt, offset = job["attempt"], 0  # a new attempt: its own log
                continue
            if job["state"] in FINISHED_STATES:
                last = client.logs(args.job_id, attempt=attempt, offset=offset)
                if last["text"]:
                    sys.stdout.write(last["text"])
                return EXIT_OK
            time.sleep(args.poll)


def cmd_cancel(args) -> int:
    with _client(args) as client:
        _out(_job_line(client.cancel(args.job_id)))
    return EXIT_OK


def cmd_retry(args) -> int:
    with _client(args) as client:
        _out(_job_line(client.retry(args.job_id)))
    return EXIT_OK


def cmd_delete(args) -> int:
    with _client(args) as client:
        client.delete(args.job_id)
    _out(f"deleted job {args.job_id}")
    return EXIT_OK


def cmd_download(args) -> int:
    from client.api_client import sha256_of

    with _client(args) as client:
        try:
            path = client.download_checkpoint(args.job_id, args.checkpoint, args.output)
        except FileNotFoundError as err:
            raise CliError(str(err)) from None
    _out(f"{path}  sha256 {sha256_of(path)}")
    return EXIT_OK


def cmd_predictions(args) -> int:
    with _client(args) as client:
        _print(client.predictions(args.job_id, args.offset, args.limit))
    return EXIT_OK


def cmd_overlays(args) -> int:
    out = Path(args.output)
    if not out.is_dir():
        raise CliError(f"{out}: not a directory")
    with _client(args) as client:
        for overlay in client.overlays(args.job_id):
            path = client.download_overlay(args.job_id, overlay["name"], out)
            _out(f"{path}  {path.stat().st_size} bytes")
    return EXIT_OK


COMMANDS = {"submit": cmd_submit, "jobs": cmd_jobs, "show": cmd_show, "status": cmd_show,
            "wait": cmd_wait, "watch": cmd_watch, "logs": cmd_logs, "cancel": cmd_cancel,
            "retry": cmd_retry, "delete": cmd_delete, "download": cmd_download,
            "predictions": cmd_predictions, "overlays": cmd_overlays}


# -- parser
def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="API address, e.g. http://127.0.0.1:8000 (default: $SAM3V_URL or DIR/url)")
    parser.add_argument("--token", help="API token (default: $SAM3V_TOKEN or DIR/token)")
    parser.add_argument("--home", help=f"local stack home to read url/token from (default {DEFAULT_HOME})")


def build_parser(server_commands=None) -> argparse.ArgumentParser:
    """The `sam3v` parser with the HTTP commands. `server_commands(subparsers)`, if given,
    adds more commands ahead of them (deploy/cli.py adds `up` and `tokens`)."""
    parser = argparse.ArgumentParser(prog="sam3v", description="SAM3 video fine-tuning service",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    if server_commands is not None:
        server_commands(sub)

    def command(name: str, text: str, job_id: bool = True) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=text, description=text, epilog=EPILOG,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        if job_id:
            cmd.add_argument("job_id", type=int, metavar="ID")
        _add_connection_options(cmd)
        return cmd

    submit = command("submit", "submit a job config (JSON or YAML); prints the new job id as the last line",
                     job_id=False)
    submit.add_argument("config", help="a TrainConfig/EvalConfig/PredictConfig JSON or YAML (.yaml/.yml) file, e.g. "
                                       "examples/train_tiny.json")
    submit.add_argument("--kind", choices=["train", "eval", "predict"],
                        help="default: train (or the envelope's kind)")
    submit.add_argument("--gpus", type=int, help="override config.gpus (0 = CPU)")
    submit.add_argument("--name", help="a free label for the job")
    submit.add_argument("--priority", type=int, help="0..9, higher runs first (default 0)")
    submit.add_argument("--follow", action="store_true", help="then watch it (exit code as `watch`)")
    submit.add_argument("--poll", type=float, default=2.0, help=argparse.SUPPRESS)

    jobs = command("jobs", "list jobs, newest first", job_id=False)
    jobs.add_argument("--state", choices=["queued", "running", "cancelling", "succeeded", "failed",
                                          "cancelled"])
    jobs.add_argument("--kind", choices=["train", "eval", "predict"])
    jobs.add_argument("--name", help="only jobs with this name")
    jobs.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    jobs.add_argument("--json", action="store_true", help="print the jobs as JSON")

    command("show", "print a job (JSON)")
    command("status", "print a job (JSON); same as show")
    watch = command("watch", "follow a job's events (state, step, loss, ETA); exit 0 if it "
                             "succeeded, 1 if it failed or was cancelled")
    watch.add_argument("--poll", type=float, default=2.0, help="seconds between polls if the stream fails")
    wait = command("wait", "wait until a job finishes (polling); exit 0 if it succeeded")
    wait.add_argument("--timeout", type=float, help="give up after this many seconds")
    wait.add_argument("--poll", type=float, default=2.0, help="seconds between polls")
    logs = command("logs", "print a job's log (the current attempt's unless --attempt)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the job finishes")
    logs.add_argument("--attempt", type=int, help="this attempt's log")
    logs.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)
    command("cancel", "cancel a queued or running job")
    command("retry", "queue a failed or cancelled job again (it resumes from its latest checkpoint)")
    command("delete", "delete a finished job and its run directory")
    download = command("download", "download a checkpoint; resumes a partial file, verifies its sha256")
    download.add_argument("--checkpoint", default="latest", metavar="NAME",
                          help="a checkpoint name (see `show`), or latest (default)")
    download.add_argument("-o", "--output", metavar="PATH",
                          help="file or directory to write (default: the checkpoint's name here)")
    predictions = command("predictions", "print a predict job's masklets, one page (JSON)")
    predictions.add_argument("--offset", type=int, default=0, help="first masklet (default 0)")
    predictions.add_argument("--limit", type=int, default=50, help="masklets per page (default 50)")
    overlays = command("overlays", "download a predict job's overlays (the .mp4 and the .png sheet)")
    overlays.add_argument("-o", "--output", default=".", metavar="DIR",
                          help="directory to write them to (default: here)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run a parsed HTTP command; its exit code (see EPILOG). Errors are printed on stderr,
    never as a traceback."""
    import httpx

    from client.api_client import ApiError, ChecksumError

    prefix = f"sam3v {args.command}"
    try:
        return COMMANDS[args.command](args)
    except ApiError as err:
        print(f"{prefix}: {err}", file=sys.stderr)
        for problem in err.errors:
            if problem != err.detail:
                print(f"  {problem}", file=sys.stderr)
        return EXIT_REFUSED if 400 <= err.status_code < 500 else EXIT_SERVER
    except CliError as err:
        print(f"{prefix}: {err}", file=sys.stderr)
        return err.code
    except TimeoutError as err:
        print(f"{prefix}: {err}", file=sys.stderr)
        return EXIT_FAILED
    except ChecksumError as err:
        print(f"{prefix}: {err}", file=sys.stderr)
        return EXIT_SERVER
    except httpx.HTTPError as err:
        where = f" at {args.url or _connection(args)[0]}" if isinstance(err, httpx.TransportError) else ""
        print(f"{prefix}: cannot reach the API{where}: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_SERVER
    except OSError as err:  # e.g. download -o into a directory that does not exist
        print(f"{prefix}: {err}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
