"""After the run: disentanglement metrics, result loading, figures and the report.

Nothing here imports torch, ray, ``study`` or ``trainables``: a report is built from
the files of a study directory alone.
"""
