"""ConText-style reading of one sentence: which mention is negated, uncertain, removed, and where a tip lies.

After Chapman et al., "ConText: an algorithm for determining negation, experiencer, and temporal status from
clinical reports" (J Biomed Inform 2011) and NegEx (Chapman 2001): a trigger phrase has a direction and a scope
that runs to the end (forward) or the start (backward) of its clause, where clauses end at termination phrases
("but", "however", ";", ", the ...", "with"). Pseudo-triggers ("no change in", "not resolved") are matched so that
they are *not* read as triggers. Where several triggers reach one mention, the nearest wins; for devices a removal
trigger ("has been removed", "interval removal of") wins over all others, and "historical" ("on the prior study")
only counts when nothing else applies.

Additions beyond ConText, needed for chest radiograph reports:

* anatomy + predicate: "heart size is normal", "the mediastinum is not widened", "costophrenic angles are sharp"
  give Cardiomegaly / Enlarged Cardiomediastinum / Pleural Effusion values without a disease word. An anatomy phrase
  pairs with the nearest predicate of its finding within ``predicate_window`` words, in the same hard clause,
  with no other mention in between (so "large hernia posterior to the heart" is not cardiomegaly).
* tip positions: a position phrase belongs to the devices mentioned before it since the previous position phrase
  (so "ETT 4 cm above the carina, NG tube in the stomach" splits correctly), else the nearest device before or
  after it that the phrase applies to; a sentence with a position, no device and an anaphoric word ("Tip ...",
  "It ...") speaks of the previous sentence's devices. A distance before a carina phrase ("1 cm above the carina")
  is checked against the schema's ``ok_cm`` range. Positions are kept only for devices that are present.
* signs, groups and descriptions: a sign ("blunting of the costophrenic angle") counts for its finding only when
  the sentence does not name the finding itself; a negated group phrase ("no lines or tubes") makes each device of
  the group absent (weakly: a device's own mention wins, see aggregate.py); a finding marked ``describes_devices``
  (Lung Opacity) that is linked to a following device ("a linear density ... may represent a chest tube") is a
  description of the device, not a finding.
"""

from __future__ import annotations

from bisect import bisect_left

from radadapt.labels import matcher as m

F, O, D, G, S = 0, 1, 2, 3, 4  # target kinds: finding, other abnormality, device, device group, sign of a finding
_UNITS = {"cm": 1.0, "centimeter": 1.0, "centimetre": 1.0, "mm": 0.1, "millimeter": 0.1, "millimetre": 0.1}


class DeviceMention:
    """One device mention: its state in this sentence and the position values attached to it."""

    __slots__ = ("start", "end", "device", "state", "positions", "weak")

    def __init__(self, start: int, end: int, device: int, state: str, weak: bool = False):
        self.start, self.end, self.device, self.state = start, end, device, state
        self.positions: list[str] = []
        self.weak = weak  # from a group phrase ("no lines or tubes"): counts only if nothing else names the device


def _crosses(bounds: list[int], lo: int, hi: int) -> bool:
    """Is there a boundary b with lo <= b < hi?"""
    i = bisect_left(bounds, lo)
    return i < len(bounds) and bounds[i] < hi


def read_sentence(
    tokens: list[str],
    matches: list[m.Match],
    rules,
    carry: list[DeviceMention],
) -> tuple[list[tuple[int, int]], list[int], list[DeviceMention]]:
    """Findings (index, value 1/0/-1), other-abnormality values, and device mentions of one sentence.

    ``rules`` is the compiled Schema (predicate_window, anaphora, describes_devices); ``carry`` holds the
    previous sentence's present devices, for anaphoric position sentences.
    """
    predicate_window, anaphora = rules.predicate_window, rules.anaphora
    targets: list[tuple[int, int, int, int, object]] = []  # start, end, kind, index, base polarity / implied state
    triggers: list[tuple[int, int, str, str, int | None]] = []
    hard: list[int] = []
    soft: list[int] = []
    anatomy: list[tuple[int, int, int]] = []
    predicates: list[tuple[int, int, int, int]] = []
    positions: list[tuple[int, int, list]] = []
    links: list[int] = []
    for s, e, entries in matches:
        pos_entries = None
        for ent in entries:
            k = ent[0]
            if k == m.FINDING:
                targets.append((s, e, F, ent[1], 1))
            elif k == m.DEVICE:
                targets.append((s, e, D, ent[1], ent[2]))
            elif k == m.TRIGGER:
                triggers.append((s, e, ent[1], ent[2], ent[3]))
            elif k == m.TERM:
                (hard if ent[1] else soft).append(s)
            elif k == m.OTHER:
                targets.append((s, e, O, -1, 1))
            elif k == m.SIGN:
                targets.append((s, e, S, ent[1], 1))
            elif k == m.GROUP:
                targets.append((s, e, G, ent[1], None))
            elif k == m.LINK:
                links.append(s)
            elif k == m.ANATOMY:
                anatomy.append((s, e, ent[1]))
            elif k == m.PREDICATE:
                predicates.append((s, e, ent[1], ent[2]))
            elif k == m.POSITION:
                if pos_entries is None:
                    pos_entries = []
                pos_entries.append(ent)
        if pos_entries:
            positions.append((s, e, pos_entries))
    every = sorted(hard + soft)

    if anatomy and predicates:
        direct = list(targets)
        for a_s, a_e, f in anatomy:
            best = None
            for p_s, p_e, pf, pol in predicates:
                if pf != f:
                    continue
                lo, hi = (a_e, p_s) if p_s >= a_e else (p_e, a_s)
                gap = hi - lo
                if gap < 0 or gap > predicate_window[f] or _crosses(hard, lo, hi):
                    continue
                if any(lo <= t[0] and t[1] <= hi for t in direct):
                    continue
                if best is None or gap < best[0]:
                    best = (gap, min(a_s, p_s), max(a_e, p_e), pol)
            if best is not None:
                targets.append((best[1], best[2], F, f, best[3]))

    if links and rules.describes_devices:
        targets = _drop_device_descriptions(targets, links, hard, rules.describes_devices)

    findings: list[tuple[int, int]] = []
    others: list[int] = []
    devices: list[DeviceMention] = []
    spans = [(t[0], t[1]) for t in targets]
    named = {t[3] for t in targets if t[2] == F}
    for s, e, kind, idx, base in targets:
        if kind == S:
            if idx in named:
                continue  # "blunting ... may represent a small effusion": the effusion mention decides
            kind = F
        mod = _modifier(s, e, D if kind == G else kind, triggers, every, spans)
        if kind == D:
            state = _device_state(mod, base)
            if state is not None:
                devices.append(DeviceMention(s, e, idx, state))
            continue
        if kind == G:
            if _device_state(mod, None) == "absent":
                devices.extend(DeviceMention(s, e, j, "absent", weak=True) for j in sorted(idx))
            continue
        value = _finding_value(mod, base)  # type: ignore[arg-type]
        if kind == F:
            findings.append((idx, value))
        else:
            others.append(value)

    if positions:
        _attach_positions(tokens, positions, devices, carry, anaphora, triggers, every, targets)
    return findings, others, devices


def _drop_device_descriptions(targets: list, links: list[int], hard: list[int], describers: frozenset[int]) -> list:
    """"A linear density ... may represent a chest tube": the density describes the device; it is not a finding."""
    devices = [t for t in targets if t[2] == D]
    if not devices:
        return targets
    keep = []
    for t in targets:
        if t[2] == F and t[3] in describers:
            for d in devices:
                if d[0] >= t[1] and not _crosses(hard, t[1], d[0]) and any(t[1] <= x < d[0] for x in links) \
                        and not any(u[2] == F and t[1] <= u[0] < d[0] for u in targets):
                    break
            else:
                keep.append(t)
            continue
        keep.append(t)
    return keep


def _modifier(s: int, e: int, kind: int, triggers: list, bounds: list[int], spans: list) -> str | None:
    """The trigger kind that governs the mention [s, e), or None."""
    best_d, best_kind = 10**9, None
    removal = historical = alternative = negated = False
    for ts, te, tk, direction, window in triggers:
        if s <= ts and te <= e:
            d = 0  # inside a composite mention: "heart is not enlarged"
        elif te <= s and direction != "backward":
            d, lo, hi = s - te, te, s
        elif ts >= e and direction != "forward":
            d, lo, hi = ts - e, e, ts
        else:
            continue
        if d:
            if _crosses(bounds, lo, hi):
                continue
            # A windowed trigger ("versus", "or", "?") reaches only its immediate neighbours.
            if window is not None and (d > window or any(lo <= a and b <= hi for a, b in spans)):
                continue
        if tk == "historical":
            historical = True
            continue
        if tk == "alternative":
            alternative = True
            continue
        if tk == "removal":
            removal = True
            if kind == D:
                continue
            tk = "negation"
        negated = negated or tk == "negation"
        if d < best_d or (d == best_d and tk == "negation"):
            best_d, best_kind = d, tk
    if kind == D and removal:
        return "removal"
    if alternative and not negated:
        return "uncertainty"  # "atelectasis or pneumonia", unless "no effusion or pneumothorax"
    if best_kind is None and historical and kind == D:
        return "historical"
    return best_kind


def _finding_value(mod: str | None, base: int) -> int:
    if mod is None:
        return base
    if mod == "negation":
        return 1 if base == 0 else 0  # "not normal" is abnormal; "not enlarged" / "no effusion" negative
    if mod == "uncertainty":
        return 0 if base == 0 else -1  # "probably normal" stays negative
    return base


def _device_state(mod: str | None, implied: object) -> str | None:
    if implied == "removed":  # "extubated", "decannulated"
        if mod == "negation":
            return None  # "not yet extubated" says nothing reliable
        return "uncertain" if mod == "uncertainty" else "removed"
    return {None: "present", "negation": "absent", "removal": "removed", "uncertainty": "uncertain",
            "historical": "historical"}[mod]


def _attach_positions(tokens, positions, devices, carry, anaphora, triggers, bounds, targets) -> None:
    if not any(not d.weak for d in devices) and carry and any(t in anaphora for t in tokens):
        # "ETT in place. Tip 4 cm above the carina.": the position speaks of the previous sentence's devices.
        for ps, pe, entries in positions:
            for d in carry:
                ent = _entry_for(entries, d.device)
                value = None if ent is None else _position_value(tokens, ps, pe, ent, triggers, bounds, targets)
                if value is not None:
                    d.positions.append(value)
        return
    pool = [d for d in devices if d.state == "present"]  # a position says nothing about a device not surely there
    if not pool:
        return
    prev_end = -1
    for ps, pe, entries in positions:
        # "<=": a phrase can name the device and its position at once ("esophageal intubation").
        chosen = [(d, ent) for d in pool if prev_end <= d.start <= ps and (ent := _entry_for(entries, d.device))]
        prev_end = pe
        if not chosen:
            before = [d for d in pool if d.start <= ps and _entry_for(entries, d.device) is not None]
            after = [d for d in pool if d.start >= pe and _entry_for(entries, d.device) is not None]
            chosen = [(d, _entry_for(entries, d.device)) for d in (before[-1:] or after[:1])]
        for d, ent in chosen:
            value = _position_value(tokens, ps, pe, ent, triggers, bounds, targets)
            if value is not None:
                d.positions.append(value)


def _entry_for(entries: list, device: int):
    general = None
    for ent in entries:
        if ent[1] is None:
            general = ent
        elif device in ent[1]:
            return ent  # a device's own phrase beats a general one
    return general


def _position_value(tokens, ps, pe, ent, triggers, bounds, targets) -> str | None:
    value = ent[2]
    if value == "neutral":
        return None
    ok_cm = ent[3]
    if ok_cm is not None and ps >= 2 and tokens[ps - 1] in _UNITS:
        try:
            cm = float(tokens[ps - 2]) * _UNITS[tokens[ps - 1]]
        except ValueError:
            cm = None
        if cm is not None:
            value = "ok" if ok_cm[0] <= cm <= ok_cm[1] else "malpositioned"
    for ts, te, tk, direction, window in triggers:
        # "not in satisfactory position": a negation right before the phrase, no other mention in between.
        if tk == "negation" and direction != "backward" and te <= ps and not _crosses(bounds, te, ps):
            if (window is None or ps - te <= window) and not any(te <= t[0] < ps for t in targets):
                return "malpositioned" if value == "ok" else None
    return value
