"""tagger_gui: few-shot music tagging for the long tail."""

__version__ = "0.1.0"
