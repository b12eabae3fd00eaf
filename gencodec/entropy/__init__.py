"""Entropy modelling and coding: priors, integer scale path, tables, the ANS coder."""
