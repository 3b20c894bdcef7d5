"""Cleaning, sections and sentences (radadapt/labels/text.py)."""

from __future__ import annotations

import pytest

from radadapt.labels.text import (PATH_BODY, PATH_EMPTY, PATH_SECTIONS, PATH_WHOLE, clean, mark_line_breaks,
                                  mostly_capitals, split_sections)


@pytest.fixture(scope="module")
def schema():
    from radadapt.labels.schema import load_schema

    return load_schema()


def sections(schema, text):
    parts, path = split_sections(text, schema.sections, mostly_capitals(text))
    return [" ".join(p.split()) for p in parts], path


def test_section_paths(schema):
    parts, path = sections(schema, "INDICATION: r/o pneumonia.\nFINDINGS: Lungs clear.\nIMPRESSION: Normal.")
    assert path == PATH_SECTIONS and parts == ["Lungs clear.", "Normal."]
    parts, path = sections(schema, "Lungs clear. No effusion.")
    assert path == PATH_WHOLE and parts == ["Lungs clear. No effusion."]
    # Only skipped headings: the text after them is read, the indication is not.
    parts, path = sections(schema, "History: Chest pain\nComparison: None.\nThe heart is enlarged.")
    assert path == PATH_BODY and parts == ["The heart is enlarged."]
    assert sections(schema, "   \n ") == ([], PATH_EMPTY)
    assert sections(schema, "INDICATION: cough.") == ([], PATH_EMPTY)


def test_wrapped_indication_does_not_leak_into_the_findings(schema):
    text = "INDICATION: 65M with fever, evaluate for\npneumonia.\nThe lungs are clear."
    parts, path = sections(schema, text)
    assert path == PATH_BODY and parts == ["The lungs are clear."]


def test_heading_on_its_own_line_and_inline_single_line_report(schema):
    parts, path = sections(schema, "FINAL REPORT\nIMPRESSION\nNo pneumothorax.")
    assert path == PATH_SECTIONS and parts == ["No pneumothorax."]
    parts, _ = sections(schema, "INDICATION: Fever. FINDINGS: Patchy opacity. IMPRESSION: Pneumonia.")
    assert parts == ["Patchy opacity.", "Pneumonia."]
    # A heading word inside a sentence (no colon) is not a heading.
    parts, path = sections(schema, "There are similar findings\nin the left lung.")
    assert path == PATH_WHOLE


def test_sentences_abbreviations_decimals_and_wraps(schema):
    norm = schema.normalizer
    sents = norm.sentences(mark_line_breaks("ETT tip 4.5 cm above the carina, approx. 2 cm higher. Dr. Who agrees!"
                                            " E.T. tube ok", False), 200)
    assert sents[0] == ["ett", "tip", "4.5", "cm", "above", "the", "carina", ",", "approx", "2", "cm", "higher"]
    assert sents[1][:2] == ["dr", "who"] and sents[2] == ["e", "t", "tube", "ok"]
    wrapped = mark_line_breaks("There is no focal consolidation, pleural\neffusion, or pneumothorax.\nThe heart is "
                               "mildly\nenlarged.\n- Bullet one\n1. Item", False)
    sents = norm.sentences(wrapped, 200)
    assert sents[0][-4:] == ["effusion", ",", "or", "pneumothorax"]
    assert sents[1] == ["the", "heart", "is", "mildly", "enlarged"]
    assert sents[2] == ["bullet", "one"]


def test_all_capitals_lines_are_wraps(schema):
    text = "THERE IS NO FOCAL CONSOLIDATION OR\nPLEURAL EFFUSION. HEART SIZE IS NORMAL."
    assert mostly_capitals(text)
    sents = schema.normalizer.sentences(mark_line_breaks(text, True), 200)
    assert sents[0][-2:] == ["pleural", "effusion"]


def test_normalisation_plurals_aliases_hyphens_shorthand(schema):
    norm = schema.normalizer
    assert norm.phrase("Pleural effusions") == ["pleural", "effusion"]
    assert norm.phrase("opacities; Swan-Ganz") == ["opacity", ";", "swan", "ganz"]
    assert norm.phrase("oedema haemothorax pnuemothorax") == ["edema", "hemothorax", "pneumothorax"]
    assert norm.phrase("atelectasis process bronchus masses") == ["atelectasis", "process", "bronchus", "mass"]
    assert norm.phrase("w/o effusion, s/p CABG, can't exclude, isn't") == [
        "without", "effusion", ",", "status", "post", "cabg", ",", "cannot", "exclude", ",", "is", "not"]
    assert norm.phrase("Ryle's tube") == ["ryle", "tube"]


def test_long_runs_are_cut_and_cleaning_is_bounded(schema):
    sents = schema.normalizer.sentences("word " * 1000, 200)
    assert [len(s) for s in sents] == [200] * 5
    text, truncated = clean("a\r\nb\x07c" + "x" * 50, max_chars=10)
    assert truncated and text == "a\nb c" + "x" * 4
