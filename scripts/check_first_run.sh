#!/usr/bin/env bash
# The README's first command, as a new user runs it, on a fresh clone with a
# fresh .venv (CI runs this after the tests; about 3 min):
#   1. `bash scripts/install.sh` installs without alarming output and ends with
#      one line saying what was installed and how to start;
#   2. with Qt's X11 libraries absent (hidden in a private mount namespace, as
#      on a desktop that never had them; needs root), `.venv/bin/tagger-gui
#      ~/Music` prints one sentence naming the packages to install, exit 1,
#      no abort;
#   3. with them present, the same command opens its window on a real X
#      server (Xvfb, the xcb platform, not offscreen).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git clone -q "$repo" "$tmp/app"
cd "$tmp/app"
export HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/home/.config" XDG_DATA_HOME="$tmp/home/.local/share"
mkdir -p "$HOME/Music"
unset QT_QPA_PLATFORM WAYLAND_DISPLAY

echo "== first-run check: bash scripts/install.sh (fresh .venv in a fresh clone)"
start=$SECONDS
bash scripts/install.sh >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; echo "check_first_run.sh: install.sh failed" >&2; exit 1; }
echo "   installed in $((SECONDS - start)) s; its last line:"
tail -n 1 "$tmp/install.log" | sed 's/^/   /'
tail -n 1 "$tmp/install.log" | grep -q "Start it with: .venv/bin/tagger-gui ~/Music" \
  || { echo "check_first_run.sh: install.sh did not end with how to start" >&2; exit 1; }
if grep -Eiq "^ERROR|dependency resolver|tensorflow" "$tmp/install.log"; then
  cat "$tmp/install.log"
  echo "check_first_run.sh: alarming installer output (above)" >&2
  exit 1
fi
if .venv/bin/python -m pip show musicnn >/dev/null 2>&1; then
  echo "check_first_run.sh: the musicnn package got installed (only its weights should be)" >&2
  exit 1
fi

libs=/usr/lib/x86_64-linux-gnu
if [[ $(id -u) -eq 0 ]] && command -v unshare >/dev/null 2>&1 && [[ -e $libs/libxcb-cursor.so.0 ]]; then
  echo "== first-run check: tagger-gui ~/Music without libxcb-cursor0 and libxcb-icccm4"
  cp -al "$libs" "$tmp/libs"
  rm -f "$tmp/libs"/libxcb-cursor.so.0* "$tmp/libs"/libxcb-icccm.so.4*
  set +e
  DISPLAY=:99 unshare -m sh -c "mount --bind '$tmp/libs' '$libs' && .venv/bin/tagger-gui ~/Music" \
    >"$tmp/nolibs.out" 2>"$tmp/nolibs.err"
  rc=$?
  set -e
  sed 's/^/   /' "$tmp/nolibs.err"
  [[ $rc -eq 1 ]] || { echo "check_first_run.sh: exit $rc, not 1" >&2; exit 1; }
  grep -q "sudo apt-get install libxcb-cursor0 libxcb-icccm4" "$tmp/nolibs.err" \
    || { echo "check_first_run.sh: the message does not name the packages" >&2; exit 1; }
  ! grep -Eq "qt.qpa.plugin|Aborted|core dumped" "$tmp/nolibs.err" \
    || { echo "check_first_run.sh: Qt aborted" >&2; exit 1; }
else
  echo "== first-run check: hiding libraries needs root and unshare: skipped"
fi

echo "== first-run check: tagger-gui ~/Music on a real X server (Xvfb, xcb)"
ready="$tmp/ready"
TAGGER_GUI_READY_FILE="$ready" TAGGER_GUI_WORKERS=0 setsid xvfb-run -a -s "-screen 0 1280x800x24" \
  .venv/bin/tagger-gui ~/Music >"$tmp/xcb.log" 2>&1 &
pid=$!
for _ in $(seq 1 450); do
  [[ -s "$ready" ]] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.2
done
kill -TERM -- "-$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
if [[ ! -s "$ready" ]] || [[ "$(sed -n 2p "$ready")" != "xcb" ]]; then
  cat "$tmp/xcb.log"
  echo "check_first_run.sh: the window did not open on xcb" >&2
  exit 1
fi
echo "   the window opened on $(sed -n 2p "$ready") in a fresh install"
echo "first-run check: passed"
