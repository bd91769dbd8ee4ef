"""``tagger embed``, ``tagger backends`` and ``tagger embeddings``: analysing a library."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from tagger_gui import __version__

EMBED_EPILOG = """\
examples:
  tagger embed ~/Music                      analyse new and changed files
  tagger embed ~/Music --backend musicnn-msd --backend handcrafted
  tagger embed /mnt/archive --cache ~/archive-embeddings.h5   (read-only music)

Only new or changed files are analysed; run it again at any time. Ctrl-C
stops cleanly and keeps everything finished. Files that cannot be read are
listed at the end and in embed.log next to the cache.
"""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def add_commands(sub: argparse._SubParsersAction) -> None:
    """``tagger embed``, ``tagger backends``, ``tagger embeddings info|export``."""
    from tagger_gui.core.embeddings import DEFAULT_BACKEND, available_backends

    backends_help = "; ".join(f"{k}: {v}" for k, v in available_backends().items())
    embed = sub.add_parser(
        "embed",
        help="analyse a music folder (new and changed files only)",
        description="Analyse the audio files of MUSIC_DIR with pre-trained models and "
        "store the results in the embedding cache.",
        epilog=EMBED_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    embed.add_argument("music_dir", type=Path, metavar="MUSIC_DIR", help="your music folder")
    embed.add_argument(
        "--backend",
        action="append",
        metavar="NAME",
        help=f"model to use; repeat for several (default {DEFAULT_BACKEND}). {backends_help}",
    )
    embed.add_argument(
        "--cache",
        type=Path,
        metavar="FILE",
        help="embedding cache file (default MUSIC_DIR/.tagger/embeddings.h5, or a "
        "per-user cache folder when MUSIC_DIR is read-only)",
    )
    embed.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="decoding processes (default: cores - 1; 0 decodes in the main process)",
    )
    embed.add_argument(
        "--device", default="cpu", choices=["cpu", "cuda", "auto"], help="where models run"
    )
    embed.add_argument(
        "--max-excerpts",
        type=_positive_int,
        default=10,
        metavar="N",
        help="tracks longer than N x 3 s are analysed as N excerpts of 3 s spread over "
        "the track (default 10, so a 10-minute track costs the same as a 30-s one)",
    )
    embed.add_argument(
        "--whole", action="store_true", help="analyse every track from start to end (slower)"
    )
    embed.add_argument(
        "--prune", action="store_true", help="forget files that are no longer in the folder"
    )
    embed.add_argument(
        "--retry-failed",
        action="store_true",
        help="try again files that failed before (by default they are skipped until they change)",
    )
    embed.add_argument("--batch-patches", type=_positive_int, default=None, help=argparse.SUPPRESS)
    embed.add_argument("--quiet", action="store_true", help="no progress bar")
    embed.set_defaults(func=cmd_embed)

    lister = sub.add_parser("backends", help="list the available models")
    lister.set_defaults(func=cmd_backends)

    emb = sub.add_parser("embeddings", help="inspect or export the embedding cache")
    emb_sub = emb.add_subparsers(dest="embeddings_command", metavar="ACTION", required=True)
    info = emb_sub.add_parser("info", help="what the cache holds, and a consistency check")
    info.add_argument("cache", type=Path, metavar="CACHE_OR_MUSIC_DIR")
    info.set_defaults(func=cmd_embeddings_info)
    export = emb_sub.add_parser(
        "export",
        help="write clip-level vectors to .npz or .csv",
        description="Write one clip-level vector per track (the mean over its analysed "
        "excerpts) for the chosen outputs.",
    )
    export.add_argument("cache", type=Path, metavar="CACHE_OR_MUSIC_DIR")
    export.add_argument("-o", "--out", type=Path, required=True, metavar="FILE")
    export.add_argument("--format", choices=["npz", "csv"], help="default: from --out's suffix")
    export.add_argument("--backend", default=DEFAULT_BACKEND, metavar="NAME")
    export.add_argument(
        "--output",
        action="append",
        metavar="NAME",
        help="model output(s) to export, concatenated in order (default: all)",
    )
    export.set_defaults(func=cmd_embeddings_export)


def _resolve_cache(path: Path) -> Path:
    from tagger_gui.core.cache import default_cache_path

    if path.is_dir():
        return default_cache_path(path)
    return path


# --- embed -------------------------------------------------------------------


def cmd_embed(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from tagger_gui.core.audio import AnalysisPolicy
    from tagger_gui.core.cache import default_cache_path
    from tagger_gui.core.embed_job import DEFAULT_BATCH_PATCHES, embed_library

    if not args.music_dir.is_dir():
        print(f"tagger: {args.music_dir}: not a folder", file=sys.stderr)
        return 2
    cache_path = args.cache or default_cache_path(args.music_dir)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    policy = AnalysisPolicy(max_patches=max(1, args.max_excerpts), whole=args.whole)
    task = embed_library(
        args.music_dir,
        cache_path=cache_path,
        backends=args.backend or ["musicnn-msd"],
        policy=policy,
        workers=args.workers,
        device=args.device,
        batch_patches=args.batch_patches or DEFAULT_BATCH_PATCHES,
        prune=args.prune,
        retry_failed=args.retry_failed,
    )
    bar = None
    log_handler = _attach_log(cache_path.parent / "embed.log")
    report = None
    try:
        while True:
            try:
                p = next(task)
            except StopIteration as stop:
                report = stop.value
                break
            if p.stage == "scanning":
                continue
            if bar is None:
                bar = tqdm(
                    total=p.total,
                    unit="file",
                    disable=args.quiet,
                    dynamic_ncols=True,
                    desc="embedding",
                )
            bar.update(p.done - bar.n)
            if p.elapsed > 0:
                bar.set_postfix_str(
                    f"{p.audio_seconds / p.elapsed:.0f}x realtime, {p.failed} failed",
                    refresh=False,
                )
    except KeyboardInterrupt:
        task.close()
        if bar is not None:
            bar.close()
        print(
            "\nStopped. Everything finished before Ctrl-C is saved; run the same "
            "command again to continue.",
            file=sys.stderr,
        )
        return 130
    finally:
        if bar is not None:
            bar.close()
        logging.getLogger("tagger_gui").removeHandler(log_handler)
        log_handler.close()
    _print_report(report)
    return 0


def _attach_log(log_path: Path) -> logging.Handler:
    """Log per-file problems to ``log_path`` (embed.log beside the cache)."""
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("tagger_gui")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.info("tagger %s: embedding started", __version__)
    return handler


def _print_report(report) -> None:
    minutes, seconds = divmod(report.seconds, 60)
    print(f"\nLibrary: {report.root}")
    print(f"Cache:   {report.cache_path}  ({', '.join(report.backends)})")
    print(f"Found {report.found} audio files in {int(minutes)} min {seconds:.1f} s:")
    print(f"  embedded            {report.embedded}")
    print(f"  unchanged (skipped) {report.unchanged}")
    if report.skipped_failed:
        print(f"  failed before, unchanged (use --retry-failed) {report.skipped_failed}")
    print(f"  failed              {len(report.failed)}")
    if report.pruned:
        print(f"  forgotten (deleted) {report.pruned}")
    if report.embedded:
        print(
            f"  speed               {report.realtime_factor:.0f}x realtime "
            f"({report.audio_seconds / 60:.1f} min of audio analysed, "
            f"{report.embedded / report.seconds:.1f} files/s)"
        )
    if report.short:
        print(f"  short (< 3 s, repeat-padded) {len(report.short)}")
    if report.failed:
        print("\nFiles that could not be analysed:")
        for relpath, reason in report.failed:
            print(f"  {relpath}: {reason}")
        print(f"(also in {report.cache_path.parent / 'embed.log'})")
    if report.warnings:
        print("\nWarnings:")
        for w in report.warnings:
            print(f"  {w}")


# --- other commands -------------------------------------------------------


def cmd_backends(args: argparse.Namespace) -> int:
    from tagger_gui.core.embeddings import available_backends

    for name, description in available_backends().items():
        print(f"{name:14s} {description}")
    return 0


def cmd_embeddings_info(args: argparse.Namespace) -> int:
    from tagger_gui.core.cache import EmbeddingCache

    path = _resolve_cache(args.cache)
    with EmbeddingCache.open(path, mode="r") as cache:
        print(f"Cache: {path}")
        for key in cache.backends():
            table = cache.tracks(key)
            print(f"  {key}: {len(table)} tracks")
        failures = cache.failures()
        if failures:
            print(f"  {len(failures)} files failed:")
            for relpath, reason in failures:
                print(f"    {relpath}: {reason}")
        problems = cache.verify()
    if problems:
        print("Problems found:")
        for p in problems:
            print(f"  {p}")
        return 1
    print("Consistency check: OK")
    return 0


def cmd_embeddings_export(args: argparse.Namespace) -> int:
    import csv

    import numpy as np

    from tagger_gui.core.cache import EmbeddingCache

    path = _resolve_cache(args.cache)
    fmt = args.format or args.out.suffix.lstrip(".").lower()
    if fmt not in ("npz", "csv"):
        print("tagger: say --format npz or --format csv", file=sys.stderr)
        return 2
    with EmbeddingCache.open(path, mode="r") as cache:
        keys = [k for k in cache.backends() if k.split("@")[0] == args.backend]
        if not keys:
            print(
                f"tagger: {path} has no vectors of {args.backend} "
                f"(it has: {', '.join(cache.backends()) or 'none'})",
                file=sys.stderr,
            )
            return 2
        key = keys[-1]
        dims = cache.backend_info(key)["outputs"]
        outputs = args.output or list(dims)
        unknown = [o for o in outputs if o not in dims]
        if unknown:
            print(
                f"tagger: {key} has no output {unknown[0]!r} (it has: {', '.join(dims)})",
                file=sys.stderr,
            )
            return 2
        relpaths, matrix = cache.load(key, outputs)
    columns = [f"{o}_{i}" for o in outputs for i in range(dims[o])]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    if fmt == "npz":
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                paths=np.asarray(relpaths, dtype=str),
                vectors=matrix,
                columns=np.asarray(columns, dtype=str),
                backend=np.asarray(key),
                outputs=np.asarray(outputs, dtype=str),
                exported=np.asarray(time.strftime("%Y-%m-%dT%H:%M:%S%z")),
                tagger_version=np.asarray(__version__),
            )
    else:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            fh.write(
                f"# tagger {__version__} embeddings export; backend {key}; "
                f"outputs {'+'.join(outputs)}; {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n"
            )
            writer = csv.writer(fh)
            writer.writerow(["path", *columns])
            for relpath, row in zip(relpaths, matrix, strict=True):
                writer.writerow([relpath, *(f"{v:.7g}" for v in row)])
    tmp.replace(args.out)
    print(f"Wrote {len(relpaths)} vectors of {matrix.shape[1]} values ({key}) to {args.out}")
    return 0
