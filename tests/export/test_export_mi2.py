"""MI2 exports: timm loads the image tower, the released layout loads strictly and reads plainly, the text tower,
projections and tokenizer are complete, and a planted identifier in a tokenizer file stops the export."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from radadapt.errors import PrivacyError
from radadapt.export.provenance import PROVENANCE, sha256_file

EXPECTED = {"MODEL_CARD.md", "provenance.json", "image_tower/model.safetensors", "image_tower/config.json",
            "text_tower/model.safetensors", "text_tower/config.json", "projections.safetensors",
            "tokenizer/vocab.json", "tokenizer/merges.txt", "tokenizer/tokenizer_config.json",
            "tokenizer/special_tokens_map.json", "mi2/config.yaml", "mi2/vision_model/medimageinsigt-v1.0.0.pt",
            *(f"mi2/language_model/clip_tokenizer_4.16.2/{f}" for f in ("vocab.json", "merges.txt",
                                                                         "tokenizer_config.json",
                                                                         "special_tokens_map.json"))}


@pytest.fixture(scope="module")
def source(mi2_export):
    from radadapt.models import mi2

    run = mi2_export[0]
    return mi2.load_pretrained(run / "final")


def test_layout_and_provenance(mi2_export):
    run, out, result = mi2_export
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == EXPECTED
    prov = json.loads((out / PROVENANCE).read_text())
    assert set(prov["files"]) == EXPECTED - {PROVENANCE}
    assert all(rec["sha256"] == sha256_file(out / rel) for rel, rec in prov["files"].items())
    assert prov["family"] == "mi2" and prov["run_fingerprint"] == prov["encoder_fingerprint"]
    # the tokenizer is copied byte for byte from the run
    for name in ("vocab.json", "merges.txt"):
        original = (run / "final" / "language_model/clip_tokenizer_4.16.2" / name).read_bytes()
        assert (out / "tokenizer" / name).read_bytes() == original
    # files byte-identical to the base are listed, not scanned: the tokenizer, config.yaml and (this assembled run
    # did not train) the released weights file; everything else is scanned
    unchanged = set(prov["phi_scan"]["files_unchanged_from_base"])
    assert unchanged == {"mi2/config.yaml", "mi2/vision_model/medimageinsigt-v1.0.0.pt",
                         *(p for p in EXPECTED if "tokenizer" in p)}
    assert prov["phi_scan"]["files_scanned"] == len(EXPECTED) - len(unchanged)
    card = (out / "MODEL_CARD.md").read_text()
    assert "timm.create_model(\"local-dir:EXPORT_DIR/image_tower\"" in card and "text tower was trained" in card
    assert "Licence of the base weights: none" in card


def test_timm_loads_the_image_tower_both_ways(mi2_export, source):
    """The card's snippet, run as written: timm's local-dir folder, then the issue's entry point
    ``create_model("davit_huge_fl", pretrained=True, pretrained_cfg_overlay=dict(file=...), num_classes=0)``
    (the tiny sizes as keyword arguments; the real model needs none)."""
    import timm

    _, out, _ = mi2_export
    model = source[0]
    card = (out / "MODEL_CARD.md").read_text()
    code = card.split("```python\n", 1)[1].split("```", 1)[0].replace("EXPORT_DIR", str(out))
    code = code.replace("# or, equivalently:", "first = tower")
    assert "local-dir:" in code and "pretrained_cfg_overlay=dict(file=" in code and "num_classes=0" in code
    scope = {"pixel_values": torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(1))}
    exec(compile(code, "MODEL_CARD.md", "exec"), scope)  # noqa: S102 - the card's own example, on our export
    ours = model.image_encoder.state_dict()
    for tower in (scope["first"], scope["tower"]):  # timm loads *_fl files non-strictly: prove every tensor arrived
        theirs = tower.state_dict()
        assert list(theirs) == list(ours) and all(torch.equal(theirs[k], ours[k]) for k in ours)
    with torch.no_grad():
        assert torch.allclose(scope["features"], model.image_features(scope["pixel_values"]), atol=1e-6)
    data = timm.data.resolve_data_config({}, model=scope["first"])
    assert tuple(data["input_size"]) == (3, 112, 112) and data["crop_pct"] == 1.0 and data["interpolation"] == "bicubic"


def test_released_layout_loads_strictly_and_reads_plainly(mi2_export, source):
    from safetensors import safe_open

    from radadapt.models import mi2, registry

    _, out, result = mi2_export
    model = source[0]
    again = mi2.load_pretrained(out / "mi2")[0]
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with safe_open(str(out / "mi2" / mi2.WEIGHTS_FILE), "pt") as fh:  # a plain read, released names
        keys = set(fh.keys())
        assert {"image_encoder.convs.0.proj.weight", "image_encoder.norms.weight", "lang_encoder.ln_final.weight",
                "lang_encoder.token_embedding.weight", "image_projection", "lang_projection", "logit_scale"} <= keys
        assert torch.equal(fh.get_tensor("lang_projection"), model.lang_projection.detach())
    assert registry.detect_family(out) == "mi2"
    enc = registry.load_encoder(out)
    assert enc.fingerprint == result["encoder_fingerprint"] == registry.load_encoder(mi2_export[0]).fingerprint


def test_text_tower_projections_and_tokenizer(mi2_export, source):
    from safetensors.torch import load_file
    from transformers import CLIPTokenizer

    from radadapt.models import mi2

    _, out, _ = mi2_export
    model, tok, cfg, _ = source
    text = load_file(str(out / "text_tower" / "model.safetensors"))
    ours = {k.removeprefix("lang_encoder."): v for k, v in model.state_dict().items() if k.startswith("lang_encoder.")}
    assert text.keys() == ours.keys() and all(torch.equal(text[k], ours[k]) for k in ours)
    assert "token_embedding.weight" in text and "resblocks.0.attn.in_proj_weight" in text
    heads = load_file(str(out / "projections.safetensors"))
    assert set(heads) == {"image_projection", "lang_projection", "logit_scale"}
    assert torch.equal(heads["logit_scale"], model.logit_scale.detach())
    conf = json.loads((out / "text_tower" / "config.json").read_text())
    assert conf["vocab_size"] == cfg.vocab_size and conf["width"] == cfg.text_width and conf["bidirectional"]
    exported = CLIPTokenizer.from_pretrained(str(out / "tokenizer"), local_files_only=True)
    assert exported("x-ray chest pleural effusion")["input_ids"] == tok("x-ray chest pleural effusion")["input_ids"]
    # the pieces alone reproduce the joint embedding: text tower + first-EOS pooling + projection
    enc = mi2.tokenize(tok, ["x-ray chest pleural effusion"])
    with torch.no_grad():
        expected = model.encode_text(enc["input_ids"], enc["attention_mask"], normalize=False)
        assert torch.allclose(model.text_features(enc["input_ids"], enc["attention_mask"]) @ heads["lang_projection"],
                              expected, atol=1e-6)


def test_identifier_planted_in_a_tokenizer_file_stops_the_export(mi2_run, export_site, planted_name, tmp_path):
    from radadapt.export.exporter import ExportRequest, export_run

    run = tmp_path / "planted-run"
    shutil.copytree(mi2_run, run)
    cfg = run / "final" / "language_model/clip_tokenizer_4.16.2/tokenizer_config.json"
    data = json.loads(cfg.read_text())
    data["comment"] = f"vocabulary reviewed with {planted_name}"
    cfg.write_text(json.dumps(data, indent=2))
    out = tmp_path / "exports" / "mi2"
    with pytest.raises(PrivacyError) as err:
        export_run(ExportRequest(run=run, out=out, site_key=export_site["key"]))
    assert err.value.code == "export.phi_found"
    message = str(err.value)
    assert "tokenizer_config.json" in message and "a person's name" in message and "nothing was written" in message
    assert not any(part.lower() in message.lower() for part in planted_name.replace("^", " ").split())
    assert "tokenizer" in err.value.hint
    assert not out.exists() and list((tmp_path / "exports").iterdir()) == []  # no partial folder either
