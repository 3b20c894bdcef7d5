"""The labels schema (``templates/labels_schema.yaml``): load, validate with clear messages, compile.

A site adapts the labeler by editing a copy of the schema, never code. Mistakes are reported as one line naming the
entry (``findings[4] 'Edema'.phrases[2]: unbalanced '('``), so a typo cannot silently disable a rule. The compiled
form is a :class:`Schema`: column names, the phrase matcher, the section rules and the token normaliser.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radadapt.errors import ConfigError
from radadapt.labels import matcher as m
from radadapt.labels.phrases import expand_tokens
from radadapt.labels.text import SectionRules, TokenNormalizer

SCHEMA_VERSION = 1
DERIVED = ("no_finding", "support_devices")
TRIGGER_KINDS = ("negation", "uncertainty", "alternative", "removal", "historical", "pseudo")
DIRECTIONS = ("forward", "backward", "both")
POSITION_VALUES = ("ok", "malpositioned", "unknown", "neutral")

_TOP = {"version", "name", "description", "settings", "token_aliases", "sections", "findings", "other_findings",
        "devices", "device_groups", "device_links", "positions", "exclusions", "triggers", "termination"}
_SETTINGS = {"predicate_window", "max_sentence_tokens", "sentence_abbreviations", "anaphora"}
_FINDING = {"name", "derived", "phrases", "signs", "anatomy", "abnormal", "normal", "borderline", "parents",
            "predicate_window", "describes_devices"}
_DEVICE = {"name", "phrases", "removed_phrases", "malpositioned_phrases", "positions"}
_TRIGGER = {"kind", "direction", "window", "phrases"}
_HINT = "compare with templates/labels_schema.yaml; `radadapt labels schema FILE` checks a copy"


def _fail(source: str, where: str, problem: str) -> ConfigError:
    return ConfigError("labels.schema_invalid", f"labels schema {source}: {where}: {problem}", hint=_HINT)


@dataclass
class Schema:
    """A validated, compiled schema."""

    source: str
    sha256: str
    name: str
    findings: list[str]
    devices: list[str]
    no_finding: int | None  # index into findings of the derived columns, if present
    support_devices: int | None
    ancestors: dict[int, tuple[int, ...]]  # finding index -> all parent indices (transitive)
    predicate_window: list[int]
    describes_devices: frozenset[int]  # findings whose mention may be a description of a device
    max_sentence_tokens: int
    anaphora: frozenset[str]
    normalizer: TokenNormalizer
    sections: SectionRules
    matcher: m.PhraseMatcher
    n_phrases: int
    phrase_table: m.PhraseTable = field(repr=False)

    @property
    def position_columns(self) -> list[str]:
        return [f"{d} position" for d in self.devices]

    @property
    def columns(self) -> list[str]:
        return [*self.findings, *self.devices, *self.position_columns]


def default_schema_path() -> Path:
    from importlib.resources import files

    return Path(str(files("radadapt.templates").joinpath("labels_schema.yaml")))


_cache: dict[str, Schema] = {}


def load_schema(path: str | Path | None = None) -> Schema:
    """Load and compile a schema file (default: the packaged one). Compiled schemas are cached by content."""
    import yaml

    file = Path(path) if path is not None else default_schema_path()
    if not file.is_file():
        raise ConfigError("labels.schema_missing", f"labels schema not found: {file}",
                          hint="pass an existing file with --schema, or omit it to use the packaged schema")
    data = file.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest in _cache:
        return _cache[digest]
    try:
        raw = yaml.safe_load(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError("labels.schema_syntax", f"labels schema {file} is not UTF-8 text", hint=_HINT) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError("labels.schema_syntax", f"labels schema {file} is not valid YAML{where}", hint=_HINT) from None
    schema = compile_schema(raw, source=str(file), sha256=digest)
    _cache[digest] = schema
    return schema


# -- validation helpers -----------------------------------------------------------------------------------------
class _Check:
    def __init__(self, source: str):
        self.source = source

    def mapping(self, value: Any, where: str, allowed: set[str], required: tuple[str, ...] = ()) -> dict:
        if not isinstance(value, dict):
            raise _fail(self.source, where, f"expected a mapping, got {type(value).__name__}")
        for key in value:
            if key not in allowed:
                raise _fail(self.source, where, f"unknown key '{key}' (allowed: {', '.join(sorted(allowed))})")
        for key in required:
            if key not in value:
                raise _fail(self.source, where, f"missing '{key}'")
        return value

    def strings(self, value: Any, where: str, allow_empty: bool = False) -> list[str]:
        if not isinstance(value, list):
            raise _fail(self.source, where, f"expected a list, got {type(value).__name__}")
        if not value and not allow_empty:
            raise _fail(self.source, where, "empty list (remove the key or add at least one phrase)")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise _fail(self.source, f"{where}[{i}]", "expected a non-empty string")
        return value

    def integer(self, value: Any, where: str, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise _fail(self.source, where, f"expected a whole number >= {minimum}")
        return value


# -- compile -----------------------------------------------------------------------------------------------------
def compile_schema(raw: Any, *, source: str = "<schema>", sha256: str = "") -> Schema:
    """Validate the parsed YAML and build the matcher. Raises ConfigError naming the first bad entry."""
    ck = _Check(source)
    top = ck.mapping(raw, "top level", _TOP, required=("version", "findings", "devices", "triggers"))
    if top["version"] != SCHEMA_VERSION:
        raise _fail(source, "version", f"unsupported version {top['version']!r} (this radadapt reads {SCHEMA_VERSION})")
    settings = ck.mapping(top.get("settings") or {}, "settings", _SETTINGS)
    window = ck.integer(settings.get("predicate_window", 6), "settings.predicate_window", 1)
    max_tokens = ck.integer(settings.get("max_sentence_tokens", 200), "settings.max_sentence_tokens", 20)
    abbrevs = ck.strings(settings.get("sentence_abbreviations", []), "settings.sentence_abbreviations", True)
    anaphora = ck.strings(settings.get("anaphora", []), "settings.anaphora", True)
    aliases_raw = top.get("token_aliases") or {}
    if not isinstance(aliases_raw, dict):
        raise _fail(source, "token_aliases", "expected a mapping of word: replacement")
    aliases: dict[str, str] = {}
    for k, v in aliases_raw.items():
        if not isinstance(k, str) or not isinstance(v, str) or not k.strip() or not v.strip() or " " in k.strip():
            raise _fail(source, f"token_aliases.{k}", "expected one word mapped to a non-empty replacement")
        aliases[k.strip().lower()] = v.strip().lower()
    normalizer = TokenNormalizer(aliases, frozenset(a.lower() for a in abbrevs))
    sec = ck.mapping(top.get("sections") or {"score": ["findings", "impression"], "skip": ["indication", "history"]},
                     "sections", {"score", "skip"}, required=("score", "skip"))
    score = [s.lower() for s in ck.strings(sec["score"], "sections.score")]
    skip = [s.lower() for s in ck.strings(sec["skip"], "sections.skip")]
    both = set(score) & set(skip)
    if both:
        raise _fail(source, "sections", f"'{sorted(both)[0]}' is listed as both score and skip")

    table = m.PhraseTable()
    tokenized: dict[str, list[str]] = {}

    def tokenize(text: str) -> list[str]:
        tokens = tokenized.get(text)
        if tokens is None:
            tokens = tokenized[text] = normalizer.phrase(text)
        return tokens

    def add(patterns: list[str], where: str, entry: m.Entry) -> None:
        for i, pat in enumerate(patterns):
            try:
                expanded = expand_tokens(pat, tokenize)
            except ValueError as exc:
                raise _fail(source, f"{where}[{i}] {pat!r}", str(exc)) from None
            if not expanded:
                raise _fail(source, f"{where}[{i}] {pat!r}", "contains no words")
            for tokens in expanded:
                table.add(tokens, entry)

    # findings
    f_list = top["findings"]
    if not isinstance(f_list, list) or not f_list:
        raise _fail(source, "findings", "expected a non-empty list")
    names: list[str] = []
    for i, f in enumerate(f_list):
        f = ck.mapping(f, f"findings[{i}]", _FINDING, required=("name",))
        if not isinstance(f["name"], str) or not f["name"].strip():
            raise _fail(source, f"findings[{i}].name", "expected a non-empty string")
        if f["name"] in names:
            raise _fail(source, f"findings[{i}]", f"duplicated name '{f['name']}'")
        names.append(f["name"])
    derived: dict[str, int] = {}
    parents_of: dict[int, list[int]] = {}
    pred_window = [window] * len(names)
    describers: set[int] = set()
    for i, f in enumerate(f_list):
        where = f"findings[{i}] '{f['name']}'"
        if "derived" in f:
            if f["derived"] not in DERIVED:
                raise _fail(source, f"{where}.derived", f"unknown value {f['derived']!r} (allowed: {', '.join(DERIVED)})")
            if f["derived"] in derived:
                raise _fail(source, f"{where}.derived", f"'{f['derived']}' is already given to another finding")
            extra = set(f) - {"name", "derived"}
            if extra:
                raise _fail(source, where, f"a derived finding takes no '{sorted(extra)[0]}'")
            derived[f["derived"]] = i
            continue
        if "phrases" not in f and "anatomy" not in f:
            raise _fail(source, where, "needs 'phrases' (or 'anatomy' with predicates)")
        if "phrases" in f:
            add(ck.strings(f["phrases"], f"{where}.phrases"), f"{where}.phrases", (m.FINDING, i))
        if "signs" in f:
            add(ck.strings(f["signs"], f"{where}.signs"), f"{where}.signs", (m.SIGN, i))
        if "anatomy" in f:
            if "abnormal" not in f and "normal" not in f:
                raise _fail(source, where, "'anatomy' needs 'abnormal' or 'normal' predicates")
            add(ck.strings(f["anatomy"], f"{where}.anatomy"), f"{where}.anatomy", (m.ANATOMY, i))
            for key, polarity in (("abnormal", 1), ("normal", 0), ("borderline", -1)):
                if key in f:
                    add(ck.strings(f[key], f"{where}.{key}", True), f"{where}.{key}", (m.PREDICATE, i, polarity))
        elif any(k in f for k in ("abnormal", "normal", "borderline")):
            raise _fail(source, where, "predicates (abnormal/normal/borderline) need 'anatomy'")
        if "predicate_window" in f:
            pred_window[i] = ck.integer(f["predicate_window"], f"{where}.predicate_window", 1)
        if f.get("describes_devices") not in (None, True, False):
            raise _fail(source, f"{where}.describes_devices", "expected true or false")
        if f.get("describes_devices"):
            describers.add(i)
        for j, parent in enumerate(ck.strings(f.get("parents", []), f"{where}.parents", True)):
            if parent not in names or parent == f["name"] or "derived" in f_list[names.index(parent)]:
                raise _fail(source, f"{where}.parents[{j}]", f"'{parent}' is not another (non-derived) finding")
            parents_of.setdefault(i, []).append(names.index(parent))
    ancestors: dict[int, tuple[int, ...]] = {}
    for i in parents_of:
        seen: list[int] = []
        stack = list(parents_of[i])
        while stack:
            p = stack.pop()
            if p == i:
                raise _fail(source, f"findings[{i}] '{names[i]}'.parents", "parents form a cycle")
            if p not in seen:
                seen.append(p)
                stack.extend(parents_of.get(p, []))
        ancestors[i] = tuple(seen)

    add(ck.strings(top.get("other_findings") or ["__none__"], "other_findings"), "other_findings", (m.OTHER,))

    # devices
    d_list = top["devices"]
    if not isinstance(d_list, list) or not d_list:
        raise _fail(source, "devices", "expected a non-empty list")
    dev_names: list[str] = []
    for i, d in enumerate(d_list):
        d = ck.mapping(d, f"devices[{i}]", _DEVICE, required=("name", "phrases"))
        if not isinstance(d["name"], str) or not d["name"].strip():
            raise _fail(source, f"devices[{i}].name", "expected a non-empty string")
        if d["name"] in dev_names or d["name"] in names:
            raise _fail(source, f"devices[{i}]", f"duplicated name '{d['name']}'")
        dev_names.append(d["name"])
    for i, d in enumerate(d_list):
        where = f"devices[{i}] '{d['name']}'"
        add(ck.strings(d["phrases"], f"{where}.phrases"), f"{where}.phrases", (m.DEVICE, i, None))
        add(ck.strings(d.get("removed_phrases", []), f"{where}.removed_phrases", True),
            f"{where}.removed_phrases", (m.DEVICE, i, "removed"))
        mal = ck.strings(d.get("malpositioned_phrases", []), f"{where}.malpositioned_phrases", True)
        add(mal, f"{where}.malpositioned_phrases", (m.DEVICE, i, None))
        add(mal, f"{where}.malpositioned_phrases", (m.POSITION, frozenset({i}), "malpositioned", None))
        if "positions" in d:
            _add_positions(ck, add, d["positions"], f"{where}.positions", frozenset({i}))
    if "positions" in top:
        _add_positions(ck, add, top["positions"], "positions", None)
    groups = top.get("device_groups") or []
    if not isinstance(groups, list):
        raise _fail(source, "device_groups", "expected a list")
    for i, g in enumerate(groups):
        g = ck.mapping(g, f"device_groups[{i}]", {"phrases", "devices"}, required=("phrases", "devices"))
        members = ck.strings(g["devices"], f"device_groups[{i}].devices")
        for j, name in enumerate(members):
            if name != "all" and name not in dev_names:
                raise _fail(source, f"device_groups[{i}].devices[{j}]", f"'{name}' is not a device above (or 'all')")
        covered = frozenset(range(len(dev_names))) if "all" in members else frozenset(map(dev_names.index, members))
        add(ck.strings(g["phrases"], f"device_groups[{i}].phrases"), f"device_groups[{i}].phrases", (m.GROUP, covered))

    add(ck.strings(top.get("device_links") or ["__none__"], "device_links"), "device_links", (m.LINK,))
    add(ck.strings(top.get("exclusions") or ["__none__"], "exclusions"), "exclusions", (m.EXCLUDE,))

    t_list = top["triggers"]
    if not isinstance(t_list, list) or not t_list:
        raise _fail(source, "triggers", "expected a non-empty list")
    for i, t in enumerate(t_list):
        t = ck.mapping(t, f"triggers[{i}]", _TRIGGER, required=("kind", "phrases"))
        where = f"triggers[{i}] ({t['kind']})"
        if t["kind"] not in TRIGGER_KINDS:
            raise _fail(source, f"triggers[{i}].kind", f"unknown kind {t['kind']!r} (allowed: {', '.join(TRIGGER_KINDS)})")
        if t["kind"] == "pseudo":
            add(ck.strings(t["phrases"], f"{where}.phrases"), f"{where}.phrases", (m.PSEUDO,))
            continue
        if t.get("direction") not in DIRECTIONS:
            raise _fail(source, f"triggers[{i}].direction", f"expected one of {', '.join(DIRECTIONS)}")
        win = ck.integer(t["window"], f"triggers[{i}].window", 0) if "window" in t else None
        add(ck.strings(t["phrases"], f"{where}.phrases"), f"{where}.phrases", (m.TRIGGER, t["kind"], t["direction"], win))
    term = ck.mapping(top.get("termination") or {}, "termination", {"hard", "soft"})
    add(ck.strings(term.get("hard", [";"]), "termination.hard"), "termination.hard", (m.TERM, True))
    add(ck.strings(term.get("soft", ["with"]), "termination.soft"), "termination.soft", (m.TERM, False))

    return Schema(
        source=source,
        sha256=sha256,
        name=str(top.get("name", "")),
        findings=names,
        devices=dev_names,
        no_finding=derived.get("no_finding"),
        support_devices=derived.get("support_devices"),
        ancestors=ancestors,
        predicate_window=pred_window,
        describes_devices=frozenset(describers),
        max_sentence_tokens=max_tokens,
        anaphora=frozenset(normalizer.word(a) for a in anaphora),
        normalizer=normalizer,
        sections=SectionRules.build(score, skip),
        matcher=table.compile(),
        n_phrases=len(table),
        phrase_table=table,
    )


def _add_positions(ck: _Check, add: Any, value: Any, where: str, devices: frozenset[int] | None) -> None:
    block = ck.mapping(value, where, set(POSITION_VALUES))
    for kind, items in block.items():
        if not isinstance(items, list) or not items:
            raise _fail(ck.source, f"{where}.{kind}", "expected a non-empty list")
        for j, item in enumerate(items):
            if isinstance(item, str):
                add([item], f"{where}.{kind}[{j}]", (m.POSITION, devices, kind, None))
                continue
            item = ck.mapping(item, f"{where}.{kind}[{j}]", {"phrases", "ok_cm"}, required=("phrases",))
            rng = item.get("ok_cm")
            if rng is not None:
                if (not isinstance(rng, list) or len(rng) != 2 or not all(isinstance(x, (int, float)) for x in rng)
                        or rng[0] > rng[1]):
                    raise _fail(ck.source, f"{where}.{kind}[{j}].ok_cm", "expected [low, high] in centimetres")
                rng = (float(rng[0]), float(rng[1]))
            phrases = ck.strings(item["phrases"], f"{where}.{kind}[{j}].phrases")
            add(phrases, f"{where}.{kind}[{j}].phrases", (m.POSITION, devices, kind, rng))
