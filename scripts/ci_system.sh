#!/usr/bin/env bash
# System parts the tests need on a Debian machine (install.sh --test does the
# same; see docs/player.md): the app's libraries (Qt's xcb/Wayland libraries,
# PortAudio), Xvfb and xauth for the tests on a real X server and the
# screenshot script, and an ALSA null device so that a real PortAudio output
# stream runs on a machine without a sound card. Idempotent and quick.
set -euo pipefail
exec bash "$(dirname "$0")/system_packages.sh" --test
