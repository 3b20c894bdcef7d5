"""Whole-word phrase matching over normalised tokens, all phrases in one pass.

Every schema phrase (findings, devices, triggers, positions, exclusions...) is a tuple of tokens in one table keyed
by its first token. A sentence is scanned once, left to right; at each token the longest phrase starting there wins
and matching resumes after it (leftmost-longest, non-overlapping). Because phrases are token sequences, "tube"
cannot match inside "tuberculosis" nor "port" inside "report"; because longer phrases win, an exclusion such as
"septal lines" or "side port" swallows the shorter device phrase it contains.

The cost is one dictionary lookup per token plus a slice comparison for the few candidates that share a first
token, independent of the number of phrases; ``benchmarks/bench_labels.py`` compares it with one compiled regex
per phrase.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

# Entry kinds (first item of every entry tuple).
FINDING = 0  # (FINDING, finding_index)
OTHER = 1  # (OTHER,)  an abnormality without a column (cancels No Finding)
DEVICE = 2  # (DEVICE, device_index, implied_state or None)
ANATOMY = 3  # (ANATOMY, finding_index)
PREDICATE = 4  # (PREDICATE, finding_index, polarity 1 | 0 | -1)
TRIGGER = 5  # (TRIGGER, kind, direction, window or None)
TERM = 6  # (TERM, hard: bool)
POSITION = 7  # (POSITION, device_indices frozenset or None for all, value, ok_cm (lo, hi) or None)
PSEUDO = 8  # (PSEUDO,)
EXCLUDE = 9  # (EXCLUDE,)

Entry = tuple


class Match(NamedTuple):
    start: int  # token index
    end: int  # exclusive
    entries: tuple[Entry, ...]


class PhraseTable:
    """Phrases (token tuples) to entries, indexed by first token, longest first."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, ...], list[Entry]] = {}

    def add(self, tokens: Iterable[str], entry: Entry) -> None:
        key = tuple(tokens)
        bucket = self._entries.setdefault(key, [])
        if entry not in bucket:
            bucket.append(entry)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> Iterable[tuple[tuple[str, ...], list[Entry]]]:
        return self._entries.items()

    def compile(self) -> "PhraseMatcher":
        index: dict[str, list[tuple[int, list[str], tuple[Entry, ...]]]] = {}
        for key, entries in self._entries.items():
            # An exclusion overrides every other meaning of the very same phrase.
            if any(e[0] == EXCLUDE for e in entries):
                entries = [(EXCLUDE,)]
            index.setdefault(key[0], []).append((len(key), list(key), tuple(entries)))
        for cands in index.values():
            cands.sort(key=lambda c: -c[0])
        return PhraseMatcher(index)


class PhraseMatcher:
    """Finds leftmost-longest, non-overlapping phrase matches in a token list."""

    def __init__(self, index: dict[str, list[tuple[int, list[str], tuple[Entry, ...]]]]):
        self._index = index

    def find(self, tokens: list[str]) -> list[Match]:
        index = self._index
        out: list[Match] = []
        i, n = 0, len(tokens)
        while i < n:
            cands = index.get(tokens[i])
            if cands is not None:
                for length, phrase, entries in cands:
                    if length == 1 or (i + length <= n and tokens[i : i + length] == phrase):
                        out.append(Match(i, i + length, entries))
                        i += length
                        break
                else:
                    i += 1
            else:
                i += 1
        return out
