"""One trial: data, model, objective, trainer and in-trial evaluation.

Runs without Ray (``betastudy train``); the Ray Tune adapter lives in
``trainables.tune`` alone.
"""
