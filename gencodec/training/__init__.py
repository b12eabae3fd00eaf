"""Training: the typed config, the stage runner, objectives and losses, data, validation and export.

Needs `pip install 'gencodec[train]'`. Imports the runtime (gencodec) and the evaluation
metrics; the runtime imports nothing from here.
"""
