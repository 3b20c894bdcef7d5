"""Model families, their file formats and converters; no training code (docs/models.md, architecture.md §4).

- ``registry``: family names, directory detection, ``load_encoder``, ``describe``; the entry point for other stages.
- ``encoder``: the frozen ``Encoder`` interface; ``sha256_file`` / ``fingerprint_files``.
- ``rad_dino`` (+ ``rad_dino_encoder``, ``convert_dinov2``, ``dino_head``): RAD-DINO / DINOv2 ViT backbones in
  the transformers and Meta layouts, the DINO head, ``load_pretrained`` / ``save_model_dir`` / ``write_tiny``.
- ``mi2`` (+ ``mi2_*``): MedImageInsight.
- ``preprocessing``: a transformers ``preprocessor_config.json`` reproduced on store images.
- ``weights``: safetensors read (checked, never pickle) and write (atomic, reproducible); strict key matching.
- ``hub``: ``models pull``, the only network access in radadapt.

Nothing heavy is imported here: ``import radadapt.models`` must not pull in torch or transformers.
"""
