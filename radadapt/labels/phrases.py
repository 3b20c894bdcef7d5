"""The schema's phrase syntax: "(a|b|)" groups expanded into token tuples.

    "(right |left |)chest tube"  ->  ("right", "chest", "tube"), ("left", "chest", "tube"), ("chest", "tube")

Groups list alternatives; an empty alternative makes a group optional; groups do not nest; "|" outside a group is a
mistake. Tokens come from the same normaliser as report text, so a phrase matches whatever spelling variant,
plural or hyphenation a report uses. When groups sit on word boundaries each alternative is tokenised once and the
token lists are combined (the packaged schema expands to ~25,000 phrases in well under a second).
"""

from __future__ import annotations

import itertools
from typing import Callable

MAX_EXPANSIONS = 4096


def _parts(pattern: str) -> list[list[str]]:
    """Split a phrase into literal pieces and "(a|b|)" groups; ValueError with a reason on bad syntax."""
    parts: list[list[str]] = []
    buf, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "(":
            j = pattern.find(")", i)
            if j < 0:
                raise ValueError("unbalanced '('")
            inner = pattern[i + 1 : j]
            if "(" in inner:
                raise ValueError("groups cannot be nested")
            if buf:
                parts.append([buf])
            parts.append(inner.split("|"))
            buf, i = "", j + 1
        elif c == ")":
            raise ValueError("unbalanced ')'")
        elif c == "|":
            raise ValueError("'|' outside a group (write alternatives as (a|b))")
        else:
            buf += c
            i += 1
    if buf:
        parts.append([buf])
    total = 1
    for p in parts:
        total *= len(p)
    if total > MAX_EXPANSIONS:
        raise ValueError(f"expands to {total} phrases (limit {MAX_EXPANSIONS}); split it")
    return parts


def expand_phrase(pattern: str) -> list[str]:
    """Expand "(a|b|)" groups into plain phrases (whitespace collapsed, duplicates and empties dropped)."""
    out = [" ".join("".join(combo).split()) for combo in itertools.product(*_parts(pattern))]
    return [p for p in dict.fromkeys(out) if p]


def _word_joined(parts: list[list[str]]) -> bool:
    """Could two pieces meet inside a word ("pneumo(thorax|nia)")? Then pieces cannot be tokenised alone."""
    for i in range(len(parts)):
        if not any(a[-1:].isalnum() for a in parts[i]):
            continue
        for j in range(i + 1, len(parts)):
            if any(b[:1].isalnum() for b in parts[j]):
                return True
            if "" not in parts[j]:
                break
    return False


def expand_tokens(pattern: str, tokenize: Callable[[str], list[str]]) -> list[tuple[str, ...]]:
    """Token tuples of every expansion; pieces are tokenised once each when groups sit on word boundaries."""
    parts = _parts(pattern)
    if _word_joined(parts):
        combos = [tuple(tokenize(p)) for p in expand_phrase(pattern)]
    else:
        pieces = [[tuple(tokenize(alt)) for alt in part] for part in parts]
        chain = itertools.chain.from_iterable
        combos = [tuple(chain(combo)) for combo in itertools.product(*pieces)]
    return [c for c in dict.fromkeys(combos) if c]
