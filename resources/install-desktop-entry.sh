#!/bin/sh
# Add Tagger to the desktop's application menu (current user only):
# installs tagger-gui.desktop, with this folder's tagger-gui in Exec, and the
# app icon. Run it from the unpacked app folder: ./install-desktop-entry.sh
# Undo: rm ~/.local/share/applications/tagger-gui.desktop
set -eu
here=$(cd "$(dirname "$0")" && pwd)
resources="$here/_internal/resources"
data="${XDG_DATA_HOME:-$HOME/.local/share}"
mkdir -p "$data/applications"
for size in 16 32 48 64 128 256; do
  dir="$data/icons/hicolor/${size}x${size}/apps"
  mkdir -p "$dir"
  cp "$resources/tagger-gui-$size.png" "$dir/tagger-gui.png"
done
mkdir -p "$data/icons/hicolor/scalable/apps"
cp "$resources/tagger-gui.svg" "$data/icons/hicolor/scalable/apps/tagger-gui.svg"
sed "s|^Exec=tagger-gui|Exec=\"$here/tagger-gui\"|" "$resources/tagger-gui.desktop" \
  >"$data/applications/tagger-gui.desktop"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$data/applications" || true
echo "Tagger added to the application menu ($data/applications/tagger-gui.desktop)"
