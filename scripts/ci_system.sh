#!/usr/bin/env bash
# System parts the tests need on a Debian machine (CI runs this before
# scripts/test.sh; see docs/player.md):
#   - libportaudio2: the PortAudio library sounddevice loads (not bundled in
#     its Linux wheel);
#   - xvfb (+ xauth for xvfb-run): an X server for the screenshot script
#     (the tests themselves run with QT_QPA_PLATFORM=offscreen);
#   - an ALSA configuration whose default PCM is a null device, so a real
#     PortAudio output stream can run on a machine without a sound card.
# Idempotent and quick: it installs only what is missing and writes the ALSA
# configuration only when there is none. Needs root (or sudo) only when
# something has to be installed or written.
set -euo pipefail

packages=(libportaudio2 xvfb xauth)  # xauth: xvfb-run needs it (only "Recommends")

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    echo "ci_system.sh: need root to run: $*" >&2
    return 1
  fi
}

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "ci_system.sh: missing ${missing[*]} and no apt-get (not Debian?): install them by hand" >&2
    exit 1
  fi
  echo "== installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The default ALSA PCM: a null device unless the machine already has an ALSA
# configuration (a developer's real sound card is left alone). The null PCM
# accepts any rate/format and discards the audio at real-time pace, which is
# what PortAudio needs to run a stream and report a moving position.
conf=/etc/asound.conf
[[ $(id -u) -eq 0 ]] || conf="$HOME/.asoundrc"
if [[ ! -e /etc/asound.conf && ! -e "$HOME/.asoundrc" ]]; then
  if [[ ! -e /proc/asound/cards ]] || grep -q "no soundcards" /proc/asound/cards 2>/dev/null; then
    echo "== no sound card: writing an ALSA null-device default to $conf"
    cat >"$conf" <<'EOF'
# Written by tagger_gui's scripts/ci_system.sh: no sound card on this
# machine, so the default ALSA device is a null sink (audio is discarded).
pcm.!default {
    type null
}
ctl.!default {
    type hw
    card 0
}
EOF
  fi
fi
