"""Dataset command line.

    python -m sam3_video.data synthetic OUT_DIR [--videos N] [--frames T] [--seed S]
    python -m sam3_video.data validate DIR
    python -m sam3_video.data import davis SRC OUT [--phrase TEXT] [--phrases MAP.json]
                                                   [--resolution 480p] [--split train|val]
    python -m sam3_video.data import ytvis ANNOTATIONS.json FRAMES_DIR OUT
    python -m sam3_video.data import sav SRC OUT [--phrase TEXT]
        (every import also takes --drop-invalid and --fix-boxes)

`validate` exits 0 when the dataset is valid, 1 with one problem per line otherwise.
`import` writes a native dataset to OUT (new or empty) and validates it: exit 0 and a
one-line summary, or exit 1 with one problem per line (the source file and record).
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
    _import_parser(commands)
    return parser


def _import_parser(commands) -> None:
    imp = commands.add_parser("import", help="import a public dataset into the native format")
    formats = imp.add_subparsers(dest="format", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--drop-invalid", action="store_true",
                        help="leave bad source records out (each is reported) instead of failing")
    common.add_argument("--fix-boxes", action="store_true",
                        help="compute every box from its mask, ignoring the source's boxes")
    davis = formats.add_parser("davis", parents=[common],
                               help="DAVIS 2017, MOSE, YouTube-VOS (JPEG folders + palette PNGs)")
    davis.add_argument("src")
    davis.add_argument("out")
    davis.add_argument("--phrase", default="object", help="noun phrase of every object")
    davis.add_argument("--phrases", metavar="MAP.json",
                       help='{"<video>/<object id>" or "<object id>": phrase}, or YouTube-VOS\'s '
                            'meta.json; objects not in it get --phrase')
    davis.add_argument("--resolution", default="480p", help="DAVIS layout's resolution folder")
    davis.add_argument("--split", help="only the videos in ImageSets/2017/<split>.txt")
    ytvis = formats.add_parser("ytvis", parents=[common],
                               help="YouTube-VIS, OVIS, LV-VIS (one JSON + frames folder)")
    ytvis.add_argument("annotations")
    ytvis.add_argument("frames_dir")
    ytvis.add_argument("out")
    sav = formats.add_parser("sav", parents=[common], help="SA-V (.mp4 + _manual.json)")
    sav.add_argument("src")
    sav.add_argument("out")
    sav.add_argument("--phrase", default="object", help="noun phrase of every object")


def _import(args) -> int:
    from .importers import import_dataset   # PyAV and the importers: only for this command
    if args.format == "davis":
        sources = (args.src,)
        options = dict(phrase=args.phrase, phrases=args.phrases, resolution=args.resolution,
                       split=args.split)
    elif args.format == "ytvis":
        sources, options = (args.annotations, args.frames_dir), {}
    else:
        sources, options = (args.src,), dict(phrase=args.phrase)
    try:
        result = import_dataset(args.format, args.out, *sources, drop_invalid=args.drop_invalid,
                                fix_boxes=args.fix_boxes, **options)
    except FileExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INVALID
    for problem in result.skipped:
        print(f"skipped: {problem}")
    if not result.ok:
        for problem in result.problems:
            print(problem)
        hint = " (--drop-invalid leaves bad records out)" if result.droppable else ""
        print(f"{len(result.problems)} problem(s); import into {args.out} failed{hint}",
              file=sys.stderr)
        return EXIT_INVALID
    print(result.summary_line())
    return 0


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
    if args.command == "import":
        return _import(args)
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
