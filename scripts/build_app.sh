#!/usr/bin/env bash
# Build the one-folder desktop app (dist/tagger/) with PyInstaller from
# tagger.spec, then check it the way a user would run it: from another folder,
# with the venv out of reach (environment emptied: PATH=/usr/bin:/bin, no
# PYTHONPATH), so a missing hidden import or data file fails here.
#   bash scripts/build_app.sh           # build + checks + size report
#   bash scripts/build_app.sh --tar     # also pack dist/tagger-<version>-linux-x86_64.tar.gz
#   bash scripts/build_app.sh --clean   # rebuild from scratch (ignore PyInstaller's cache)
# Needs the app installed in .venv (scripts/install.sh). See docs/packaging.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

tar=0
clean=()
for arg in "$@"; do
  case "$arg" in
    --tar) tar=1 ;;
    --clean) clean=(--clean) ;;
    *) echo "build_app.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

[[ -x .venv/bin/python ]] || { echo "build_app.sh: no .venv; run bash scripts/install.sh first" >&2; exit 1; }

# PyInstaller, and onnx + onnxruntime (export, and the frozen app's engine):
# the `build` extra of pyproject.toml
if ! .venv/bin/python -c "import PyInstaller, _pyinstaller_hooks_contrib, onnx, onnxruntime" 2>/dev/null; then
  echo "== installing PyInstaller, onnx, onnxruntime (the build extra)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check \
    "pyinstaller>=6.10" "pyinstaller-hooks-contrib>=2024.8" "onnx>=1.16" "onnxruntime>=1.18"
fi

# System libraries the bundle carries: PortAudio (sounddevice loads Debian's
# libportaudio2) and the xcb utility libraries Qt's xcb platform plugin links
# to, which desktops without Qt 6 often lack. strip comes with binutils.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
  else echo "build_app.sh: need root to run: $*" >&2; return 1; fi
}
missing=()
for pkg in libportaudio2 libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 binutils; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "== installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The frozen app runs the models with onnxruntime, not torch: export them from
# the PyTorch port (the command fails if ONNX Runtime's outputs differ from
# torch's by more than 1e-5 relative); tagger.spec bundles build/onnx/.
echo "== exporting the musicnn/VGG models to build/onnx/ (ONNX, checked against torch)"
.venv/bin/python -m tagger_gui.core.embeddings.onnx_export --out build/onnx

echo "== building dist/tagger/ (PyInstaller, tagger.spec)"
start=$(date +%s)
PYTHONWARNINGS=ignore::DeprecationWarning \
  .venv/bin/pyinstaller --noconfirm --log-level WARN "${clean[@]}" tagger.spec
cp resources/install-desktop-entry.sh dist/tagger/
echo "build took $(($(date +%s) - start)) s"

app="$root/dist/tagger"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# the user's view: an empty environment, another folder, no venv on any path
run() { (cd "$tmp" && env -i HOME="$tmp" PATH=/usr/bin:/bin LANG=C.UTF-8 "$@"); }

echo "== self-test: tagger --self-test"
run "$app/tagger" --self-test
echo "== self-test: tagger-gui --self-test"
run "$app/tagger-gui" --self-test
if command -v xvfb-run >/dev/null 2>&1; then
  echo "== the window on a real X server (xcb plugin), under Xvfb"
  # DISPLAY and XAUTHORITY are the ones xvfb-run sets for its child
  (cd "$tmp" && xvfb-run -a sh -c 'exec env -i HOME="$1" PATH=/usr/bin:/bin LANG=C.UTF-8 \
      DISPLAY="$DISPLAY" XAUTHORITY="$XAUTHORITY" QT_QPA_PLATFORM=xcb "$2" --self-test' \
      sh "$tmp" "$app/tagger-gui") | tee "$tmp/xcb.log"
  grep -q "platform xcb" "$tmp/xcb.log" || { echo "build_app.sh: the window did not open on xcb" >&2; exit 1; }
fi

echo "== tagger embed with spawned decoding workers (frozen multiprocessing)"
mkdir -p "$tmp/music"
for name in one two three; do cp resources/selftest_tone.flac "$tmp/music/$name.flac"; done
run "$app/tagger" embed "$tmp/music" --workers 2 --backend musicnn-msd --backend handcrafted --quiet
run "$app/tagger" embeddings info "$tmp/music" | tee "$tmp/info.txt"
grep -q "musicnn-msd.*: 3 tracks" "$tmp/info.txt" && grep -q "handcrafted.*: 3 tracks" "$tmp/info.txt" \
  || { echo "build_app.sh: the frozen embed did not store 3 tracks per backend" >&2; exit 1; }

echo "== size"
du -sh "$app"
echo "-- biggest entries of _internal/ (MB)"
du -sm "$app"/_internal/* | sort -rn | sed -n 1,10p
echo "-- biggest files (MB)"
find "$app" -type f -printf '%s %P\n' | sort -rn | sed -n 1,10p | awk '{printf "%6.1f %s\n", $1 / 1e6, $2}'

if ((tar)); then
  version=$(.venv/bin/python -c "import tagger_gui; print(tagger_gui.__version__)")
  archive="dist/tagger-$version-linux-$(uname -m).tar.gz"
  echo "== packing $archive"
  tar -C dist -czf "$archive" tagger
  ls -lh "$archive"
fi
echo "build_app.sh: dist/tagger/ built and checked"
