"""The few-shot engine: linear probes on frozen embeddings, ranking, quality, evaluation.

- :mod:`.features`  which embeddings a probe reads (``FeatureSpec``) and loading them
- :mod:`.probe`     ``LinearProbe``: standardised logistic regression, one per tag
- :mod:`.ranking`   review strategies: top, uncertain, diverse, audit
- :mod:`.quality`   honest readouts: grouped out-of-fold AP/ROC-AUC, audit precision
- :mod:`.datasets`  labeled sets for evaluation (CSV, MagnaTagATune)
- :mod:`.evaluate`  the paper's few-shot protocol (``tagger eval``)
- :mod:`.simulate`  active-learning simulation (``tagger simulate``)
"""
