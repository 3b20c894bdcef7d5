"""Report sentences for planted findings and devices, each with the gold label its wording implies.

Wording follows real reports (labelers.md §7): negation ("No pleural effusion or pneumothorax."),
uncertainty ("Possible small left pleural effusion."), removal ("The endotracheal tube has been removed."),
tip positions ("ETT tip 4 cm above the carina", "tip in the right main bronchus, recommend retraction") and the
usual abbreviations (ETT, NGT/OGT, NG tube, Dobhoff, CVC, R IJ). Each template is chosen so that a careful
reader assigns exactly the label recorded next to it; the labels stage is scored against these.
"""

from __future__ import annotations

import numpy as np

from radadapt.demo.truth import Device, Finding

def _side(f: Finding) -> str:
    return "bilateral" if f.side == "bilateral" else f.side


def finding_sentence(f: Finding, mode: str, rng: np.random.Generator, terse: bool) -> str:
    """A sentence stating ``f`` as ``mode`` (positive / uncertain); sizes and sides match the pixels."""
    side, size, zone = _side(f), f.size, f.zone
    pick = lambda *options: options[int(rng.integers(0, len(options)))]  # noqa: E731
    if f.name == "Pleural Effusion":
        noun = "pleural effusions" if side == "bilateral" else "pleural effusion"
        if mode == "positive":
            return pick(f"{size.capitalize()} {side} {noun}.",
                        f"There is a {size} {side} {noun} with blunting of the costophrenic angle."
                        if side != "bilateral" else f"{size.capitalize()} bilateral {noun}, unchanged in character.")
        return pick(f"Possible small {side} {noun}.",
                    f"Blunting of the {side} costophrenic angle may represent a small effusion."
                    if side != "bilateral" else f"Possible small bilateral {noun}.")
    if f.name == "Consolidation":
        where = f"{side} lower lobe" if zone == "lower" else f"{side} {zone} lung zone"
        if mode == "positive":
            return pick(f"Patchy consolidation in the {where}.", f"Airspace consolidation in the {where}.",
                        f"Dense consolidation in the {where}.")
        return pick(f"Possible early consolidation in the {where}.",
                    f"Ill-defined opacity in the {where}; consolidation cannot be excluded.")
    if f.name == "Nodule":
        mm = int(rng.integers(9, 16))
        if mode == "positive":
            return pick(f"{mm} mm nodule in the {side} {zone} lung zone.",
                        f"A rounded {mm} mm nodule projects over the {side} {zone} lung.")
        return pick(f"Possible nodule in the {side} {zone} lung; recommend CT for further evaluation.",
                    f"Questionable nodule over the {side} {zone} lung zone.")
    if f.name == "Pneumothorax":
        if mode == "positive":
            return pick(f"{size.capitalize()} {side} pneumothorax with a visible pleural line.",
                        f"{side.capitalize()} apicolateral pneumothorax." if terse else
                        f"There is a {size} {side} pneumothorax; the visceral pleural line is clearly seen.")
        return pick(f"Questionable small {side} apical pneumothorax.", f"Possible tiny {side} pneumothorax.")
    if f.name == "Cardiomegaly":
        if mode == "positive":
            return pick("Cardiomegaly.", "The heart is enlarged.", "Moderate cardiomegaly.")
        return pick("Possible mild cardiomegaly.", "The heart may be mildly enlarged.")
    raise ValueError(f.name)


NEGATIONS = {
    "Pleural Effusion": ("No pleural effusion.",),
    "Consolidation": ("No focal consolidation.", "No consolidation."),
    "Nodule": ("No suspicious pulmonary nodule.", "No pulmonary nodules."),
    "Pneumothorax": ("No pneumothorax.",),
    "Cardiomegaly": ("Heart size is normal.", "Normal heart size.", "No cardiomegaly."),
}


def device_sentence(d: Device, mode: str, rng: np.random.Generator, terse: bool) -> tuple[str, str]:
    """(sentence, position label) for a present or uncertain device."""
    pick = lambda *options: options[int(rng.integers(0, len(options)))]  # noqa: E731
    if mode == "uncertain":
        return {
            "endotracheal tube": "A tubular density over the trachea may represent an endotracheal tube.",
            "enteric tube": "Possible enteric tube; its tip is poorly visualized.",
            "central venous catheter": "Possible central venous catheter; the tip is poorly visualized.",
            "chest tube": f"Linear density over the {d.side} hemithorax may represent a chest tube.",
            "cardiac device": "Possible cardiac device partially imaged.",
        }[d.name], ""
    if d.name == "endotracheal tube":
        if d.tip_cm is None:
            return pick("ETT tip in the right main bronchus, recommend retraction.",
                        "The endotracheal tube tip is in the right main bronchus; recommend retraction by 2-3 cm."
                        ), "malpositioned"
        cm = f"{d.tip_cm:g}"
        if terse:
            return pick(f"ETT {cm} cm above carina.", f"ET tube tip {cm} cm above the carina."), "ok"
        return pick(f"ETT tip {cm} cm above the carina.",
                    f"The endotracheal tube tip is {cm} cm above the carina, in satisfactory position."), "ok"
    if d.name == "enteric tube":
        return pick(("Enteric tube courses below the diaphragm with tip in the stomach.", "ok"),
                    ("NGT tip in the stomach.", "ok"), ("NG tube in place.", ""),
                    ("OGT courses below the diaphragm, tip in the gastric body.", "ok"),
                    ("Dobhoff tube with tip below the diaphragm in the stomach.", "ok"))
    if d.name == "central venous catheter":
        if d.side == "right":
            return pick(("Right IJ central venous catheter with tip in the SVC.", "ok"),
                        ("R IJ CVC tip at the cavoatrial junction.", "ok"),
                        ("Right internal jugular central line in place.", ""))
        return pick(("Left subclavian central venous catheter terminates at the cavoatrial junction.", "ok"),
                    ("Left subclavian CVC with tip in the low SVC.", "ok"))
    if d.name == "chest tube":
        return pick((f"{d.side.capitalize()} chest tube in place.", ""),
                    (f"{d.side.capitalize()}-sided chest tube with tip at the apex.", "ok"),
                    (f"{d.side.capitalize()} pleural drain unchanged.", ""))
    if d.name == "cardiac device":
        return pick((f"{d.side.capitalize()} chest wall pacemaker with leads in the right atrium and right "
                     "ventricle.", "ok"),
                    ("Dual-chamber pacemaker, leads unchanged.", ""),
                    (f"{d.side.capitalize()}-sided cardiac device with leads terminating in the right atrium and "
                     "right ventricle.", "ok"))
    raise ValueError(d.name)


REMOVALS = {
    "endotracheal tube": ("The endotracheal tube has been removed.", "Interval extubation.",
                          "Interval removal of the ETT."),
    "enteric tube": ("Interval removal of the enteric tube.", "The NG tube has been removed."),
    "central venous catheter": ("The central venous catheter has been removed.", "Interval removal of the CVC."),
    "chest tube": ("Interval removal of the chest tube.", "The chest tube has been removed."),
    "cardiac device": ("The pacemaker generator and leads have been removed.",),
}
NO_LINES = "No lines or tubes."  # gold: absent for the tubes and lines, not for a cardiac device
NO_LINES_DEVICES = ("endotracheal tube", "enteric tube", "central venous catheter", "chest tube")
INDICATIONS = ("Shortness of breath.", "Fever and cough.", "Evaluate line placement.", "Post intubation.",
               "Chest pain.", "Rule out pneumothorax.", "Hypoxia.", "Evaluate PICC line placement.",
               "Follow-up effusion.", "Preoperative evaluation.")
NORMAL_IMPRESSION = ("No acute cardiopulmonary abnormality.", "No acute cardiopulmonary process.")
