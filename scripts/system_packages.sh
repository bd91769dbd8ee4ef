#!/usr/bin/env bash
# The Debian/Ubuntu system libraries tagger_gui needs, installed if missing.
#   bash scripts/system_packages.sh          # the app: Qt's X11/Wayland libraries, PortAudio
#   bash scripts/system_packages.sh --test   # also what the tests need: Xvfb, an ALSA null device
# Quick when everything is there (dpkg-query only). Asks for root (sudo) only
# when something is missing. Without root or sudo, the app's run prints what is
# missing and the command to install it, and goes on (exit 0): the window then
# says the same in one sentence when it starts (tagger_gui/gui_launcher.py).
# The test set fails instead, since the tests cannot run without it.
set -euo pipefail

mode=${1:-app}

# Qt 6's xcb platform plugin (libqxcb.so, libQt6XcbQpa) and its Wayland plugin
# link these (ldd of the PySide6 wheel's plugins); PortAudio is what
# sounddevice loads for listening (its Linux wheel does not bundle it).
app_packages=(
  libportaudio2
  libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0
  libxcb-shape0 libxcb-randr0 libxcb-xkb1 libxcb-xfixes0 libxcb-sync1 libxcb-shm0
  libxcb-util1 libx11-xcb1 libxkbcommon-x11-0 libxkbcommon0
  libegl1 libgl1 libfontconfig1 libdbus-1-3
  libwayland-client0 libwayland-cursor0
)
test_packages=(xvfb xauth)  # xauth: xvfb-run needs it (only "Recommends")

packages=("${app_packages[@]}")
[[ "$mode" == "--test" ]] && packages+=("${test_packages[@]}")

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    if [[ -t 0 ]]; then sudo "$@"; else sudo -n "$@"; fi
  else
    return 1
  fi
}

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
  done
fi
if ((${#missing[@]})); then
  command="apt-get install --no-install-recommends ${missing[*]}"
  if command -v apt-get >/dev/null 2>&1 && { [[ $(id -u) -eq 0 ]] || command -v sudo >/dev/null 2>&1; }; then
    echo "== installing system libraries: ${missing[*]} (apt-get; needs root)"
    export DEBIAN_FRONTEND=noninteractive
    if as_root apt-get update -qq && as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
      missing=()
    fi
  fi
  if ((${#missing[@]})); then
    echo "system_packages.sh: could not install ${missing[*]}; as root, run: $command" >&2
    [[ "$mode" == "--test" ]] && exit 1
  fi
fi

[[ "$mode" == "--test" ]] || exit 0

# The default ALSA PCM: a null device unless the machine already has an ALSA
# configuration (a developer's real sound card is left alone). The null PCM
# accepts any rate/format and discards the audio at real-time pace, which is
# what PortAudio needs to run a stream and report a moving position.
conf=/etc/asound.conf
[[ $(id -u) -eq 0 ]] || conf="$HOME/.asoundrc"
if [[ ! -e /etc/asound.conf && ! -e "$HOME/.asoundrc" ]]; then
  if [[ ! -e /proc/asound/cards ]] || grep -q "no soundcards" /proc/asound/cards 2>/dev/null; then
    echo "== no sound card: writing an ALSA null-device default to $conf"
    cat >"$conf" <<'CONF'
# Written by tagger_gui's scripts/system_packages.sh: no sound card on this
# machine, so the default ALSA device is a null sink (audio is discarded).
pcm.!default {
    type null
}
ctl.!default {
    type hw
    card 0
}
CONF
  fi
fi
