"""Whole-word, leftmost-longest phrase matching and exclusions (radadapt/labels/matcher.py)."""

from __future__ import annotations

from radadapt.labels import matcher as m


def _table():
    t = m.PhraseTable()
    t.add(("tube",), (m.DEVICE, 0, None))
    t.add(("chest", "tube"), (m.DEVICE, 1, None))
    t.add(("port",), (m.DEVICE, 2, None))
    t.add(("side", "port"), (m.EXCLUDE,))
    t.add(("pleural", "effusion"), (m.FINDING, 0))
    t.add(("effusion",), (m.FINDING, 0))
    t.add(("no",), (m.TRIGGER, "negation", "forward", None))
    t.add(("no",), (m.TRIGGER, "negation", "forward", None))  # duplicates are merged
    return t.compile()


def test_leftmost_longest_whole_tokens():
    matcher = _table()
    toks = "no tuberculosis ; the report shows chest tube and pleural effusion with side port".split()
    found = [(x.start, x.end, x.entries) for x in matcher.find(toks)]
    assert found == [
        (0, 1, ((m.TRIGGER, "negation", "forward", None),)),
        (6, 8, ((m.DEVICE, 1, None),)),  # "chest tube", not "tube"
        (9, 11, ((m.FINDING, 0),)),  # "pleural effusion" once, not also "effusion"
        (12, 14, ((m.EXCLUDE,),)),  # "side port" swallows "port"
    ]


def test_exclusion_overrides_the_same_phrase():
    t = m.PhraseTable()
    t.add(("lead",), (m.DEVICE, 0, None))
    t.add(("lead",), (m.EXCLUDE,))
    assert t.compile().find(["lead"])[0].entries == ((m.EXCLUDE,),)
