"""The ``tagger`` command line, one module per part of the app.

``main`` builds the root parser; each of ``embed``, ``project``, ``fewshot``
and ``demo`` adds its own commands (``add_commands``); ``progress`` drives a
core task with a tqdm bar for all of them.
"""

from tagger_gui.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
