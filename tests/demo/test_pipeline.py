"""`radadapt demo`: the orchestration (fast, with stand-in stages) and the real journey end to end (slow)."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from radadapt.demo import pipeline as P
from radadapt.errors import TrainingStopped, UsageError


# -- orchestration with stand-in stages ----------------------------------------------------------------------------
class Recorder:
    """Stages that write one file each and log their calls; ``fail`` makes one stage raise."""

    def __init__(self, root: Path, names=("a", "b", "c", "d")):
        self.root, self.names, self.calls, self.fail = root, names, [], {}

    def stages(self, layout, settings, workers):  # the signature of pipeline.plan_stages
        out = []
        for name in self.names:
            target = layout.root / name / "out.txt"

            def action(name=name, target=target):
                self.calls.append(name)
                if name in self.fail:
                    raise self.fail[name]
                target.parent.mkdir(parents=True, exist_ok=True)
                was = target.read_text() if target.exists() else ""
                target.write_text(was + "x")
                return {"wrote": name}

            out.append(P.Stage(name, f"stage {name}", action, [target], [layout.root / name]))
        return out


@pytest.fixture()
def recorder(tmp_path, monkeypatch):
    rec = Recorder(tmp_path / "demo")
    monkeypatch.setattr(P, "plan_stages", rec.stages)
    monkeypatch.setattr("radadapt.demo.outcome.summarise_demo", lambda layout, state: {"stages": state["stages"]})
    return rec


def _state(root: Path) -> dict:
    return json.loads((root / P.STATE_FILE).read_text())


def test_runs_every_stage_once_and_records_times(recorder):
    P.run_demo(recorder.root, n=60)
    assert recorder.calls == ["a", "b", "c", "d"]
    st = _state(recorder.root)
    assert st["format"] == "radadapt-demo" and st["settings"]["n"] == 60
    assert [st["stages"][s]["status"] for s in "abcd"] == ["done"] * 4
    assert all(st["stages"][s]["wall_s"] >= 0 and st["stages"][s]["result"] == {"wrote": s} for s in "abcd")
    P.run_demo(recorder.root, n=60)  # a rerun of a finished demo does nothing again
    assert recorder.calls == ["a", "b", "c", "d"]


def test_interrupted_demo_continues_at_the_interrupted_stage_without_clearing_it(recorder):
    recorder.fail["c"] = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        P.run_demo(recorder.root, n=60)
    assert recorder.calls == ["a", "b", "c"]
    (recorder.root / "c").mkdir(parents=True)
    (recorder.root / "c" / "partial").write_text("resume me")  # what a stage keeps to resume from
    assert set(_state(recorder.root)["stages"]) == {"a", "b"}
    del recorder.fail["c"]
    P.run_demo(recorder.root, n=60)
    assert recorder.calls == ["a", "b", "c", "c", "d"]  # a and b kept, c resumed, d run
    assert (recorder.root / "c" / "partial").read_text() == "resume me"


def test_a_stage_run_again_restarts_every_later_stage_from_scratch(recorder):
    P.run_demo(recorder.root, n=60)
    (recorder.root / "b" / "out.txt").unlink()  # the user deleted an output
    P.run_demo(recorder.root, n=60)
    assert recorder.calls == ["a", "b", "c", "d", "b", "c", "d"]
    assert (recorder.root / "b" / "out.txt").read_text() == "x"  # rebuilt
    assert (recorder.root / "c" / "out.txt").read_text() == "x"  # cleared first, not appended to
    assert (recorder.root / "a" / "out.txt").read_text() == "x"  # untouched


def test_trainer_interrupt_becomes_a_keyboard_interrupt(recorder):
    recorder.fail["b"] = TrainingStopped("train.interrupted", "training was interrupted", hint="--resume")
    with pytest.raises(KeyboardInterrupt):
        P.run_demo(recorder.root, n=60)


def test_other_errors_propagate_with_their_code(recorder):
    recorder.fail["b"] = TrainingStopped("train.collapse", "collapsed")
    with pytest.raises(TrainingStopped) as exc:
        P.run_demo(recorder.root, n=60)
    assert exc.value.code == "train.collapse"
    assert set(_state(recorder.root)["stages"]) == {"a"}


def test_unavailable_stage_is_recorded_and_the_demo_goes_on(recorder):
    recorder.fail["b"] = P.StageUnavailable("`radadapt export`")
    P.run_demo(recorder.root, n=60)
    st = _state(recorder.root)["stages"]
    assert st["b"] == {"status": "unavailable", "reason": "`radadapt export`"}
    assert st["c"]["status"] == st["d"]["status"] == "done"
    del recorder.fail["b"]
    P.run_demo(recorder.root, n=60)  # the next radadapt version has it: b runs, then c and d again
    assert recorder.calls[-3:] == ["b", "c", "d"]


def test_refuses_a_folder_that_is_not_a_demo(tmp_path, recorder):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(UsageError) as exc:
        P.run_demo(foreign, n=60)
    assert exc.value.code == "demo.dir_not_empty"
    assert (foreign / "thesis.tex").read_text() == "precious" and not (foreign / P.STATE_FILE).exists()
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(UsageError) as exc:
        P.run_demo(afile, n=60)
    assert exc.value.code == "demo.dir_not_a_folder"
    assert recorder.calls == []


def test_refuses_a_demo_made_with_other_settings_or_a_damaged_marker(recorder):
    P.run_demo(recorder.root, n=60, seed=0)
    with pytest.raises(UsageError) as exc:
        P.run_demo(recorder.root, n=60, seed=1)
    assert exc.value.code == "demo.other_settings" and "seed 0" in exc.value.message
    (recorder.root / P.STATE_FILE).write_text("{not json")
    with pytest.raises(UsageError) as exc:
        P.run_demo(recorder.root, n=60, seed=0)
    assert exc.value.code == "demo.bad_state"


def test_an_empty_folder_is_accepted(tmp_path, recorder):
    recorder.root.mkdir()
    P.run_demo(recorder.root, n=60)
    assert recorder.calls == ["a", "b", "c", "d"]


def test_remove_never_leaves_the_demo_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(RuntimeError):
        P._remove(outside, tmp_path / "demo")
    assert outside.is_dir()


def test_torch_threads_are_restored():
    import torch

    before = torch.get_num_threads()
    with P.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


# -- the demo site -------------------------------------------------------------------------------------------------
def test_demo_site_is_reproducible_labelled_and_private(tmp_path):
    from radadapt.config import SiteConfig, load_config
    from radadapt.sitekey import load_key

    layout = P.DemoLayout(tmp_path / "d")
    P.write_demo_site(layout, seed=3)
    key = load_key(layout.key)  # load_key refuses group/other-readable files
    assert stat.S_IMODE(layout.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(layout.private.stat().st_mode) == 0o700
    assert layout.key.read_text() == P.demo_key(3) + "\n" and P.demo_key(3) != P.demo_key(4)
    assert "DEMO SITE" in (layout.site / "README.txt").read_text()
    cfg = load_config(layout.config)
    assert cfg.site.name.startswith("radadapt demo")
    assert cfg.ingest.resolution == 128 and cfg.ingest.split.test == 0.3
    assert cfg.train.dino.global_crop_size % 14 == 0 and cfg.train.dino.local_crop_size % 14 == 0
    assert cfg.train.unicl.image_size == 112
    default = SiteConfig()
    assert cfg.ingest.modalities == default.ingest.modalities  # only the listed settings differ
    P.write_demo_site(P.DemoLayout(tmp_path / "e"), seed=3)
    assert load_key(tmp_path / "e" / "site" / "site.key").fingerprint() == key.fingerprint()


def test_settings_name_the_demo_config_and_training():
    s = P.demo_settings(600, 0, 256)
    assert s["training"] == P.TRAINING and len(s["config_sha256"]) == 64
    assert P.demo_settings(600, 1, 256) != s


def test_stage_plan_covers_the_journey_in_order(tmp_path):
    stages = P.plan_stages(P.DemoLayout(tmp_path), P.demo_settings(60, 0, 128), workers=1)
    names = [s.name for s in stages]
    assert names == ["site", "archive", "ingest", "labels", "weights",
                     "train-rad-dino", "benchmark-rad-dino", "export-rad-dino",
                     "train-mi2", "benchmark-mi2", "export-mi2", "report"]
    for s in stages:  # every output and every path a rerun may delete lies inside the demo folder
        assert all(tmp_path in p.parents for p in s.outputs + s.owned)
    only = P.plan_stages(P.DemoLayout(tmp_path), P.demo_settings(60, 0, 128, ("rad_dino",)), workers=1)
    assert [s.name for s in only] == names[:8] + ["report"]


def test_families_are_part_of_the_settings_and_checked():
    assert P.demo_settings(60, 0, 128, ("mi2", "rad_dino"))["families"] == ["rad_dino", "mi2"]  # canonical order
    assert P.demo_settings(60, 0, 128, ("mi2",)) != P.demo_settings(60, 0, 128)
    for bad in [("dino",), ()]:
        with pytest.raises(UsageError) as exc:
            P.demo_settings(60, 0, 128, bad)
        assert exc.value.code == "demo.bad_family"


# -- the command ---------------------------------------------------------------------------------------------------
def test_command_prints_the_summary_and_where_the_report_is(cli, monkeypatch, tmp_path):
    summary = {
        "out": str(tmp_path), "report": str(tmp_path / "report" / "index.html"), "wall_s": 12.0,
        "unavailable": {"export-mi2": "`radadapt export`"},
        "families": {"rad_dino": {"name": "RAD-DINO", "rows": [{
            "task": "devices macro AUROC (5 labels)", "baseline": {"point": 0.7, "low": 0.65, "high": 0.75},
            "adapted": {"point": 0.8, "low": 0.76, "high": 0.84},
            "difference": {"point": 0.1, "low": 0.05, "high": 0.15, "verdict": "better"}}]}},
    }
    seen = {}

    def fake(out, *, n, seed, **kwargs):
        seen.clear()
        seen.update(out=out, n=n, seed=seed, **kwargs)
        return summary

    monkeypatch.setattr(P, "run_demo", fake)
    res = cli("demo", "--out", tmp_path, "--n", "100", "--seed", "2")
    assert res.exit_code == 0, res.stderr
    assert seen == {"out": tmp_path, "n": 100, "seed": 2}
    assert "0.800" in res.stdout and "+0.100" in res.stdout and "better" in res.stdout
    assert "export-mi2: not available in this radadapt version" in res.stdout
    assert res.stdout.strip().endswith(f"Open {tmp_path / 'report' / 'index.html'} in a browser")
    res = cli("demo", "--out", tmp_path, "--json")
    assert json.loads(res.stdout) == summary
    assert seen["n"] == P.DEFAULT_N  # the CLI's default is the one docs/demo.md measures
    res = cli("demo", "--out", tmp_path, "--model", "mi2", "--json")
    assert res.exit_code == 0 and seen["families"] == ("mi2",)
    res = cli("demo", "--out", tmp_path, "--model", "dino")
    assert res.exit_code != 0 and "demo.bad_family" in res.stderr


# -- the real journey, end to end ------------------------------------------------------------------------------
# Categories of phi.json that cannot occur innocently (docs/demo_archive.md "phi.json"); dates and times can.
UNAMBIGUOUS = ("names", "ids", "accession_numbers", "uids", "institutions", "addresses", "phones", "physicians",
               "other")
_TEXT_RUN = re.compile(rb"(?:[\x20-\x7e]|[\xc2-\xf4][\x80-\xbf]{1,3}){6,}")  # printable ASCII / UTF-8, 6 or more


def _trie_pattern(words: set[str]) -> str:
    """One regex matching any of ``words``, as a character trie: a search costs about one pass over the text,
    however many words (a plain alternation would try every word at every position)."""
    trie: dict = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def render(node: dict) -> str:
        if "" in node:  # a whole word ends here: a match, whatever follows
            return ""
        alts = [re.escape(ch) + render(child) for ch, child in sorted(node.items())]
        return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"

    return render(trie)


def planted_phi_in(root: Path, phi: dict[str, list[str]], skip: list[Path]) -> list[tuple[str, str]]:
    """(file, identifier category) for every planted identifier found in any file under ``root`` outside
    ``skip``: the printable runs of every file, binary ones included, are searched for each string and its
    JSON-escaped form."""
    category = {}
    for cat in UNAMBIGUOUS:
        for s in phi.get(cat, []):
            if len(s) >= 6:
                category[s] = category[json.dumps(s)[1:-1]] = cat
    pattern = re.compile(_trie_pattern(set(category)))
    hits = set()
    for dirpath, _, names in os.walk(root):
        d = Path(dirpath)
        if any(d == s or s in d.parents for s in skip):
            continue
        for name in names:
            runs = "\n".join(r.decode("utf-8", "ignore") for r in _TEXT_RUN.findall((d / name).read_bytes()))
            hits |= {(str((d / name).relative_to(root)), category[m.group(0)]) for m in pattern.finditer(runs)}
    return sorted(hits)


def test_planted_phi_scan_finds_what_it_should(tmp_path):
    phi = {"names": ["QUIRINUS Bartholomew", "Zwölfhausen"], "ids": ["MRN:ZQ00463181X"], "dates": ["01/01/1974"]}
    (tmp_path / "a.json").write_text(json.dumps({"x": "Zwölfhausen"}))  # escaped by json.dumps
    (tmp_path / "b.bin").write_bytes(b"\x00\x01MRN:ZQ00463181X\xff")
    (tmp_path / "c.txt").write_text("01/01/1974 QUIRINUS")  # a date (ambiguous) and half a name
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "audit.txt").write_text("QUIRINUS Bartholomew")
    found = planted_phi_in(tmp_path, phi, skip=[tmp_path / "private"])
    assert sorted(found) == [("a.json", "names"), ("b.bin", "ids")]


@pytest.mark.slow
def test_the_whole_journey(tmp_path):
    """`radadapt demo` exactly as a newcomer runs it (defaults: n, seed, size, config, training, both families), and
    the issue's bar: each adapted family beats its open weights on the planted findings AND the planted devices,
    with the paired 95% CI above 0 (docs/demo.md "What the demo shows"; about 5 minutes on 2 cores)."""
    out = tmp_path / "demo"
    summary = P.run_demo(out)
    layout = P.DemoLayout(out)
    assert summary["unavailable"] == {} and list(summary["families"]) == ["rad_dino", "mi2"]
    for fam in P.FAMILIES:
        for path in [layout.report(fam) / "report.html", layout.export(fam) / "provenance.json"]:
            assert path.is_file(), path
        assert f"{P.SLUG[fam]}/report.html" in (layout.reports / "index.html").read_text()
    assert (layout.store / "labels.json").is_file()

    for fam, entry in summary["families"].items():
        better = []  # tasks with the adapted model above its starting point, paired CI excluding 0
        for row in entry["rows"]:
            d = row["difference"]
            if d and d["verdict"] == "better":
                assert d["low"] > 0 and row["adapted"]["point"] > row["baseline"]["point"]
                better.append(row["task"])
        assert {t.split()[0] for t in better if "macro AUROC" in t and "zero-shot" not in t} == {"findings",
                                                                                              "devices"}, (fam, better)

    phi = json.loads((layout.hospital / "phi.json").read_text(encoding="utf-8"))
    assert planted_phi_in(out, phi, skip=[layout.hospital, layout.private]) == []

    again = P.run_demo(out)  # a finished demo reruns nothing and reports the same
    assert again["families"] == summary["families"]


# -- the summary and the index page, on real benchmark output (the report stage's committed fixture) -----------
def test_summary_and_index_read_the_numbers_from_results_json(tmp_path):
    from radadapt.demo.outcome import summarise_demo, write_index

    fixture = Path(__file__).parents[1] / "report" / "fixture" / "bench" / "results.json"
    text = fixture.read_text(encoding="utf-8").replace('"candidate-1"', '"candidate"')  # the demo has one candidate
    layout = P.DemoLayout(tmp_path / "demo")
    (layout.bench("rad_dino")).mkdir(parents=True)
    (layout.bench("rad_dino") / "results.json").write_text(text, encoding="utf-8")
    stages = {"report": {"status": "done"}, "site": {"status": "done", "wall_s": 0.1, "cpu_s": 0.1},
              "train-rad-dino": {"status": "done", "wall_s": 60.0, "cpu_s": 70.0}}
    state = {"format": P.STATE_FORMAT, "settings": P.demo_settings(600, 0, 256, ("rad_dino",)), "stages": stages}
    (layout.root / P.STATE_FILE).write_text(json.dumps(state))
    summary = summarise_demo(layout, state)
    assert list(summary["families"]) == ["rad_dino"] and summary["wall_s"] == 60.1

    raw = json.loads(text)
    probe = raw["headline_probe"]
    rows = {r["group"]: r for r in summary["families"]["rad_dino"]["rows"] if "macro" in r["task"]}
    for mac in raw["classification"]["macro"]:
        want = mac["differences"]["candidate"][probe]["auroc"]
        got = rows[mac["group"]]
        assert got["difference"]["point"] == want["point"] and got["difference"]["verdict"] == want["verdict"]
        assert got["baseline"]["point"] == mac["results"]["baseline"][probe]["auroc"]["point"]
    html = write_index(layout).read_text(encoding="utf-8")
    first = next(iter(rows.values()))
    assert f"{first['adapted']['point']:.3f}" in html and "Not benchmarked" not in html
    assert html.index(">site<") < html.index(">train-rad-dino<") < html.index(">report<")  # plan order
