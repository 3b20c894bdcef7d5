"""Report text -> label table (pure Python, no torch): ``radadapt labels``. See docs/labels.md."""

from radadapt.labels.labeler import Labeler, ReportLabels
from radadapt.labels.schema import Schema, load_schema

__all__ = ["Labeler", "ReportLabels", "Schema", "load_schema"]
