"""Use cases that join the project store and the few-shot engine.

:mod:`~tagger_gui.core.project` keeps what people said (tracks, tags, labels,
undo) and :mod:`~tagger_gui.core.fewshot` computes (probes, rankings, quality);
neither imports the other. What needs both lives here, one layer above them
(import-linter checks the direction):

- :mod:`.predicting`: a project's tags fitted and scored over the library;
- :mod:`.exporting`: labels and predictions to CSV, tags into the audio files.
"""
