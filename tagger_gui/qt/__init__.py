"""The thin Qt layer over :mod:`tagger_gui.core` (the desktop app)."""
