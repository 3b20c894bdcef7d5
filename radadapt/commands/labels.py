"""`radadapt labels`: label reports in a store (default), in any CSV (`extract`), score them (`eval`), check a schema."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from radadapt.commands import DefaultCommandGroup, JsonOpt, WorkersOpt, examples, setup_output

SchemaOpt = Annotated[Optional[Path], typer.Option("--schema", help="A site's copy of the labels schema YAML "
                                                   "(default: [labels] schema_file, else the packaged one).")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="Site config (default: $RADADAPT_CONFIG or "
                                                   "./radadapt.toml).")]
PluginOpt = Annotated[Optional[Path], typer.Option("--plugin-model", help="Local transformers classifier directory "
                                                   "that refines uncertain labels (off by default).")]
ThresholdOpt = Annotated[Optional[float], typer.Option("--plugin-threshold", help="Minimum probability for the "
                                                       "plugin to decide (default 0.9).")]


def _settings(config: Path | None, schema: Path | None, workers: int | None):
    from radadapt.config import load_config

    cfg = load_config(config)
    labels = cfg.labels
    schema_path = schema or (cfg.resolve(labels.schema_file) if labels.schema_file else None)
    n = workers or labels.workers or os.cpu_count() or 1
    return cfg, labels, schema_path, n


def _refiner(cfg, labels, schema_path, plugin: Path | None, threshold: float | None):
    model = plugin or (cfg.resolve(labels.plugin_model) if labels.plugin_model else None)
    if model is None:
        return None
    from radadapt.labels.plugin import TransformersRefiner
    from radadapt.labels.schema import load_schema

    return TransformersRefiner(model, load_schema(schema_path), threshold=threshold or labels.plugin_threshold)


def _table(title: str, columns: list[str], rows: list):
    from radadapt import console

    from rich import box

    table = console.make_table(title, columns, rows)
    for i, col in enumerate(table.columns):  # names and numbers stay whole in a narrow terminal
        col.no_wrap = True
        col.min_width = max([len(str(columns[i]))] + [len(str(r[i])) for r in rows]) if i else None
    table.box, table.pad_edge = box.SIMPLE_HEAD, False  # fewer border characters: fits 80 columns
    return table


def _summary_table(result: dict, title: str):
    """Counts per column: positive (1 / present), uncertain, negative (0 / absent), removed, and positions."""
    rows = []
    for column, v in result["counts"].items():
        if v:
            cells = [v.get("1", v.get("present", "")), v.get("-1", v.get("uncertain", "")),
                     v.get("0", v.get("absent", "")), v.get("removed", ""), v.get("ok", ""),
                     v.get("malpositioned", ""), v.get("unknown", "")]
            rows.append([column, *cells])
    return _table(title, ["column", "pos", "unc", "neg", "removed", "ok", "malpos", "unknown"], rows)


def register(app: typer.Typer) -> None:
    labels_app = typer.Typer(
        cls=DefaultCommandGroup,
        no_args_is_help=True,
        rich_markup_mode="markdown",
        help="Structured labels from report text, offline: 14 CheXpert findings + 8 more, 11 lines/tubes with tip "
             "position. `radadapt labels STORE` labels an ingest store (same as `radadapt labels store STORE`); "
             "`extract` labels any report CSV; `eval` scores labels against a gold file; `schema` checks a schema.",
    )

    @labels_app.command(
        "store",
        epilog=examples("radadapt labels /data/store", "radadapt labels /data/store --workers 8 --schema "
                        "site/labels_schema.yaml", "radadapt labels store /data/store --json"),
    )
    def store_cmd(
        store: Annotated[Path, typer.Argument(help="An ingest store (has store.json and manifest.jsonl).")],
        schema: SchemaOpt = None,
        workers: WorkersOpt = None,
        plugin_model: PluginOpt = None,
        plugin_threshold: ThresholdOpt = None,
        config: ConfigOpt = None,
        json_output: JsonOpt = False,
    ) -> None:
        """Label each study's report once and write STORE/labels.csv (study_key first) and STORE/labels.json.

        Every study in the manifest gets one row; a study without a report gets a row of blanks. labels.json lists
        the columns, counts per value, the section path used per report and the schema's sha256.
        """
        from radadapt import console
        from radadapt.labels.extract import label_store

        setup_output(json_output)
        cfg, labels, schema_path, n = _settings(config, schema, workers)
        refiner = _refiner(cfg, labels, schema_path, plugin_model, plugin_threshold)
        with console.progress() as bar:
            task = bar.add_task("labelling studies", total=None)
            result = label_store(store, schema_path=schema_path, workers=n, max_chars=labels.max_report_chars,
                                 refiner=refiner, on_row=lambda: bar.advance(task))
        if refiner is not None:
            result["plugin"] = {"asked": refiner.asked, "changed": refiner.changed, "model": refiner.fingerprint}
        text = (f"{result['studies']} studies ({result['with_report']} with a report, {result['without_report']} "
                f"without: blank rows) -> {result['labels_csv']}\nsection paths: {result['section_paths']}")
        console.emit(result, table=_summary_table(result, "label counts (pos = 1 / present, neg = 0 / absent)"),
                     text=text)

    @labels_app.command(
        "extract",
        epilog=examples("radadapt labels extract reports.csv --out labels.csv --id-column accession_number",
                        "radadapt labels extract reports.csv --out labels.csv --text-column REPORT --workers 4",
                        "radadapt labels extract old_ris.csv --out labels.csv --encoding cp1252"),
    )
    def extract_cmd(
        reports: Annotated[Path, typer.Argument(help="CSV with one report per row (UTF-8 unless --encoding).")],
        out: Annotated[Path, typer.Option("--out", help="Output CSV (written atomically).")],
        text_column: Annotated[Optional[str], typer.Option("--text-column", help="Report column "
                                                           "(default: [labels] text_column, report_text).")] = None,
        id_column: Annotated[Optional[str], typer.Option("--id-column", help="Column carried through as the first "
                                                         "output column (default: a 1-based `row` number).")] = None,
        encoding: Annotated[Optional[str], typer.Option("--encoding", help="Input encoding (default utf-8).")] = None,
        on_bad_bytes: Annotated[Optional[str], typer.Option("--on-bad-bytes", help="error (stop, naming the line) "
                                                            "or replace (U+FFFD, counted).")] = None,
        section_path_column: Annotated[bool, typer.Option("--section-path-column", help="Add a last column saying "
                                                          "which text was read: sections / body / whole_text / "
                                                          "empty.")] = False,
        schema: SchemaOpt = None,
        workers: WorkersOpt = None,
        plugin_model: PluginOpt = None,
        plugin_threshold: ThresholdOpt = None,
        config: ConfigOpt = None,
        json_output: JsonOpt = False,
    ) -> None:
        """Label every row of a report CSV: one output row per input row, in order, id column first.

        Empty reports give a row of blanks; nothing is dropped. Columns: the schema's findings (1 / 0 / -1 /
        blank), devices (present / removed / uncertain / absent / blank) and `<device> position`.
        """
        from radadapt import console
        from radadapt.labels.extract import label_csv

        setup_output(json_output)
        cfg, labels, schema_path, n = _settings(config, schema, workers)
        refiner = _refiner(cfg, labels, schema_path, plugin_model, plugin_threshold)
        with console.progress() as bar:
            task = bar.add_task("labelling reports", total=None)
            result = label_csv(reports, out, text_column=text_column or labels.text_column, id_column=id_column,
                               schema_path=schema_path, workers=n, encoding=encoding or labels.encoding,
                               bad_bytes=on_bad_bytes or labels.on_bad_bytes, max_chars=labels.max_report_chars,
                               with_section_path=section_path_column, refiner=refiner,
                               on_row=lambda: bar.advance(task))
        if refiner is not None:
            result["plugin"] = {"asked": refiner.asked, "changed": refiner.changed, "model": refiner.fingerprint}
        text = (f"{result['rows_in']} rows in, {result['rows_out']} rows out ({result['empty_reports']} empty "
                f"reports: blank rows) -> {result['output']}\nsection paths: {result['section_paths']}")
        if result["replaced_lines"]:
            text += f"\n{result['replaced_lines']} lines had undecodable bytes (replaced)"
        console.emit(result, table=_summary_table(result, "label counts (pos = 1 / present, neg = 0 / absent)"),
                     text=text)

    @labels_app.command(
        "eval",
        epilog=examples("radadapt labels eval labels.csv gold.csv --id-column accession_number",
                        "radadapt labels eval labels.csv chexpert_gold.csv --map 'Pleural Effusion=Pleural Effusion' "
                        "--map ETT='endotracheal tube'", "radadapt labels eval pred.csv gold.csv --json"),
    )
    def eval_cmd(
        pred: Annotated[Path, typer.Argument(help="Predicted labels CSV (e.g. from `labels extract`).")],
        gold: Annotated[Path, typer.Argument(help="Gold labels CSV (CheXpert convention 1 / 0 / -1 / blank "
                                             "accepted; devices present / removed / uncertain / absent).")],
        mapping: Annotated[Optional[list[str]], typer.Option("--map", help="GOLDCOL=PREDCOL for differently named "
                                                             "columns (repeatable).")] = None,
        id_column: Annotated[Optional[str], typer.Option("--id-column", help="Join column present in both "
                                                         "(default: the gold file's first column).")] = None,
        confusion: Annotated[Optional[list[str]], typer.Option("--confusion", help="Also print this label's "
                                                               "confusion table (repeatable).")] = None,
        json_output: JsonOpt = False,
    ) -> None:
        """Per-label precision, recall, F1 and support (positive vs not), full-value accuracy and macro-F1,
        macro and micro averages, and confusion tables."""
        from radadapt import console
        from radadapt.labels.evaluate import evaluate, parse_mapping

        setup_output(json_output)
        result = evaluate(pred, gold, mapping=parse_mapping(mapping or []), id_column=id_column)

        def f(x):
            return "" if x is None else f"{x:.2f}"

        short = {"finding": "find", "device": "dev", "position": "pos"}
        rows = [[name, short[m["kind"]], m["presence"]["support"], f(m["presence"]["precision"]), f(m["presence"]["recall"]),
                 f(m["presence"]["f1"]), f(m["values"]["accuracy"]), f(m["values"]["macro_f1"])]
                for name, m in result["labels"].items()]
        for group, a in result["averages"].items():
            rows.append([f"macro {group}", "", a["labels_with_support"], f(a["macro"]["precision"]),
                         f(a["macro"]["recall"]), f(a["macro"]["f1"]), f(a["accuracy"]), f(a["macro_value_f1"])])
            rows.append([f"micro {group}", "", a["micro"]["tp"] + a["micro"]["fn"], f(a["micro"]["precision"]),
                         f(a["micro"]["recall"]), f(a["micro"]["f1"]), "", ""])
        table = _table(f"{result['rows']} rows joined on '{result['id_column']}'",
                       ["label", "kind", "n+", "P", "R", "F1", "acc", "vF1"], rows)
        lines = ["n+ = gold positives (1 / present / malpositioned); P, R, F1 = presence; acc, vF1 = accuracy and "
                 "macro-F1 over all values (blank included)"]
        for name in confusion or []:
            if name not in result["labels"]:
                from radadapt.errors import UsageError

                raise UsageError("labels.bad_option", f"--confusion: no evaluated label '{name}'")
            conf = result["labels"][name]["values"]["confusion"]
            order = list(conf)
            lines.append(f"{name}: gold (rows) x predicted (columns)\n" + "\n".join(
                f"  {g:>14} " + " ".join(f"{conf[g][p]:>8}" for p in order) for g in order)
                + "\n  " + " " * 15 + " ".join(f"{p:>8}" for p in order))
        if result["missing_in_pred"] or result["unmatched_gold_columns"]:
            lines.append(f"{result['missing_in_pred']} gold rows missing from predictions (scored as blank); "
                         f"gold columns not evaluated: {result['unmatched_gold_columns'] or 'none'}")
        console.emit(result, table=table, text="\n".join(lines))

    @labels_app.command(
        "schema",
        epilog=examples("radadapt labels schema", "radadapt labels schema --copy-to site/labels_schema.yaml",
                        "radadapt labels schema site/labels_schema.yaml"),
    )
    def schema_cmd(
        file: Annotated[Optional[Path], typer.Argument(help="Schema to check (default: the packaged one).")] = None,
        copy_to: Annotated[Optional[Path], typer.Option("--copy-to", help="Write a copy of the packaged schema "
                                                        "here, to edit.")] = None,
        json_output: JsonOpt = False,
    ) -> None:
        """Check a labels schema (names the first mistake) or copy the packaged one for a site to edit."""
        from radadapt import atomic, console
        from radadapt.labels.schema import default_schema_path, load_schema

        setup_output(json_output)
        if copy_to is not None:
            if copy_to.exists():
                from radadapt.errors import UsageError

                raise UsageError("labels.exists", f"{copy_to} exists; not overwriting it")
            atomic.write_bytes(copy_to, default_schema_path().read_bytes())
        s = load_schema(copy_to or file)
        result = {"schema": s.source, "name": s.name, "sha256": s.sha256, "findings": s.findings,
                  "devices": s.devices, "phrases": s.n_phrases, "columns": len(s.columns)}
        console.emit(result, text=f"{s.source}: valid ({len(s.findings)} findings, {len(s.devices)} devices, "
                                  f"{s.n_phrases} phrases after expansion; sha256 {s.sha256[:16]})")

    app.add_typer(labels_app, name="labels")
