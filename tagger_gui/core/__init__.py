"""Everything that computes. Never imports Qt (checked by import-linter)."""
