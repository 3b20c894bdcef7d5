"""De-identification by allow-list: pseudonyms, shifted dates, ages, and scrubbed report text.

The store holds derived pixels and the ``ImageRecord`` fields, never a DICOM header, so PS3.15 Annex E serves as
a checklist rather than code: keys are HMAC-SHA256 pseudonyms under the site key (``SiteKey``), dates move by a
per-patient offset (or are dropped for age only), ages cap at 90 (HIPAA Safe Harbor, 45 CFR 164.514(b)(2)(i)(C)).

Report text is scrubbed twice. First, every identifier seen in the headers of the same patient's files (names in
any PN element, IDs, accession numbers, institution and address phrases, phone numbers, e-mail addresses; main
dataset, nested sequences and private elements alike) is removed wherever its words appear. The headers' values
are never kept in clear for this: ingest keeps keyed fingerprints (``fingerprint``) of each token and phrase,
and the scrubber fingerprints the report's words the same way. Second, patterns remove what no header names:
dates in any common format, phone numbers, e-mail addresses, MRN-like numbers, and names after a title (Dr, Mr,
Mrs, Ms, Prof) or a signature cue ("Dictated by:", "Signed by:").
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from typing import TYPE_CHECKING, Any, Iterable, Iterator

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from radadapt.sitekey import SiteKey

FP_HEX = 32  # 128-bit identifier fingerprints
MAX_AGE = 90
SHIFT_BASE_DAYS = 36525  # 100 years: a shifted date can never be mistaken for (or equal) a real recent date
SHIFT_SPREAD_DAYS = 3650

TOKEN = re.compile(r"[^\W_]+(?:['\u2019\-][^\W_]+)*")
_ID_WORDS = re.compile(r"(?<!U)IDs?(?:$|[A-Z])|Number$|Identifier|MedicalRecordLocator")
_ID_VRS = {"LO", "SH", "ST", "LT", "UT", "CS", "UC", "AE"}
_PLACE_WORDS = re.compile(r"Institution|Address|Department|StationName|Location|Region|Country")
_TEXT_VRS = {"LO", "SH", "ST", "LT", "UT", "UC", "PN", "CS", "AE"}
_NUMERIC_ID_SKIP = re.compile(r"^(Series|Instance|Acquisition|Image|Frame|Echo|Temporal|Stack|InStack)")

# Report patterns (applied after the fingerprint pass).
_MONTHS = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
           r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_EMAIL = re.compile(r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+")
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"\b{_MONTHS}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{2,4}}\b", re.I), "[DATE]"),
    (re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTHS}\.?,?\s+\d{{2,4}}\b", re.I), "[DATE]"),
    (re.compile(rf"\b{_MONTHS}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?\b(?!\s*(?:mm|cm|%|mg))", re.I), "[DATE]"),
    (re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTHS}\b", re.I), "[DATE]"),
    (re.compile(rf"\b{_MONTHS}\.?\s+(?:19|20)\d{{2}}\b", re.I), "[DATE]"),
    (re.compile(r"\b\d{4}[-/.]\d{1,2}[-/.]\d{1,2}(?:[T ]\d{1,2}:\d{2}(?::\d{2})?)?\b"), "[DATE]"),
    (re.compile(r"\b\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}\b"), "[DATE]"),
    (re.compile(r"\b(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\b"), "[DATE]"),
    (re.compile(r"(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{2,4}\)\s?|\b\d{2,4}[\s.\-])\d{3,4}[\s.\-]\d{3,4}\b"), "[PHONE]"),
    (re.compile(r"\b(?:ext\.?|x)\s?\d{3,5}\b", re.I), "[PHONE]"),
    (re.compile(r"\b(?=[A-Za-z\-]*\d)(?=\d*[A-Za-z])[A-Za-z0-9\-]*\d{4,}[A-Za-z0-9\-]*\b"), "[ID]"),
    (re.compile(r"\b\d{5,}\b"), "[ID]"),
    (re.compile(r"\b(?:Dr|Doctor|Mr|Mrs|Ms|Miss|Prof|Professor)\.?\s+(?:[A-Z][\w'\-]*\.?\s*){1,3}"), "[NAME] "),
    (re.compile(r"((?:dictated|signed|reported|read|reviewed|verified|transcribed|approved|attending|"
                r"radiologist|resident|technologist|referring physician|electronically signed)"
                r"(?:\s+by)?\s*:\s*)[^\n]*", re.I), r"\1[NAME]"),
]


# -- pseudonyms, dates, ages ----------------------------------------------------------------------------------------
def text_value(value: Any) -> str:
    return "" if value is None else str(value).strip()


def patient_key(key: SiteKey, ds: Any) -> str:
    """HMAC of (Issuer of Patient ID, Patient ID); without a Patient ID, one patient per study (never pooled)."""
    pid = text_value(ds.get("PatientID"))
    if pid:
        return key.pseudonym("patient", pid, issuer=text_value(ds.get("IssuerOfPatientID")))
    return key.pseudonym("patient-from-study", text_value(ds.get("StudyInstanceUID")) or text_value(ds.get("SOPInstanceUID")))


def study_key(key: SiteKey, accession: str, study_uid: str = "") -> str:
    """HMAC of the accession number (the report join key); Study Instance UID when the accession is empty."""
    accession = accession.strip()
    if accession:
        return key.pseudonym("study", accession)
    return key.pseudonym("study-uid", study_uid.strip())


def plain_patient_fp(key: SiteKey, patient_id: str) -> str:
    """Issuer-free fingerprint of a Patient ID, to compare with a report CSV's patient column."""
    return key.pseudonym("patient-id", normalize(patient_id))


def date_offset_days(key: SiteKey, patient: str) -> int:
    """The per-patient shift: 100 years plus 1-3650 days, from the key (non-zero, stable, unguessable)."""
    return SHIFT_BASE_DAYS + 1 + int(key.unit_interval("date-shift", patient) * SHIFT_SPREAD_DAYS)


def parse_da(value: Any) -> dt.date | None:
    text = re.sub(r"[^0-9]", "", text_value(value))[:8]
    if len(text) != 8:
        return None
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def study_date(ds: Any) -> dt.date | None:
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        d = parse_da(ds.get(keyword))
        if d is not None:
            return d
    return None


def shifted(date: dt.date | None, offset_days: int) -> str | None:
    if date is None:
        return None
    try:
        return (date + dt.timedelta(days=offset_days)).isoformat()
    except OverflowError:
        return None


def age_years(ds: Any, when: dt.date | None) -> int | None:
    """Whole years at the study from Birth Date, else Patient's Age (nnnY/M/W/D); capped at 90."""
    birth = parse_da(ds.get("PatientBirthDate"))
    years: float | None = None
    if birth is not None and when is not None and when >= birth:
        years = when.year - birth.year - ((when.month, when.day) < (birth.month, birth.day))
    else:
        m = re.fullmatch(r"(\d{1,3})\s*([YMWD]?)", text_value(ds.get("PatientAge")).upper())
        if m:
            n = int(m.group(1))
            years = {"Y": n, "": n, "M": n / 12, "W": n / 52.18, "D": n / 365.25}[m.group(2)]
    if years is None or years < 0 or years > 130:
        return None
    return min(int(years), MAX_AGE)


def sex(ds: Any) -> str:
    value = text_value(ds.get("PatientSex")).upper()
    return value if value in ("M", "F", "O") else "unknown"


# -- identifiers ----------------------------------------------------------------------------------------------------
def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().strip()


def tokens(text: str) -> list[str]:
    return [normalize(t) for t in TOKEN.findall(unicodedata.normalize("NFKC", text))]


def fingerprint(key: SiteKey, phrase: str) -> str:
    """Keyed fingerprint of a normalised token or phrase (tokens joined by one space); docs/store_format.md."""
    return key.digest("identifier", phrase).hex()[:FP_HEX]


def _name_items(value: str) -> Iterator[tuple[str, str]]:
    for group in value.split("="):
        parts = [tokens(p) for p in group.split("^")]
        family, given = (parts + [[], []])[:2]
        for toks in parts:
            for tok in toks:
                if len(tok) >= 2 and not tok.isdigit():
                    yield "namepart", tok
        if family and given:
            yield "name", " ".join(given + family)
            yield "name", " ".join(family + given)


def _id_items(value: str) -> Iterator[tuple[str, str]]:
    toks = tokens(value)
    if toks:
        yield "id", " ".join(toks)
    for tok in toks:
        if any(c.isdigit() for c in tok) and len(tok) >= 3:
            yield "id", tok
            digits = re.sub(r"\D", "", tok)
            if len(digits) >= 4:
                yield "id", digits
                yield "id", digits.lstrip("0") or "0"


def _place_items(value: str) -> Iterator[tuple[str, str]]:
    for part in re.split(r"[,;\n\r^\\]", value):
        toks = tokens(part)
        if toks:
            yield "place", " ".join(toks)
        for tok in toks:
            if sum(c.isdigit() for c in tok) >= 4:
                yield "id", tok


def _free_text_items(value: str) -> Iterator[tuple[str, str]]:
    """Only what is recognisably an identifier in free text (ID-like tokens, e-mails, phone numbers)."""
    for email in _EMAIL.findall(value):
        yield "email", normalize(email)
    for tok in tokens(value):
        if sum(c.isdigit() for c in tok) >= 4 and len(tok) >= 4:
            yield "id", tok


def identifier_items(ds: Dataset) -> set[tuple[str, str]]:
    """(kind, normalised phrase) for every identifier in the dataset, nested sequences and private tags included."""
    items: set[tuple[str, str]] = set()
    for keyword, vr, private, values in _text_values(ds):
        for text in values:
            if not text.strip():
                continue
            if vr == "PN":
                items.update(_name_items(text))
            elif private:
                items.update(_free_text_items(text))
            elif "Telephone" in keyword:
                digits = re.sub(r"\D", "", text)
                if len(digits) >= 7:
                    items.add(("phone", digits))
                items.update(_free_text_items(text))
            elif _PLACE_WORDS.search(keyword):
                items.update(_place_items(text))
            elif _ID_WORDS.search(keyword) and vr in _ID_VRS and not _NUMERIC_ID_SKIP.match(keyword):
                items.update(_id_items(text))
            else:
                items.update(_free_text_items(text))
    return {(k, v) for k, v in items if v}


def _text_values(ds: Any) -> Iterator[tuple[str, str, bool, list[str]]]:
    """(keyword, VR, private?, values) of every text element, depth first through sequences.

    Values are decoded from the raw bytes with the dataset's Specific Character Set (pydicom's ``decode_bytes``)
    rather than by converting each element through pydicom, which costs more than decoding a small image.
    Private elements of unknown VR (implicit VR files) are read as text when printable.
    """
    from pydicom.charset import decode_bytes
    from pydicom.datadict import dictionary_VR, keyword_for_tag

    encodings = ds._character_set
    if isinstance(encodings, str):
        encodings = [encodings]
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        vr = getattr(raw, "VR", None)
        if vr is None or vr == "UN":
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                vr = "UN"
        if vr == "SQ":
            for item in ds[tag].value or []:
                yield from _text_values(item)
            continue
        private = tag.is_private
        if vr not in _TEXT_VRS and not (vr == "UN" and private):
            continue
        value = getattr(raw, "value", None)
        if isinstance(value, (bytes, bytearray)):
            if vr == "UN":
                text = bytes(value[:1024]).decode("latin-1")
                if len(value) > 1024 or not text.strip("\x00 ").isprintable():
                    continue
                vr = "LO"
            else:
                text = decode_bytes(bytes(value), encodings, {0x5C, 0x3D, 0x5E} if vr == "PN" else {0x5C})
            values = [v.strip("\x00 ") for v in text.split("\\")]
        elif value is None:
            continue
        elif isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            values = [str(v) for v in value]
        else:
            values = [str(value)]
        yield ("" if private else keyword_for_tag(tag)), vr, private, values


def fingerprint_items(key: SiteKey, items: Iterable[tuple[str, str]]) -> set[tuple[str, str, int]]:
    """(fingerprint, kind, n_tokens) rows, plus ``start`` rows for the first token of each multi-token phrase."""
    rows: set[tuple[str, str, int]] = set()
    for kind, phrase in items:
        n = len(phrase.split(" "))
        rows.add((fingerprint(key, phrase), kind, n))
        if n > 1:
            rows.add((fingerprint(key, phrase.split(" ")[0]), "start", 0))
    return rows


# -- report scrubbing -----------------------------------------------------------------------------------------------
_MARKERS = {"name": "[NAME]", "namepart": "[NAME]", "id": "[ID]", "place": "[PLACE]", "phone": "[PHONE]", "email": "[EMAIL]"}


class Scrubber:
    """Removes a patient's header identifiers (given as fingerprints) and pattern-matched PHI from report text."""

    def __init__(self, key: SiteKey, rows: Iterable[tuple[str, str, int]]):
        self.key = key
        self.phrases: dict[str, str] = {}
        self.starts: set[str] = set()
        self.max_len = 1
        for fp, kind, n in rows:
            if kind == "start":
                self.starts.add(fp)
            else:
                self.phrases[fp] = kind
                self.max_len = max(self.max_len, n)

    def add_values(self, values: Iterable[str]) -> None:
        """Identifiers known in clear at scrub time (the report row's own accession and patient ID)."""
        items = [item for v in values if v and v.strip() for item in _id_items(v)]
        for fp, kind, n in fingerprint_items(self.key, items):
            if kind == "start":
                self.starts.add(fp)
            else:
                self.phrases[fp] = kind
                self.max_len = max(self.max_len, n)

    def scrub(self, text: str) -> tuple[str, int]:
        """(scrubbed text, number of replacements)."""
        text, count = _EMAIL.subn("[EMAIL]", unicodedata.normalize("NFKC", text))
        out: list[str] = []
        matches = list(TOKEN.finditer(text))
        fps = [fingerprint(self.key, normalize(m.group())) for m in matches]
        pos = 0
        i = 0
        while i < len(matches):
            hit = None
            if fps[i] in self.starts or fps[i] in self.phrases:
                for n in range(min(self.max_len, len(matches) - i), 0, -1):
                    fp = fps[i] if n == 1 else fingerprint(self.key, " ".join(normalize(m.group()) for m in matches[i:i + n]))
                    if fp in self.phrases:
                        hit = (n, self.phrases[fp])
                        break
            if hit is None:
                i += 1
                continue
            n, kind = hit
            out.append(text[pos:matches[i].start()])
            out.append(_MARKERS.get(kind, "[REDACTED]"))
            pos = matches[i + n - 1].end()
            count += 1
            i += n
        out.append(text[pos:])
        text = "".join(out)
        for pattern, marker in _PATTERNS:
            text, n = pattern.subn(marker, text)
            count += n
        return text, count
