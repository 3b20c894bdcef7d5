"""The identifier scan: every word and phrase of an export, tested against the site's private audit.

Ingest keeps no identifier in clear. It keeps keyed fingerprints of every identifier token and phrase seen in any
DICOM header (names, IDs, accession numbers, places, phones, e-mails) in ``<private>/<store_id>.identifiers.txt``
(docs/store_format.md, "Private audit"). Here each exported text is cut into tokens exactly as that contract
says (Unicode NFKC, ``casefold``, the token pattern below), every run of 1..``max_phrase`` tokens is fingerprinted
with the site key, and the fingerprints are looked up in the sorted, fixed-width audit file with one vectorised
binary search over a memory map (the file can hold 10^7 lines; nothing is loaded whole).

A match is a *finding* unless it is explained (docs/export.md, "The identifier scan"):

- a token or phrase of radadapt's own public text (the model-card template, the config and results schemas,
  enum values): words radadapt writes for every site carry no information about this one;
- structure of a file radadapt generated (JSON/YAML keys, numbers it computed such as counts and sizes);
- a number of fewer than 4 digits (ingest's own threshold for a recognisable identifier; a StudyID of "1"
  must not block every export that prints a 1), or a token of one character.

Findings name the file, the line and the kind of identifier, never the identifier itself.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from radadapt.errors import PrivacyError

FP_HEX = 32
KIND_WIDTH = 8
LINE_BYTES = FP_HEX + 1 + KIND_WIDTH + 1  # "<fp> <kind padded to 8>\n"
TOKEN = re.compile(r"[^\W_]+(?:['\u2019\-][^\W_]+)*")  # the audit contract's token pattern
MIN_DIGITS = 4
# Whole e-mail addresses and phone numbers are audit entries of their own (kinds email, phone: the address
# normalised, the number's digits), so they are looked for as such, not only as tokens.
EMAIL = re.compile(r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+")
PHONE = re.compile(r"(?<![\w.])\+?\(?\d[\d\s().\-]{5,}\d(?![\w.]\w)")  # not inside a word, hash or decimal
PHONE_DIGITS = 7
_CHUNK_TOKENS = 20_000  # tokens fingerprinted per batch (bounded memory on large files)

KIND_TEXT = {
    "name": "a person's name",
    "namepart": "part of a person's name",
    "id": "an identifier (ID or accession number)",
    "place": "an institution or address",
    "phone": "a phone number",
    "email": "an e-mail address",
    "path": "a local path of this site (run, store, model or key folder)",
}


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().strip()


def tokens(text: str) -> list[str]:
    """Normalised tokens of ``text`` (the contract: NFKC, then the token pattern, then NFKC + casefold each)."""
    return [normalize(t) for t in TOKEN.findall(unicodedata.normalize("NFKC", text))]


def fingerprint(key, phrase: str) -> str:  # noqa: ANN001 - SiteKey
    """The audit's keyed fingerprint of a normalised token or phrase (docs/store_format.md)."""
    return key.digest("identifier", phrase).hex()[:FP_HEX]


def phrases(text: str, max_phrase: int) -> set[str]:
    """Every run of 1..max_phrase tokens of ``text``, as normalised phrases (tokens joined by one space)."""
    toks = tokens(text)
    return {" ".join(toks[i:i + n]) for i in range(len(toks)) for n in range(1, max_phrase + 1) if i + n <= len(toks)}


@dataclass(frozen=True)
class Finding:
    """One identifier found in an export: where it is and what kind it is (never the identifier)."""

    file: str
    line: int
    kind: str
    section: str | None = None

    def describe(self) -> str:
        where = f"{self.file}, line {self.line}" + (f" (section '{self.section}')" if self.section else "")
        return f"{where}: {KIND_TEXT.get(self.kind, self.kind)}"


class IdentifierAudit:
    """The fingerprints of ``<store_id>.identifiers.txt``, memory-mapped, with the site key that made them."""

    def __init__(self, path: Path, key) -> None:  # noqa: ANN001 - SiteKey
        import numpy as np

        self.path = Path(path)
        self.key = key
        size = self.path.stat().st_size
        if size % LINE_BYTES:
            raise PrivacyError(
                "export.bad_audit",
                f"the identifier audit {self.path.name} is damaged (its size is not a whole number of lines)",
                hint="re-run the ingest of this store to rebuild the private audit",
            )
        self.n = size // LINE_BYTES
        self._rows = np.memmap(self.path, dtype=f"S{LINE_BYTES}", mode="r") if self.n else None

    def __len__(self) -> int:
        return self.n

    def fingerprint(self, phrase: str) -> str:
        return fingerprint(self.key, phrase)

    def lookup(self, fingerprints: Iterable[str]) -> dict[str, str]:
        """{fingerprint: kind} for the fingerprints present (several kinds joined by '+')."""
        import numpy as np

        if self._rows is None:
            return {}
        query = np.array(sorted({f.encode("ascii") for f in fingerprints}), dtype=f"S{FP_HEX}")
        if not len(query):
            return {}
        # A query sorts before its own line (NUL padding < ' '), so searchsorted lands on the first line of it.
        idx = np.searchsorted(self._rows, query.astype(f"S{LINE_BYTES}"))
        inside = idx < self.n
        rows = self._rows[np.minimum(idx, self.n - 1)]
        hit = inside & (rows.astype(f"S{FP_HEX}") == query)
        found: dict[str, str] = {}
        for q, i in zip(query[hit], idx[hit]):
            kinds = []
            j = int(i)
            while j < self.n and bytes(self._rows[j][:FP_HEX]) == bytes(q):
                kinds.append(bytes(self._rows[j][FP_HEX + 1:FP_HEX + 1 + KIND_WIDTH]).decode("ascii").strip())
                j += 1
            found[q.decode("ascii")] = "+".join(kinds)
        return found


def locate_audit(store_id: str, key_file: Path, private_dir: Path | None, expected_key: str | None) -> IdentifierAudit:
    """The audit of ``store_id`` in the private folder (default: ``private/`` beside the key file, as ingest)."""
    import json

    from radadapt.sitekey import load_key

    key = load_key(key_file)
    private = Path(private_dir) if private_dir is not None else Path(key_file).parent / "private"
    ident = private / f"{store_id}.identifiers.txt"
    if not ident.is_file():
        raise PrivacyError(
            "export.no_audit",
            f"no identifier audit for store {store_id} in {private}",
            hint="pass the --private-dir the ingest used (default: private/ beside the key file); "
                 "--no-phi-scan skips the scan, at your own risk",
        )
    if expected_key and key.fingerprint() != expected_key:
        raise PrivacyError(
            "export.wrong_key",
            f"the site key {Path(key_file).name} is not the key that made store {store_id} (fingerprint differs)",
            hint="pass the --site-key used at ingest",
        )
    header = private / f"{store_id}.audit.jsonl"
    if header.is_file():
        try:
            with open(header, encoding="utf-8") as fh:
                first = json.loads(fh.readline())
        except ValueError:
            first = {}
        recorded = first.get("key_fingerprint")
        if recorded and recorded != key.fingerprint():
            raise PrivacyError(
                "export.wrong_key",
                f"the site key {Path(key_file).name} did not write the audit of store {store_id}",
                hint="pass the --site-key used at ingest",
            )
    return IdentifierAudit(ident, key)


# -- scanning ------------------------------------------------------------------------------------------------------
@dataclass
class ScanText:
    """One exported file's text with what explains its structure (keys, computed numbers) for this file."""

    file: str
    text: str
    structural: set[str] = field(default_factory=set)  # normalised tokens radadapt generated (keys, numbers)
    sections: bool = False  # markdown: report the heading a finding is under


class PhiScanner:
    """Tests texts against an ``IdentifierAudit``; ``public`` holds radadapt's own words and phrases."""

    def __init__(self, audit: IdentifierAudit, *, public: set[str], max_phrase: int = 8,
                 paths: Iterable[str] = ()) -> None:
        self.audit = audit
        self.public = public
        self.max_phrase = max(1, int(max_phrase))
        self.paths = sorted({p for p in paths if p and len(p) > 1}, key=len, reverse=True)
        self.phrases_checked = 0

    def scan(self, item: ScanText) -> list[Finding]:
        findings = [Finding(item.file, line, "path", self._section(item, line)) for line in self._path_lines(item.text)]
        whole = self._whole_items(item.text)
        for fp, kind in self.audit.lookup(whole).items():
            phrase, line = whole[fp]
            if not self._explained(phrase, item.structural):
                findings.append(Finding(item.file, line, kind.split("+")[0], self._section(item, line)))
        for chunk in _chunks(_line_tokens(item.text), _CHUNK_TOKENS, self.max_phrase - 1):
            candidates: dict[str, tuple[str, int]] = {}  # fingerprint -> (phrase, line of its first token)
            for i in range(len(chunk)):
                words: list[str] = []
                for n in range(self.max_phrase):
                    if i + n >= len(chunk):
                        break
                    words.append(chunk[i + n][0])
                    phrase = " ".join(words)
                    fp = self.audit.fingerprint(phrase)
                    candidates.setdefault(fp, (phrase, chunk[i][1]))
            self.phrases_checked += len(candidates)
            for fp, kind in self.audit.lookup(candidates).items():
                phrase, line = candidates[fp]
                if not self._explained(phrase, item.structural):
                    findings.append(Finding(item.file, line, kind.split("+")[0], self._section(item, line)))
        return _dedupe(findings)

    def _explained(self, phrase: str, structural: set[str]) -> bool:
        """radadapt's own words and phrases, and words too short to identify anyone. Two public words next to
        each other are not explained by being public one by one: their adjacency may be data (a name)."""
        if phrase in self.public or phrase in structural:
            return True
        words = phrase.split(" ")
        if len(words) == 1:
            return _too_short(words[0])
        return all(_too_short(w) for w in words)

    def _section(self, item: ScanText, line: int) -> str | None:
        """The markdown '## ' heading above ``line``, shown only when it is radadapt's own text."""
        if not item.sections:
            return None
        heading = None
        for i, text in enumerate(item.text.splitlines()[:line], start=1):
            if text.startswith("## ") and i != line:
                heading = text[3:].strip()
        if heading is None or normalize(" ".join(tokens(heading))) not in self.public:
            return None
        return heading

    def _whole_items(self, text: str) -> dict[str, tuple[str, int]]:
        """{fingerprint: (item, line)} of e-mail addresses and phone-like numbers (their digits, >= 7)."""
        text = unicodedata.normalize("NFKC", text)
        out: dict[str, tuple[str, int]] = {}
        for m in EMAIL.finditer(text):
            address = normalize(m.group())
            out.setdefault(self.audit.fingerprint(address), (address, text.count("\n", 0, m.start()) + 1))
        for m in PHONE.finditer(text):
            digits = re.sub(r"\D", "", m.group())
            line = text.count("\n", 0, m.start()) + 1
            # with and without a country code in front of a 10-digit national number
            for variant in {digits, digits[-10:]} if len(digits) > 10 else {digits}:
                if len(variant) >= PHONE_DIGITS:
                    out.setdefault(self.audit.fingerprint(variant), (variant, line))
        self.phrases_checked += len(out)
        return out

    def _path_lines(self, text: str) -> Iterator[int]:
        for path in self.paths:
            start = 0
            while (pos := text.find(path, start)) >= 0:
                yield text.count("\n", 0, pos) + 1
                start = pos + len(path)


def _too_short(word: str) -> bool:
    """One character, or a number of fewer than MIN_DIGITS digits."""
    return len(word) < 2 or (word.isdigit() and len(word) < MIN_DIGITS)


def _line_tokens(text: str) -> list[tuple[str, int]]:
    text = unicodedata.normalize("NFKC", text)
    out: list[tuple[str, int]] = []
    line, last = 1, 0
    for m in TOKEN.finditer(text):
        line += text.count("\n", last, m.start())
        last = m.start()
        out.append((normalize(m.group()), line))
    return out


def _chunks(items: list, size: int, overlap: int) -> Iterator[list]:
    """Windows of ``size`` items overlapping by ``overlap`` so every phrase lies whole in some window."""
    if len(items) <= size:
        yield items
        return
    step = max(1, size - overlap)
    for start in range(0, len(items), step):
        yield items[start:start + size]
        if start + size >= len(items):
            break


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple] = set()
    out = []
    for f in sorted(findings, key=lambda f: (f.file, f.line, f.kind)):
        k = (f.file, f.line, f.kind)
        if k not in seen:
            seen.add(k)
            out.append(f)
    return out


def structural_phrases(value, max_phrase: int = 8) -> set[str]:  # noqa: ANN001 - parsed JSON/YAML
    """Phrases of the keys and of the numbers (not the strings) of a parsed JSON/YAML document that radadapt
    generated: its structure, which the same code writes for every site."""
    out: set[str] = set()
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            for k, x in v.items():
                out |= phrases(str(k), max_phrase)
                stack.append(x)
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, bool) or v is None:
            out |= phrases(str(v).lower(), 1)
        elif isinstance(v, (int, float)):
            out |= phrases(repr(v), max_phrase) | phrases(str(v), max_phrase)
    return out
