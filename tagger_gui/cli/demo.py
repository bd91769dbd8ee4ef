"""``tagger demo``: build a small demo library of free game soundtracks from Debian."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEMO_EPILOG = """\
The music comes from Debian's packages of free games' soundtracks, fetched
with `apt-get download` (nothing is installed, no root needed). The plan is
printed first: packages, versions, sizes, licences and the destination.
Running it again resumes where it stopped.

examples:
  tagger demo --dry-run            only say what would be downloaded, and where
  tagger demo                      build ~/Music/tagger-demo (asks first)
  tagger demo ~/demo --yes --packages frozen-bubble-data
"""


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``demo`` to the ``tagger`` parser's subcommands."""
    from tagger_gui.core.demo import DEMO_PACKAGES, LAYOUTS, default_demo_dir

    demo = sub.add_parser(
        "demo",
        help="build a small demo library from free game soundtracks (Debian packages)",
        description="Build a demo library of freely licensed music: the soundtracks of "
        "a few free games, as Debian packages them, as whole tagged tracks.",
        epilog=DEMO_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "dest",
        nargs="?",
        type=Path,
        metavar="DEST",
        help=f"the library's folder (default {default_demo_dir()})",
    )
    demo.add_argument("--yes", "-y", action="store_true", help="do not ask before downloading")
    demo.add_argument(
        "--dry-run", action="store_true", help="print what would be downloaded, and stop"
    )
    demo.add_argument(
        "--packages",
        nargs="+",
        metavar="PKG",
        default=list(DEMO_PACKAGES),
        choices=sorted(LAYOUTS),
        help=f"Debian packages to take music from (default: {' '.join(DEMO_PACKAGES)}; "
        f"known: {', '.join(sorted(LAYOUTS))})",
    )
    demo.add_argument(
        "--downloads",
        type=Path,
        metavar="DIR",
        help="where the .deb files are looked for and downloaded to (default DEST/.downloads)",
    )
    demo.add_argument("--keep-downloads", action="store_true", help="keep the .deb files after use")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=cmd_demo)


def _confirm(question: str) -> bool | None:
    """The user's answer, or None when there is no terminal to ask on."""
    if not sys.stdin or not sys.stdin.isatty():
        return None
    try:
        return input(question).strip().lower() in ("y", "yes")
    except EOFError:
        return None


def cmd_demo(args: argparse.Namespace) -> int:
    from tagger_gui.core.demo import build_demo_task, describe_demo, megabytes

    plan = describe_demo(args.packages, args.dest, downloads=args.downloads)
    print(plan.text())
    if args.dry_run:
        return 0
    if plan.is_built:
        print(f"\nThe demo library is already complete in {plan.dest}.")
    elif not args.yes:
        answer = _confirm(
            f"\nDownload {megabytes(plan.download_bytes)} and build the library? [y/N] "
        )
        if answer is None:
            print("tagger: no terminal to ask on; add --yes to go ahead", file=sys.stderr)
            return 2
        if not answer:
            print("Nothing downloaded.")
            return 1
    task = build_demo_task(
        plan.dest,
        packages=args.packages,
        downloads=args.downloads,
        keep_downloads=args.keep_downloads,
    )
    try:
        report = _drive(task, quiet=args.quiet)
    except KeyboardInterrupt:
        print(
            "\nStopped. Run the same command again to continue where it stopped.",
            file=sys.stderr,
        )
        return 130
    minutes, seconds = divmod(report.seconds, 60)
    print(
        f"\n{report.tracks} tracks ({megabytes(report.library_bytes)}) in {report.dest}, "
        f"{megabytes(report.downloaded_bytes)} downloaded in {int(minutes)} min {seconds:.0f} s."
    )
    for package, n in report.packages.items():
        print(f"  {package}: {n} tracks")
    print(f"See {report.dest / 'README.txt'} for where the music comes from.")
    print(f'\nNext:  tagger-gui "{report.dest}"')
    return 0


def _drive(task, *, quiet: bool):
    """Run the build with one progress bar over downloading and unpacking."""
    from tqdm import tqdm

    # the work is counted in bytes of downloading and unpacking together, so the
    # bar shows a percentage, not a byte count that would not match the plan's
    bar_format = "{l_bar}{bar}| {elapsed}<{remaining}{postfix}"
    with tqdm(disable=quiet, dynamic_ncols=True, bar_format=bar_format) as bar:
        try:
            while True:
                p = next(task)
                bar.total = p.total
                bar.update(p.done - bar.n)
                bar.set_postfix_str(p.what, refresh=False)
        except StopIteration as stop:
            return stop.value
        finally:
            task.close()
