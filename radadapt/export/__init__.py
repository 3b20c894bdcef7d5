"""The export stage: a completed training run becomes a folder that standard libraries load offline.

``exporter.export_run(ExportRequest(run=RUN, out=DIR, ...))`` writes the family layout (``layouts``: transformers
+ Meta files for RAD-DINO; timm image tower, text tower, projections, tokenizer and the released layout for MI2),
the model card (``card``, ``summary``; templates/model_card.md.j2) and ``provenance.json`` (``provenance``), after
scanning every exported text against the site's private identifier audit (``phi_scan``). ``provenance.
verify_export(DIR)`` re-checks an export. Layout and rules: docs/export.md and docs/architecture.md section 7.
This package imports no heavy library at import time.
"""
