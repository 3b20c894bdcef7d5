"""Report text: cleaning, sections, sentences and normalised word tokens.

Everything here is plain ``re`` over the report string, linear in its length. The labeler never sees raw text
after this module: it sees sentences as lists of normalised tokens (lower case, British spellings and common typos
mapped by the schema's ``token_aliases``, plurals folded, hyphens dropped), so "Swan-Ganz catheters" and
"swan ganz catheter" are the same three tokens. Schema phrases go through the very same normaliser.

Sections follow the practice of NegBio's section splitter and the CheXpert labeler's "impression only" option
(research/labelers.md §1-2): indication, history, comparison and technique text never creates a label; when a
report has FINDINGS / IMPRESSION-style headings only those are read; without headings the whole text is read.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Section paths recorded per report (labels.json ``section_paths``).
PATH_SECTIONS = "sections"  # at least one scored heading (findings, impression, ...) was read
PATH_BODY = "body"  # only skipped headings (indication, comparison, ...): the text outside them was read
PATH_WHOLE = "whole_text"  # no headings: the whole report was read
PATH_EMPTY = "empty"  # nothing to read (empty report, or only skipped sections)
SECTION_PATHS = (PATH_SECTIONS, PATH_BODY, PATH_WHOLE, PATH_EMPTY)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SHORTHAND = re.compile(r"(?i)\b(?:w/o\b|s/p\b|w/|can't\b|(\w+)n't\b)")
_BLANK_LINE = re.compile(r"\n[ \t]*\n\s*")
_BULLET_LINE = re.compile(r"\n(?=[ \t]*(?:[-*\u2022\u00b7]|\d{1,2}[.)][ \t]))")
_CAPITAL_LINE = re.compile(r"\n(?=[ \t]*[A-Z])")
_FIRST_SENTENCE_END = re.compile(r"[.!?](?=\s)")
# Words, numbers (decimals kept whole), sentence-ending marks, and punctuation that carries meaning.
_TOKEN = re.compile(r"\d+(?:\.\d+)?|[^\W\d_]+(?:'[^\W\d_]+)?|\.(?=\s|$)|[,;:?/()<>&+=%!\x00]")
_BREAK = "\x00"


def _shorthand(m: re.Match) -> str:
    word = m.group(0).lower()
    if word == "w/o":
        return " without "
    if word == "s/p":
        return " status post "
    if word == "w/":
        return " with "
    if word == "can't":
        return " cannot "
    return f" {m.group(1)} not "


def clean(text: str, max_chars: int) -> tuple[str, bool]:
    """Unicode-normalise, unify newlines, drop control characters; cut to ``max_chars`` (returns truncated?)."""
    truncated = len(text) > max_chars
    if truncated:
        text = text[:max_chars]
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).replace("\u2019", "'").replace("\u2018", "'")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\t", " ")
    if _CONTROL.search(text):
        text = _CONTROL.sub(" ", text)
    return text, truncated


_DROP_UPPER = str.maketrans("", "", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DROP_LOWER = str.maketrans("", "", "abcdefghijklmnopqrstuvwxyz")


def mostly_capitals(text: str) -> bool:
    """All-caps reports (older RIS exports) say nothing with capital letters, so line starts are not sentences."""
    sample = text[:2000]
    upper = len(sample) - len(sample.translate(_DROP_UPPER))
    lower = len(sample) - len(sample.translate(_DROP_LOWER))
    return upper + lower > 20 and upper > 0.7 * (upper + lower)


def mark_line_breaks(text: str, capitals: bool) -> str:
    """Decide which newlines end a sentence: blank lines and bullets always; a capital at a line start too,
    unless the report is all capitals. Other newlines are wraps of fixed-width reports and become spaces."""
    if "\n" not in text:
        return text
    text = _BLANK_LINE.sub(f" {_BREAK} ", text)
    text = _BULLET_LINE.sub(f" {_BREAK} ", text)
    if not capitals:
        text = _CAPITAL_LINE.sub(f" {_BREAK} ", text)
    return text.replace("\n", " ")


# Heading candidates: the words right before a colon, or a line made only of words. Checking candidates against a
# set of names is much faster than one big alternation regex tried at every position.
_COLON = re.compile(r":")
_TAIL = re.compile(r"(?:^|(?<=[\s.;*\u2022-]))((?:[A-Za-z]+[ \t]+){0,4}[A-Za-z]+)[ \t]*$")
_LINE = re.compile(r"(?m)^[ \t]*(?:[-*\u2022][ \t]*)?([A-Za-z][A-Za-z \t]{0,50}?)[ \t]*$")
_WORD = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True)
class SectionRules:
    """Heading names (lower case, single spaces) and which of them are scored."""

    names: frozenset[str]
    scored: frozenset[str]

    @classmethod
    def build(cls, score: list[str], skip: list[str]) -> "SectionRules":
        norm = [" ".join(n.lower().split()) for n in (*score, *skip)]
        return cls(frozenset(norm), frozenset(" ".join(n.lower().split()) for n in score))

    def headings(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, name) of every heading: NAME followed by a colon, or a line holding only NAME."""
        found: dict[int, tuple[int, int, str]] = {}
        names = self.names
        for m in _COLON.finditer(text):
            pos = m.start()
            lo = max(0, pos - 60)
            tail = _TAIL.search(text, lo, pos)
            if tail is None:
                continue
            words = list(_WORD.finditer(text, tail.start(1), tail.end(1)))
            for k in range(len(words)):
                name = " ".join(w.group(0) for w in words[k:]).lower()
                if name in names:
                    found[words[k].start()] = (words[k].start(), pos + 1, name)
                    break
        if "\n" in text:
            for m in _LINE.finditer(text):
                name = " ".join(m.group(1).lower().split())
                if name in names and m.start(1) not in found:
                    found[m.start(1)] = (m.start(1), m.end(), name)
        return [found[k] for k in sorted(found)]


def split_sections(text: str, rules: SectionRules, capitals: bool) -> tuple[list[str], str]:
    """The parts of ``text`` to read, and which section path was used (see the PATH_* constants)."""
    if not text.strip():
        return [], PATH_EMPTY
    heads = rules.headings(text)
    if not heads:
        return [text], PATH_WHOLE
    scored: list[str] = []
    loose: list[str] = []  # unheaded text: after a skipped section's own content ends
    preamble = text[: heads[0][0]]
    for i, (_, end, name) in enumerate(heads):
        body = text[end : heads[i + 1][0] if i + 1 < len(heads) else len(text)]
        if name in rules.scored:
            scored.append(body)
            continue
        rest = _after_skipped(body, capitals)
        if rest.strip():
            loose.append(rest)
    if scored:
        parts = [p for p in scored + loose if p.strip()]
        return parts, PATH_SECTIONS if parts else PATH_EMPTY
    parts = [p for p in [preamble, *loose] if p.strip()]
    return parts, PATH_BODY if parts else PATH_EMPTY


def _after_skipped(body: str, capitals: bool) -> str:
    """Text that follows a skipped section's own content (indication, comparison...) without a new heading.

    Multi-line: the section ends at the first line break that starts a new sentence (previous line ends with
    punctuation, next line starts with a capital or bullet, or a blank line); a wrapped line continues it.
    Single line: it ends at its first sentence.
    """
    lines = body.split("\n")
    if len(lines) == 1:
        m = _FIRST_SENTENCE_END.search(body)
        return body[m.end() :] if m else ""
    for i in range(len(lines) - 1):
        line, nxt = lines[i].rstrip(), lines[i + 1].lstrip()
        if i == 0 and not line.strip():
            continue  # heading on its own line: content starts on the next one
        if capitals or not nxt or line.endswith((".", "?", "!", ":")) or nxt[:1].isupper() or nxt[:1] in "-*\u2022":
            return "\n".join(lines[i + 1 :])
    return ""


class TokenNormalizer:
    """Maps raw word tokens to normalised ones (lower case, aliases, plurals folded), with a bounded cache."""

    _CACHE_LIMIT = 200_000

    def __init__(self, aliases: dict[str, str], abbreviations: frozenset[str]):
        self.aliases = aliases
        self.abbreviations = abbreviations
        self._cache: dict[str, str] = {}

    def word(self, raw: str) -> str:
        w = raw.lower()
        if w.endswith("'s"):
            w = w[:-2]
        w = self.aliases.get(w, w)
        n = len(w)
        if n > 3 and w[-1] == "s" and not w[0].isdigit():
            if w.endswith("ies") and n > 4:
                w = w[:-3] + "y"
            elif w.endswith(("sses", "xes", "ches", "shes")):
                w = w[:-2]
            elif not w.endswith(("ss", "us", "is")):
                w = w[:-1]
            w = self.aliases.get(w, w)
        return w

    def sentences(self, text: str, max_tokens: int) -> list[list[str]]:
        """Split ``text`` into sentences of normalised tokens (runs longer than ``max_tokens`` are cut)."""
        if "/" in text or "'" in text:
            text = _SHORTHAND.sub(_shorthand, text)
        cache = self._cache
        if len(cache) > self._CACHE_LIMIT:
            cache.clear()
        out: list[list[str]] = []
        cur: list[str] = []
        prev = ""
        for raw in _TOKEN.findall(text):
            if raw == "." or raw == "!" or raw == _BREAK:
                # A full stop after an abbreviation ("approx.", "Dr.") or an initial ("E.T.") is not an ending.
                if raw == "." and (prev in self.abbreviations or (len(prev) == 1 and prev.isalpha())):
                    continue
                if cur:
                    out.append(cur)
                    cur = []
                prev = ""
                continue
            tok = cache.get(raw)
            if tok is None:
                tok = self.word(raw) if raw[0].isalpha() else raw
                cache[raw] = tok
            cur.append(tok)
            prev = tok
            if len(cur) >= max_tokens:
                out.append(cur)
                cur = []
        if cur:
            out.append(cur)
        return out

    def phrase(self, text: str) -> list[str]:
        """Tokens of a schema phrase (same normalisation as reports; full stops and line breaks are ignored)."""
        if "/" in text or "'" in text:
            text = _SHORTHAND.sub(_shorthand, text)
        out = []
        for raw in _TOKEN.findall(text):
            if raw in (".", "!", _BREAK):
                continue
            out.append(self.word(raw) if raw[0].isalpha() else raw)
        return out
