"""The project's file formats, defined once: no Django, no torch, no pandas.

The three packages exchange files: ``distillation`` writes an explanations file that
``studyapp`` imports, ``studyapp`` exports a ratings CSV that ``analysis`` reads, and
``analysis`` writes a ``summary.json``. Each format is defined here and documented in
docs/formats.md, so a writer and its reader cannot drift apart.
"""
