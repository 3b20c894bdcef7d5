"""The model card (``MODEL_CARD.md``), rendered with jinja2 from ``templates/model_card.md.j2``.

Every number reaches the card through the ``num``/``pct``/``est``/``diff`` filters, and text that radadapt itself
composed (file descriptions, architecture, licence wording) through ``computed``; these filters record what they
printed, so the identifier scan does not mistake a count of 1024 images for a StudyID. Every string that came
from data or the user (site name, licence note, manufacturer and label names, settings values) goes through
``cell`` (one line, table-safe) and is scanned like any other text.

``public_phrases`` is radadapt's own vocabulary: the phrases of this template, of the config and results
schemas, of the packaged labels schema's column names and of the store's enum values. They are written for every
site, so a match of one of them in the audit says nothing about this site's patients.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files
from typing import Any

from radadapt.export.phi_scan import phrases

TEMPLATE = "model_card.md.j2"


def template_text() -> str:
    return files("radadapt.templates").joinpath(TEMPLATE).read_text(encoding="utf-8")


@lru_cache(maxsize=4)
def public_phrases(max_phrase: int = 8) -> frozenset[str]:
    """Phrases radadapt writes whatever the site (see the module docstring)."""
    import yaml

    from radadapt.bench.schema import BenchmarkResults
    from radadapt.config import SiteConfig
    from radadapt.manifest import ImageRecord, LabelsInfo, StoreInfo

    texts = [template_text(), files("radadapt.templates").joinpath("radadapt.toml").read_text(encoding="utf-8")]
    for model in (SiteConfig, BenchmarkResults, ImageRecord, StoreInfo, LabelsInfo):
        texts.append(json.dumps(model.model_json_schema()))
    schema = yaml.safe_load(files("radadapt.templates").joinpath("labels_schema.yaml").read_text(encoding="utf-8"))
    for block in ("findings", "other_findings", "devices"):
        for item in schema.get(block) or []:
            if isinstance(item, dict) and item.get("name"):
                texts.append(str(item["name"]))
                if block == "devices":
                    texts.append(f"{item['name']} position")
    out: set[str] = set()
    for text in texts:
        for line in text.splitlines():  # phrases do not run across lines of radadapt's own text
            out |= phrases(line, max_phrase)
    return frozenset(out)


class CardRenderer:
    """A jinja2 environment whose number filters remember what they printed."""

    def __init__(self, max_phrase: int = 8) -> None:
        import jinja2

        self.max_phrase = max_phrase
        self.computed: set[str] = set()
        self.env = jinja2.Environment(
            loader=jinja2.FunctionLoader(lambda name: template_text() if name == TEMPLATE else None),
            undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True,
            trim_blocks=True, lstrip_blocks=True,
        )
        self.env.filters.update(num=self.num, pct=self.pct, est=self.est, diff=self.diff, cell=cell,
                                code=code, value=self.value, computed=self._keep)

    def _keep(self, text: str) -> str:
        self.computed |= phrases(text, self.max_phrase)
        return text

    def num(self, value: Any, digits: int | None = None) -> str:
        if value is None:
            return "n/a"
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, int):
            return self._keep(f"{value:,}")
        if isinstance(value, float):
            return self._keep(f"{value:.{digits}f}" if digits is not None else f"{value:.4g}")
        return cell(value)

    def pct(self, value: float | None) -> str:
        return "n/a" if value is None else self._keep(f"{100 * value:.0f}%")

    def est(self, e: dict | None) -> str:
        """``0.812 [0.771, 0.850]`` (point and 95% CI)."""
        if not e or e.get("point") is None:
            return "n/a"
        ci = f" [{e['low']:.3f}, {e['high']:.3f}]" if e.get("low") is not None and e.get("high") is not None else ""
        return self._keep(f"{e['point']:.3f}{ci}")

    def diff(self, d: dict | None) -> str:
        if not d or d.get("point") is None:
            return "n/a"
        ci = f" [{d['low']:+.3f}, {d['high']:+.3f}]" if d.get("low") is not None and d.get("high") is not None else ""
        return self._keep(f"{d['point']:+.3f}{ci}")

    def value(self, v: Any) -> str:
        """A settings value: numbers (and lists of them) as computed numbers, anything else as data."""
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(self.value(x) for x in v) + "]"
        if v is None or isinstance(v, (bool, int, float)):
            return self.num(v)
        return cell(v)

    def render(self, context: dict[str, Any]) -> str:
        return self.env.get_template(TEMPLATE).render(**context)


def cell(value: Any) -> str:
    """Data text on one line, safe inside a markdown table (pipes and backticks escaped, length capped)."""
    text = " ".join(str(value).split())
    text = text.replace("|", "\\|").replace("`", "'")
    return text[:200]


def code(value: Any) -> str:
    return f"`{cell(value)}`"


def render_card(context: dict[str, Any], max_phrase: int = 8) -> tuple[str, set[str]]:
    """(MODEL_CARD.md text, phrases of the numbers and radadapt-composed text it printed)."""
    r = CardRenderer(max_phrase)
    text = r.render(context)
    return text, r.computed
