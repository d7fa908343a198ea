"""Dataset command line.

    python -m sam3_video.data synthetic OUT_DIR [--videos N] [--frames T] [--seed S]
    python -m sam3_video.data validate DIR

`validate` exits 0 when the dataset is valid, 1 with one problem per line otherwise.
"""
from __future__ import annotations

import argparse
import sys

from .native import load_native
from .synthetic import write_synthetic
from .validate import validate_dataset

EXIT_INVALID = 1


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sam3_video.data", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    synth = commands.add_parser("synthetic", help="write a synthetic dataset of moving shapes")
    synth.add_argument("out_dir")
    synth.add_argument("--videos", type=_positive, default=8)
    synth.add_argument("--frames", type=_positive, default=8)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--height", type=int, default=96)
    synth.add_argument("--width", type=int, default=128)
    check = commands.add_parser("validate", help="check a dataset; list every problem")
    check.add_argument("dir")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "synthetic":
        try:
            path = write_synthetic(args.out_dir, videos=args.videos, frames=args.frames,
                                   seed=args.seed, height=args.height, width=args.width)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return EXIT_INVALID
        print(path)
        return 0
    problems = validate_dataset(args.dir)
    if problems:
        for problem in problems:
            print(problem)
        print(f"{len(problems)} problem(s) in {args.dir}", file=sys.stderr)
        return EXIT_INVALID
    native = load_native(args.dir)
    frames = sum(v.length for v in native.videos.values())
    print(f"ok: {len(native.videos)} videos, {frames} frames, {len(native.tracks)} objects, "
          f"{len(native.categories)} noun phrases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
