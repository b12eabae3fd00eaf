"""Evaluation: metrics, classical baselines at matched bytes, eval, report, bench and demo.

Needs `pip install 'gencodec[eval]'`. Imports the runtime (gencodec); the runtime imports
nothing from here.
"""
