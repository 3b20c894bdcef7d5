"""A report rendered from the real benchmark output: every figure and table, self-contained HTML, right numbers."""

from __future__ import annotations

import base64
import html as htmllib
import io
import re

import pytest

from radadapt.bench.schema import BenchmarkResults, ScalingResults
from radadapt.report.summary import fmt_difference, fmt_estimate, say_difference
from tests.report.conftest import copy_fixture, edit_results
from tests.report.htmlcheck import cells, markdown_tables, parse

SECTIONS = ["summary", "models", "macro", "labels", "differences", "not-evaluated", "segmentation", "ood", "scaling",
            "training", "data", "settings"]
FIGURES = ["fig-labels-findings", "fig-labels-devices", "fig-forest", "fig-segmentation", "fig-ood-forest",
           "fig-training", "fig-accounting"]
TABLES = ["tab-glance", "tab-models", "tab-splits", "tab-macro", "tab-labels-findings", "tab-labels-devices",
          "tab-labels-findings-auprc", "tab-labels-devices-auprc", "tab-probes",
          "tab-not-evaluated", "tab-segmentation", "tab-ood-macro", "tab-ood-findings", "tab-ood-devices",
          "tab-scaling-1", "tab-training", "tab-store", "tab-accounting", "tab-pairing", "tab-label-counts",
          "tab-settings"]


def _results(root) -> BenchmarkResults:
    return BenchmarkResults.model_validate_json((root / "bench" / "results.json").read_text())


def _scaling_figures(root) -> list[str]:
    sc = ScalingResults.model_validate_json((root / "scaling.json").read_text())
    return [f"fig-scaling-{i + 1}" for i in range(len(sc.tasks))]


def _png_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as im:
        return im.size


def test_every_section_figure_and_table_is_in_the_html(rendered, bench_copy):
    out, _, html, _ = rendered
    facts = parse(html)
    figures = FIGURES + _scaling_figures(bench_copy)
    missing = [i for i in SECTIONS + figures + TABLES if i not in facts.ids]
    assert not missing, missing
    for fid in figures:
        m = re.search(rf'<figure id="{fid}">\s*<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
        assert m, fid
        w, h = _png_size(base64.b64decode(m.group(2)))
        assert w >= 600 and h >= 250, (fid, w, h)
    assert len(set(facts.img_alt)) == len(facts.img_alt) and all(len(a) > 20 for a in facts.img_alt)
    # one table row per evaluated label, in the right group's table
    res = _results(bench_copy)
    for group in ("findings", "devices"):
        for tid in (f"tab-labels-{group}", f"tab-labels-{group}-auprc"):
            block = html.split(f'id="{tid}"')[1].split("</table>")[0]
            for lab in res.classification.labels:
                if lab.status == "evaluated":
                    assert (f'class="strong">{htmllib.escape(lab.label)}<' in block) == (lab.group == group), lab.label
    # too-few-positives labels are listed, never dropped
    block = html.split('id="tab-not-evaluated"')[1].split("</table>")[0]
    not_eval = [lab for lab in res.classification.labels if lab.status != "evaluated"]
    assert not_eval and all(f">{htmllib.escape(lab.label)}<" in block for lab in not_eval)


def test_markdown_has_every_figure_file_and_well_formed_tables(rendered, bench_copy):
    out, _, _, md = rendered
    refs = re.findall(r"!\[([^\]]+)\]\((figures/[^)]+\.png)\)", md)
    names = {r for _, r in refs}
    on_disk = {f"figures/{f.name}" for f in (out / "figures").glob("*.png")}
    expected = {f"figures/{f}.png" for f in FIGURES + _scaling_figures(bench_copy)}
    assert names == on_disk == expected
    for tid in TABLES:
        assert f'<a id="{tid}"></a>' in md, tid
    for table in markdown_tables(md):
        assert len(table) >= 3 and set(table[1]) <= set("|-")
        assert {cells(line) for line in table} == {cells(table[0])}, table[0]
    headings = re.findall(r"^## (\d+)\. (.+)$", md, flags=re.M)
    assert headings[0] == ("1", "Summary") and len(headings) == len(SECTIONS)


def test_html_is_self_contained(rendered):
    _, _, html, _ = rendered
    facts = parse(html)
    assert not re.search(r"https?://|ftp://|//[a-z0-9.-]+\.[a-z]{2,}/", html, flags=re.I)
    assert facts.srcs and all(s.startswith("data:image/png;base64,") for s in facts.srcs)
    assert all(h.startswith("#") and h[1:] in facts.ids for h in facts.hrefs)
    assert not facts.tags & {"script", "link", "iframe", "object", "embed", "base"}
    assert "url(" not in html and "@import" not in html


def test_summary_comes_first_with_the_benchmark_numbers(rendered, bench_copy, summary_json):
    _, _, html, md = rendered
    res = _results(bench_copy)
    text = htmllib.unescape(re.sub(r"<[^>]+>", "", html)).replace("\u00a0", " ")
    assert html.index('id="summary"') < html.index('id="models"') < html.index('id="macro"')
    probe = res.headline_probe
    cands = [m for m in res.models if m.role == "candidate"]
    assert [c["name"] for c in summary_json["candidates"]] == [m.name for m in cands]
    for m, c in zip(cands, summary_json["candidates"]):
        assert c["headline"] in text and c["headline"] in md
        assert m.path in c["headline"]
        for mac in res.classification.macro:
            d = mac.differences[m.name][probe]["auroc"]
            # the summary states the macro difference with its CI and the benchmark's verdict
            assert say_difference(d) in c["headline"] and f"{d.point:+.3f}"[:4] in say_difference(d)
            assert fmt_difference(d) in text and fmt_difference(d) in md
            word = {"better": "better", "worse": "WORSE", "no evidence of difference": "no evidence of difference"}
            assert f"{mac.group} ({len(mac.labels)} labels): {word[d.verdict]}" in c["headline"]
        better = [lab.label for lab in res.classification.labels if lab.status == "evaluated"
                  and lab.differences[m.name][probe]["auroc"].verdict == "better"]
        assert sorted(c["better"]) == sorted(better)
    lab = next(lab for lab in res.classification.labels if lab.status == "evaluated")
    assert fmt_estimate(lab.results["baseline"][probe].auroc) in text
    # the at-a-glance table counts the same out-of-domain losses as the benchmark's warnings
    glance = html.split('id="tab-glance"')[1].split("</table>")[0]
    for m in cands:
        n = sum(w.startswith(f"OUT-OF-DOMAIN: {m.name} is WORSE") for w in res.ood.warnings)
        row = glance.split(f'class="strong">{m.name}<')[1].split("</tr>")[0]
        assert (f"worse on {n}<" if n else "no loss found") in row
    # out-of-domain warnings recorded by the benchmark head the summary, loudly
    warnings = res.ood.warnings
    assert ('id="alarms"' in html) == bool(warnings)
    for w in warnings:
        assert w in text and w in summary_json["alarms"]
        assert text.index(w) < text.index("Models and provenance")


def test_no_patient_data_and_no_overlays_unless_asked(rendered, bench_copy):
    out, _, html, md = rendered
    # pseudonymous keys (20 hex) never appear; store ids (16) and sha256 fingerprints (64) may
    assert not re.search(r"\b[0-9a-f]{20}\b", html + md)
    overlays = sorted((bench_copy / "bench" / "overlays").glob("*.png"))
    assert overlays
    assert not list((out / "figures").glob("overlay-*"))
    assert "thumbs" not in parse(html).ids and 'class="thumbs"' not in html
    assert f"{len(overlays)} overlay image(s) are in" in htmllib.unescape(html)
    assert "Aggregates only" in html


def _expand_to_all_labels(d: dict) -> dict:
    """Every schema label evaluated (a 33-label benchmark): not-evaluated labels get a real evaluated label's
    numbers under their own name and group."""
    labels = d["classification"]["labels"]
    by_group = {g: [lab for lab in labels if lab["status"] == "evaluated" and lab["group"] == g]
                for g in ("findings", "devices")}
    for i, lab in enumerate(labels):
        if lab["status"] != "evaluated":
            src = by_group[lab["group"]][i % len(by_group[lab["group"]])]
            labels[i] = {**src, "label": lab["label"], "group": lab["group"]}
    return d


@pytest.mark.slow
def test_thirty_labels_four_models_with_overlays_then_without(tmp_path):
    import time

    from radadapt.commands.report import make_report

    root = copy_fixture(tmp_path / "fx")
    edit_results(root, _expand_to_all_labels)
    res = _results(root)
    assert len(res.models) == 4 and sum(lab.status == "evaluated" for lab in res.classification.labels) >= 30
    out = tmp_path / "report"
    t0 = time.perf_counter()
    info = make_report(root / "bench", out, overlays=True)
    elapsed = time.perf_counter() - t0
    html = (out / "report.html").read_text()
    for lab in res.classification.labels:
        assert f'class="strong">{htmllib.escape(lab.label)}<' in html
    overlays = sorted((root / "bench" / "overlays").glob("*.png"))
    facts = parse(html)
    assert len(facts.img_src) == len(FIGURES) + len(overlays)  # the figures (no scaling given) and the thumbnails
    assert f"Contains {len(overlays)} de-identified test radiographs" in html
    assert len(list((out / "figures").glob("overlay-*.png"))) == len(overlays)
    assert elapsed < 120, elapsed  # sanity bound only; docs/benchmarks.md has the measured figure
    assert info["summary"]["not_evaluated"] == []
    # Rendering again without --overlays into the same folder leaves no patient image behind.
    edit_results(root, lambda d: {**d, "ood": None, "segmentation": None})
    make_report(root / "bench", out)
    assert not list((out / "figures").glob("overlay-*.png"))
    html = (out / "report.html").read_text()
    assert "de-identified test radiographs" not in html and "Aggregates only" in html
