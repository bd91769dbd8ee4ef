"""The ``tagger`` command line: the root parser and ``main``."""

from __future__ import annotations

import argparse
import logging
import sys

from tagger_gui import __version__

DESCRIPTION = """\
Tag a music library with your own tags, from a handful of examples.

tagger listens to every track once with pre-trained music models and keeps
what they hear (embeddings) in a cache next to your music. From a few tracks
you mark as examples of a tag, it then finds the others.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tagger",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tagger {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="print debugging details")
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="check this install (models, test tone, worker process, window, audio) and exit",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    # Each part of the app adds its commands from its own module.
    from tagger_gui.cli import demo, embed, fewshot, project

    embed.add_commands(sub)
    project.add_commands(sub)
    fewshot.add_commands(sub)
    demo.add_commands(sub)
    return parser


def _window_check():
    """The self-test's main-window check: the Qt layer's, or a failure saying why there is none."""
    from tagger_gui.platform_check import GUI_EXTRA_HINT, pyside_dir

    if pyside_dir() is not None:
        from tagger_gui.qt.selftest_window import open_and_close_main_window

        return open_and_close_main_window

    def no_gui() -> str:
        from tagger_gui.selftest import CheckFailed

        raise CheckFailed(GUI_EXTRA_HINT)

    return no_gui


def main(argv: list[str] | None = None) -> int:
    from tagger_gui.core.errors import TaggerError

    parser = build_parser()
    args = parser.parse_args(argv)
    console = logging.StreamHandler()
    # The console shows errors only (per-file problems are in the summary and
    # embed.log), whatever level our file log is at.
    console.setLevel(logging.DEBUG if args.verbose else logging.ERROR)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", handlers=[console])
    if args.self_test:
        from tagger_gui.selftest import run_self_test

        return run_self_test(window_check=_window_check())
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except TaggerError as exc:
        print(f"tagger: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
