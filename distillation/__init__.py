"""Teacher generation and student distillation for CommonsenseQA explanations.

The modules of this package are a plain library and never import Django; only
``apps``, ``models``, ``admin`` and ``management`` form the thin Django shell
that exposes the pipeline as management commands.
"""
