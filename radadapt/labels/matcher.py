"""Whole-word phrase matching over normalised tokens, all phrases in one pass.

Every schema phrase (findings, devices, triggers, positions, exclusions...) is a tuple of tokens in one table keyed
by its first token. A sentence is scanned once, left to right; at each token the longest phrase starting there wins
and matching resumes after it (leftmost-longest, non-overlapping). Because phrases are token sequences, "tube"
cannot match inside "tuberculosis" nor "port" inside "report"; because longer phrases win, an exclusion such as
"septal lines" or "side port" swallows the shorter device phrase it contains.

Phrases live in a token trie, so the cost per token is one dictionary lookup per word of the longest phrase that
starts there, independent of the number of phrases; ``benchmarks/bench_labels.py`` compares it with one compiled
regex per phrase.
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
SIGN = 10  # (SIGN, finding_index)  an indirect mention that yields to a direct one in the same sentence
GROUP = 11  # (GROUP, device_indices frozenset)  "lines and tubes": when negated, those devices are absent
LINK = 12  # (LINK,)  "may represent", "consistent with": a description linked to a device it describes

Entry = tuple


class Match(NamedTuple):
    start: int  # token index
    end: int  # exclusive
    entries: tuple[Entry, ...]


class PhraseTable:
    """Phrases (token tuples) to entries; ``compile`` builds the trie."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, ...], list[Entry]] = {}

    def add(self, tokens: tuple[str, ...], entry: Entry) -> None:
        bucket = self._entries.get(tokens)
        if bucket is None:
            self._entries[tokens] = [entry]
        elif entry not in bucket:
            bucket.append(entry)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> Iterable[tuple[tuple[str, ...], list[Entry]]]:
        return self._entries.items()

    def compile(self) -> "PhraseMatcher":
        root: dict = {}
        for key, entries in self._entries.items():
            # An exclusion overrides every other meaning of the very same phrase.
            if any(e[0] == EXCLUDE for e in entries):
                entries = [(EXCLUDE,)]
            node = root
            for tok in key:
                node = node.setdefault(tok, {})
            node[_END] = tuple(entries)
        return PhraseMatcher(root)


_END = ""  # trie key holding a phrase's entries (no token is empty)


class PhraseMatcher:
    """Finds leftmost-longest, non-overlapping phrase matches in a token list (a token trie)."""

    def __init__(self, root: dict):
        self._root = root

    def find(self, tokens: list[str]) -> list[Match]:
        root = self._root
        out: list[Match] = []
        i, n = 0, len(tokens)
        while i < n:
            node = root.get(tokens[i])
            if node is None:
                i += 1
                continue
            best = node.get(_END)
            best_end = i + 1
            j = i + 1
            while j < n:
                node = node.get(tokens[j])
                if node is None:
                    break
                j += 1
                entries = node.get(_END)
                if entries is not None:
                    best, best_end = entries, j
            if best is None:
                i += 1
            else:
                out.append(Match(i, best_end, best))
                i = best_end
        return out
