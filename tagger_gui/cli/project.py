"""``tagger project|label|undo|redo|tag|export|import|writeback``: the tagging project."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tagger_gui.cli.progress import drive
from tagger_gui.core.errors import ProjectError

PROJECT_HELP = (
    "the project: its folder, or a music folder whose project is in .tagger/ (default: .)"
)

PROJECT_EPILOG = """\
examples:
  tagger project init ~/Music                  project in ~/Music/.tagger/, then a scan
  tagger project init /mnt/archive --project ~/archive-tags   (read-only music)
  tagger project status ~/Music
  tagger tag add ~/Music bebop --parent jazz
  tagger label ~/Music jazz "Album/01 So What.flac" ~/Music/other.mp3
  tagger label ~/Music jazz --negative - < not-jazz.txt     (paths from stdin)
  tagger undo ~/Music

A project keeps your tags and labels in project.sqlite. Every label is saved
the moment it is given; `tagger undo` takes back the last action (a bulk
label counts as one), even after a restart.
"""


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add the project commands to the ``tagger`` parser's subcommands."""
    raw = argparse.RawDescriptionHelpFormatter

    project = sub.add_parser(
        "project",
        help="create a tagging project, rescan its music folder, show its state",
        description="A project holds your tags and labels for one music folder.",
        epilog=PROJECT_EPILOG,
        formatter_class=raw,
    )
    psub = project.add_subparsers(dest="project_command", metavar="ACTION", required=True)

    init = psub.add_parser(
        "init",
        help="create a project for a music folder and scan it",
        description="Create a project for MUSIC_DIR (in MUSIC_DIR/.tagger/ unless --project "
        "says otherwise) and list its audio files.",
    )
    init.add_argument("music_dir", type=Path, metavar="MUSIC_DIR", help="your music folder")
    init.add_argument(
        "--project",
        type=Path,
        metavar="DIR",
        help="keep the project in DIR instead of MUSIC_DIR/.tagger/",
    )
    init.add_argument(
        "--cache",
        type=Path,
        metavar="FILE",
        help="the embedding cache to use (default: where `tagger embed MUSIC_DIR` puts it)",
    )
    init.add_argument("--no-scan", action="store_true", help="do not scan the folder now")
    init.add_argument("--quiet", action="store_true", help="no progress bar")
    init.set_defaults(func=cmd_project_init)

    sync = psub.add_parser(
        "sync",
        help="rescan the music folder (new, changed, moved and missing files)",
        description="Rescan the music folder: add new files, re-read changed ones, follow "
        "renamed or moved files (recognised by size and content, so their labels follow "
        "them) and mark missing ones (their labels are kept).",
    )
    sync.add_argument("project", nargs="?", default=".", metavar="PROJECT", help=PROJECT_HELP)
    sync.add_argument("--quiet", action="store_true", help="no progress bar")
    sync.set_defaults(func=cmd_project_sync)

    status = psub.add_parser(
        "status",
        help="tracks, tags with their label counts, missing files",
        description="Show what a project holds (read-only: works while the app is open).",
    )
    status.add_argument("project", nargs="?", default=".", metavar="PROJECT", help=PROJECT_HELP)
    status.add_argument(
        "--missing",
        type=int,
        default=20,
        metavar="N",
        help="list at most N missing files (default 20)",
    )
    status.set_defaults(func=cmd_project_status)

    label = sub.add_parser(
        "label",
        help="label tracks for a tag (positive by default)",
        description="Label tracks for TAG, all in one undoable step. Paths are relative to "
        "the music folder, or absolute, or '-' to read paths from stdin (one per line).",
    )
    label.add_argument("project", metavar="PROJECT", help=PROJECT_HELP)
    label.add_argument("tag", metavar="TAG")
    label.add_argument("paths", nargs="+", metavar="PATH")
    value = label.add_mutually_exclusive_group()
    value.add_argument("--negative", action="store_true", help="the tracks are not TAG")
    value.add_argument("--skip", action="store_true", help="undecided: skip these tracks")
    value.add_argument("--remove", action="store_true", help="remove their labels for TAG")
    label.add_argument("--create-tag", action="store_true", help="create TAG if it is new")
    label.set_defaults(func=cmd_label)

    undo = sub.add_parser("undo", help="undo the last labelling or tag action")
    undo.add_argument("project", nargs="?", default=".", metavar="PROJECT", help=PROJECT_HELP)
    undo.set_defaults(func=cmd_undo)
    redo = sub.add_parser("redo", help="redo the last undone action")
    redo.add_argument("project", nargs="?", default=".", metavar="PROJECT", help=PROJECT_HELP)
    redo.set_defaults(func=cmd_redo)

    tag = sub.add_parser("tag", help="add, rename, edit, delete or list tags")
    tsub = tag.add_subparsers(dest="tag_command", metavar="ACTION", required=True)
    add = tsub.add_parser("add", help="create a tag")
    add.add_argument("project", metavar="PROJECT", help=PROJECT_HELP)
    add.add_argument("name", metavar="NAME")
    add.add_argument("--parent", metavar="TAG", help="a positive for NAME counts for TAG too")
    add.add_argument("--description", default="", metavar="TEXT")
    add.add_argument("--colour", "--color", metavar="#RRGGBB")
    add.set_defaults(func=cmd_tag_add)
    rename = tsub.add_parser("rename", help="rename a tag (labels stay)")
    rename.add_argument("project", metavar="PROJECT", help=PROJECT_HELP)
    rename.add_argument("name", metavar="NAME")
    rename.add_argument("new_name", metavar="NEW_NAME")
    rename.set_defaults(func=cmd_tag_rename)
    edit = tsub.add_parser("edit", help="change a tag's parent, description or colour")
    edit.add_argument("project", metavar="PROJECT", help=PROJECT_HELP)
    edit.add_argument("name", metavar="NAME")
    parent = edit.add_mutually_exclusive_group()
    parent.add_argument("--parent", metavar="TAG")
    parent.add_argument("--top-level", action="store_true", help="remove its parent")
    edit.add_argument("--description", metavar="TEXT")
    edit.add_argument("--colour", "--color", metavar="#RRGGBB")
    edit.set_defaults(func=cmd_tag_edit)
    delete = tsub.add_parser(
        "delete", help="delete a tag (undoable; its children move up to its parent)"
    )
    delete.add_argument("project", metavar="PROJECT", help=PROJECT_HELP)
    delete.add_argument("name", metavar="NAME")
    delete.set_defaults(func=cmd_tag_delete)
    lister = tsub.add_parser("list", help="the tags as a tree, with label counts")
    lister.add_argument("project", nargs="?", default=".", metavar="PROJECT", help=PROJECT_HELP)
    lister.set_defaults(func=cmd_tag_list)

    export = sub.add_parser(
        "export",
        help="write the labels to a CSV file (long or wide layout)",
        description="Write the project's labels to a CSV file (UTF-8, RFC 4180) with its "
        "provenance in '# key: value' lines at the top and in FILE.json. Long layout: one "
        "row per track and tag (path, tag, decision, source, score, predicted, threshold, "
        "feature, probe_version, time). Wide layout: one row per track, one column per "
        "tag (1 positive, 0 negative, empty otherwise). The score and probe version are "
        "filled for model proposals you accepted.",
        formatter_class=raw,
    )
    export.add_argument("project", metavar="PROJECT", help=PROJECT_HELP)
    export.add_argument("-o", "--out", type=Path, required=True, metavar="FILE")
    export.add_argument(
        "--format", choices=["long", "wide"], default="long", help="the layout (default long)"
    )
    export.add_argument(
        "--tag", action="append", metavar="TAG", help="only this tag (repeat for several)"
    )
    export.add_argument(
        "--hierarchy",
        action="store_true",
        help="apply the tag hierarchy (a bebop positive is also written as a jazz positive)",
    )
    export.add_argument(
        "--predictions",
        action="store_true",
        help="fit each tag's probe and add every embedded track's score and prediction "
        "(long: one row per track and tag; wide: 1 where predicted)",
    )
    export.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        metavar="P",
        help="probability above which a track is predicted to have the tag (default 0.5)",
    )
    export.add_argument(
        "--features", default=None, metavar="SPEC", help="feature choice of the probes"
    )
    export.set_defaults(func=cmd_export)

    imp = sub.add_parser(
        "import",
        help="import labels from a CSV file (all or nothing; one undo step)",
        description="Import labels from FILE: 'path,tag[,value]' rows (value positive/"
        "negative/skip, 1/0, yes/no...; positive if absent) or the wide layout (one column "
        "per tag). Paths may be absolute or relative to the music folder, with / or \\. "
        "Tags that do not exist are created. The import is one undoable step, and nothing "
        "is imported if any row is wrong or (without --allow-unmatched) matches no file.",
    )
    imp.add_argument("project", metavar="PROJECT", help=PROJECT_HELP)
    imp.add_argument("file", type=Path, metavar="FILE")
    imp.add_argument("--dry-run", action="store_true", help="check and report, import nothing")
    imp.add_argument(
        "--allow-unmatched",
        action="store_true",
        help="import the rows that match even if some match no file of the library",
    )
    imp.set_defaults(func=cmd_import)

    wb = sub.add_parser(
        "writeback",
        help="write the tags into the audio files' own metadata (preview with --dry-run)",
        description="Write each track's positive tags into a field of its own tags "
        "(ID3 TXXX, Vorbis comment, MP4 freeform atom). Only that field changes, never the "
        "audio. Files changed since the last `tagger project sync`, and read-only files, "
        "are skipped and listed. Every write-back keeps a journal; --undo puts the old "
        "values back.",
    )
    wb.add_argument("project", metavar="PROJECT", help=PROJECT_HELP)
    wb.add_argument("--dry-run", action="store_true", help="show every change, write nothing")
    wb.add_argument(
        "--field", default=None, metavar="NAME", help="the field name (default TAGGER_TAGS)"
    )
    wb.add_argument("--id3v23", action="store_true", help="save MP3/WAV/AIFF tags as ID3v2.3")
    wb.add_argument(
        "--tag", action="append", metavar="TAG", help="only this tag (repeat for several)"
    )
    wb.add_argument(
        "--no-hierarchy",
        action="store_true",
        help="write only the tags given (not the parents of positive tags)",
    )
    wb.add_argument(
        "--labelled-only",
        action="store_true",
        help="only files with a positive tag (faster; does not clear tags taken back)",
    )
    wb.add_argument("--journal", type=Path, metavar="FILE", help="where to keep the journal")
    wb.add_argument(
        "--undo",
        nargs="?",
        const="latest",
        metavar="JOURNAL",
        help="undo a write-back (default: the latest one of this project)",
    )
    wb.add_argument(
        "--force", action="store_true", help="with --undo: also files whose field changed since"
    )
    wb.add_argument("--quiet", action="store_true", help="no progress bar")
    wb.set_defaults(func=cmd_writeback)


# --- helpers -------------------------------------------------------------------------------


def _open(path, *, readonly: bool = False):
    from tagger_gui.core.project import Project

    return Project.open(path, readonly=readonly)


def _fmt_time(t: float | None) -> str:
    if t is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def _run_sync(project, quiet: bool):
    try:
        return drive(
            project.sync_library(),
            desc="reading tags",
            quiet=quiet,
            unit="file",
            shown=lambda p: p.stage == "reading" and p.total > 0,
        )
    except KeyboardInterrupt:
        print(
            "\nStopped. What was read is saved; run `tagger project sync` to finish.",
            file=sys.stderr,
        )
        raise


def _print_sync(report) -> None:
    print(f"Found {report.found} audio files in {report.root} ({report.seconds:.1f} s):")
    print(f"  new        {report.added}")
    print(f"  changed    {report.updated}")
    print(f"  unchanged  {report.unchanged}")
    if report.moved:
        print(f"  moved or renamed (labels followed) {len(report.moved)}")
        for old, new in report.moved[:20]:
            print(f"    {old} -> {new}")
        if len(report.moved) > 20:
            print(f"    ... and {len(report.moved) - 20} more")
    if report.returned:
        print(f"  back after being missing {len(report.returned)}")
    if report.missing:
        print(f"  missing now (labels kept) {len(report.missing)}")
        for rel in report.missing[:20]:
            print(f"    {rel}")
        if len(report.missing) > 20:
            print(f"    ... and {len(report.missing) - 20} more")
    if report.problems:
        print(f"Problems ({len(report.problems)}; the files are still listed):")
        for rel, reason in report.problems[:50]:
            print(f"  {rel}: {reason}")


def _tag_tree(project) -> list[tuple[int, object]]:
    """``(depth, Tag)`` in tree order: each tag after its parent, siblings by name."""
    tags = project.tags()
    children: dict[int | None, list] = {}
    for t in tags:
        children.setdefault(t.parent_id, []).append(t)
    out: list[tuple[int, object]] = []

    def walk(parent_id, depth):
        for t in children.get(parent_id, []):
            out.append((depth, t))
            walk(t.id, depth + 1)

    walk(None, 0)
    return out


def _print_tags(project) -> None:
    tree = _tag_tree(project)
    if not tree:
        print("No tags yet (add one with `tagger tag add PROJECT NAME`).")
        return
    effective = project.label_counts(hierarchy=True)
    own = project.label_counts(hierarchy=False)
    width = max(2 * d + len(t.name) for d, t in tree)
    print(f"Tags ({len(tree)}):")
    for depth, t in tree:
        e, o = effective[t.id], own[t.id]
        counts = f"{e['positive']:5d} positive {e['negative']:5d} negative"
        if e["skip"]:
            counts += f" {e['skip']:5d} skipped"
        if (e["positive"], e["negative"]) != (o["positive"], o["negative"]):
            counts += f"   (given to this tag: {o['positive']} +, {o['negative']} -)"
        name = "  " * depth + t.name
        print(f"  {name:{width}s} {counts}")


# --- project -------------------------------------------------------------------------------


def cmd_project_init(args: argparse.Namespace) -> int:
    from tagger_gui.core.project import Project

    if not args.music_dir.is_dir():
        raise ProjectError(f"{args.music_dir}: not a folder")
    with Project.create(args.project, args.music_dir, cache_path=args.cache) as project:
        print(f"Created the project {project.project_dir}")
        print(f"  music folder    {project.library_root}")
        print(f"  embedding cache {project.cache_path}")
        if args.no_scan:
            return 0
        report = _run_sync(project, args.quiet)
    _print_sync(report)
    return 0


def cmd_project_sync(args: argparse.Namespace) -> int:
    with _open(args.project) as project:
        report = _run_sync(project, args.quiet)
    _print_sync(report)
    return 0


def cmd_project_status(args: argparse.Namespace) -> int:
    with _open(args.project, readonly=True) as project:
        tracks, missing = project.track_count()
        print(f"Project: {project.project_dir}  (schema version {project.schema_version})")
        print(f"Music:   {project.library_root}", end="")
        print("" if project.library_root.is_dir() else "  (NOT FOUND: unplugged or moved?)")
        cache = project.cache_path
        note = "" if cache.exists() else "  (not made yet: run `tagger embed MUSIC_DIR`)"
        print(f"Cache:   {cache}{note}")
        last = _fmt_time(project.last_sync)
        print(f"Tracks:  {tracks}, of which {missing} missing (last scan: {last})")
        _print_tags(project)
        if project.undo_text:
            print(f"Undo would take back: {project.undo_text}")
        if project.redo_text:
            print(f"Redo would bring back: {project.redo_text}")
        if missing:
            table = project.tracks()
            gone = [r for r, m in zip(table.relpath, table.missing, strict=True) if m]
            print(f"Missing files ({missing}; their labels are kept):")
            for rel in gone[: max(args.missing, 0)]:
                print(f"  {rel}")
            if len(gone) > args.missing:
                print(f"  ... and {len(gone) - args.missing} more (--missing N lists more)")
    return 0


# --- labels and undo -----------------------------------------------------------------------


def _read_paths(paths: list[str]) -> list[str]:
    out: list[str] = []
    for p in paths:
        if p == "-":
            out += [line.rstrip("\r\n") for line in sys.stdin if line.strip()]
        else:
            out.append(p)
    return out


def _library_path(project, path: str) -> str:
    """A path as the user typed it: an existing file (relative to the current
    folder) counts as that file; anything else is taken relative to the library."""
    p = Path(path)
    if not p.is_absolute() and p.exists():
        try:
            return project.relpath_of(p.absolute())
        except ProjectError:
            pass  # a file here, but outside the library: try it as a library path
    return path


def cmd_label(args: argparse.Namespace) -> int:
    paths = _read_paths(args.paths)
    if not paths:
        raise ProjectError("no paths given")
    with _open(args.project) as project:
        if not project.has_tag(args.tag):
            if not args.create_tag:
                raise ProjectError(
                    f"no tag named {args.tag!r} (use --create-tag, or `tagger tag add`)"
                )
            if args.remove:
                raise ProjectError(f"no tag named {args.tag!r}: nothing to remove")
            project.create_tag(args.tag)
            print(f"Created the tag {args.tag!r}")
        ids, unmatched = project.find_tracks(_library_path(project, p) for p in paths)
        if unmatched:
            shown = "\n  ".join(unmatched[:20])
            more = f"\n  ... and {len(unmatched) - 20} more" if len(unmatched) > 20 else ""
            raise ProjectError(
                f"{len(unmatched)} path(s) are no track of the project (nothing was "
                f"labelled):\n  {shown}{more}\n(new files? run `tagger project sync` first)"
            )
        if args.remove:
            result = project.clear_labels(args.tag, ids)
        else:
            value = "negative" if args.negative else "skip" if args.skip else "positive"
            result = project.set_labels(args.tag, ids, value)
    if result.action_id is None:
        print(f"Nothing changed ({len(set(ids))} track(s) already so).")
    else:
        print(f"Done: {result.description} ({result.changed} changed). `tagger undo` reverts it.")
    return 0


def cmd_undo(args: argparse.Namespace) -> int:
    with _open(args.project) as project:
        what = project.undo()
    print(f"Undone: {what}" if what else "Nothing to undo.")
    return 0 if what else 1


def cmd_redo(args: argparse.Namespace) -> int:
    with _open(args.project) as project:
        what = project.redo()
    print(f"Redone: {what}" if what else "Nothing to redo.")
    return 0 if what else 1


# --- tags ----------------------------------------------------------------------------------


def cmd_tag_add(args: argparse.Namespace) -> int:
    with _open(args.project) as project:
        tag = project.create_tag(
            args.name, parent=args.parent, description=args.description, colour=args.colour
        )
    print(f"Created the tag {tag.name!r}" + (f" under {args.parent!r}" if args.parent else ""))
    return 0


def cmd_tag_rename(args: argparse.Namespace) -> int:
    with _open(args.project) as project:
        old = project.tag(args.name).name
        tag = project.rename_tag(args.name, args.new_name)
    print(f"Renamed {old!r} to {tag.name!r}")
    return 0


def cmd_tag_edit(args: argparse.Namespace) -> int:
    changes = {}
    if args.parent is not None:
        changes["parent"] = args.parent
    if args.top_level:
        changes["parent"] = None
    if args.description is not None:
        changes["description"] = args.description
    if args.colour is not None:
        changes["colour"] = args.colour
    if not changes:
        raise ProjectError(
            "nothing to change: give --parent, --top-level, --description or --colour"
        )
    with _open(args.project) as project:
        before = project.undo_text
        project.edit_tag(args.name, **changes)
        after = project.undo_text
    print(f"Done: {after}" if after != before else "Nothing changed.")
    return 0


def cmd_tag_delete(args: argparse.Namespace) -> int:
    with _open(args.project) as project:
        result = project.delete_tag(args.name)
    print(f"Done: {result.description}. `tagger undo` brings it back.")
    return 0


def cmd_tag_list(args: argparse.Namespace) -> int:
    with _open(args.project, readonly=True) as project:
        _print_tags(project)
    return 0


# --- export, import, write-back --------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    from tagger_gui.core.tasks import run_task
    from tagger_gui.core.usecases.exporting import export_csv_task

    with _open(args.project, readonly=True) as project:
        task = export_csv_task(
            project,
            args.out,
            layout=args.format,
            tags=args.tag,
            hierarchy=args.hierarchy,
            predictions=args.predictions,
            threshold=args.threshold,
            features=args.features,
        )
        result = run_task(task)
    print(result.summary())
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from tagger_gui.core.project.csv_io import read_labels_csv

    with _open(args.project) as project:
        table = project.tracks()
        plan = read_labels_csv(args.file, library_root=project.library_root, relpaths=table.relpath)
        print(f"{args.file}: {plan.summary()}")
        if plan.unmatched_count:
            print(f"Rows that match no file of the library ({plan.unmatched_count}):")
            for line_no, path, reason in plan.unmatched[:20]:
                print(f"  line {line_no}: {path}: {reason}")
            if plan.unmatched_count > 20:
                print(f"  ... and {plan.unmatched_count - 20} more")
            if not args.allow_unmatched:
                raise ProjectError(
                    "nothing imported: some rows match no file (fix them, run `tagger project "
                    "sync` if the files are new, or import the rest with --allow-unmatched)"
                )
        if args.dry_run:
            print("Dry run: nothing imported.")
            return 0
        id_of = dict(zip(table.relpath, table.id.tolist(), strict=True))
        result = project.import_labels(
            ((id_of[rel], tag, value) for rel, tag, value, _line in plan.rows),
            description=f"import {args.file.name}",
        )
    if result.action_id is None:
        print("Nothing changed: the project already has these labels.")
        return 0
    created = f"; new tags: {', '.join(result.created_tags)}" if result.created_tags else ""
    print(f"Imported {result.changed} labels{created}. `tagger undo` takes the import back.")
    return 0


def _print_writeback_report(report) -> None:
    print(report.summary())
    for label, items in (("Skipped", report.skipped), ("Failed", report.failed)):
        if items:
            print(f"{label} ({len(items)}):")
            for rel, reason in items[:50]:
                print(f"  {rel}: {reason}")
            if len(items) > 50:
                print(f"  ... and {len(items) - 50} more")


def _print_cache_note(outcome) -> None:
    if outcome.cache_note:
        print(
            f"note: the embedding cache was not updated ({outcome.cache_note}); the next "
            "`tagger embed` analyses the written files again",
            file=sys.stderr,
        )


def cmd_writeback(args: argparse.Namespace) -> int:
    from tagger_gui.core.usecases import exporting

    # A write-back changes files the project tracks, so it records their new
    # size and time: it needs the project for writing (a dry run does not).
    readonly = args.dry_run and args.undo is None
    with _open(args.project, readonly=readonly) as project:
        if args.undo is not None:
            journal = None if args.undo == "latest" else Path(args.undo)
            task = exporting.undo_writeback_task(project, journal, force=args.force)
            outcome = drive(task, desc="restoring", quiet=args.quiet, unit="file")
            _print_cache_note(outcome)
            print(f"Undid the write-back of {outcome.journal_path}:")
            _print_writeback_report(outcome.report)
            return 0 if not outcome.report.failed else 1
        task = exporting.plan_writeback_task(
            project,
            field=args.field,
            id3_version=3 if args.id3v23 else 4,
            tags=args.tag,
            hierarchy=not args.no_hierarchy,
            labelled_only=args.labelled_only,
        )
        plan = drive(task, desc="reading tags", quiet=args.quiet, unit="file")
        print(plan.preview())
        if args.dry_run:
            print("Dry run: nothing written.")
            return 0
        if not plan.to_write:
            print("Nothing to write.")
            return 0
        # After Ctrl-C the files written so far are recorded from the journal
        # (exporting.apply_writeback_task), so they are not taken for changed music.
        task = exporting.apply_writeback_task(project, plan, journal=args.journal)
        outcome = drive(task, desc="writing tags", quiet=args.quiet, unit="file")
        _print_cache_note(outcome)
    report, journal = outcome.report, outcome.journal_path
    _print_writeback_report(report)
    print(f"Journal: {journal}  (undo with `tagger writeback PROJECT --undo {journal}`)")
    return 0 if not report.failed else 1
