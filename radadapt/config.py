"""Settings for every stage, as pydantic models composed under one site config (``radadapt.toml``).

``templates/radadapt.toml`` mirrors these models field for field (a test checks it); ``radadapt init SITE_DIR``
copies it into the site directory. Unknown keys are errors (``extra="forbid"``), so a typo is a one-line message
rather than a silently ignored setting. Values derived from others (an lr scaled by batch size, prototype counts
chosen from the data size) are computed where they are used, never written back here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from radadapt.errors import ConfigError

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

CONFIG_FILENAME = "radadapt.toml"
CONFIG_ENV = "RADADAPT_CONFIG"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# -- site --------------------------------------------------------------------------------------------------------
class SiteSection(Section):
    name: str = "my-hospital"  # shown in model cards and reports; never a patient identifier
    key_file: str = "site.key"  # relative to the config file's directory
    private_dir: str = "private"  # audit files (source paths, identifier fingerprints); mode 0700, never exported


# -- ingest ------------------------------------------------------------------------------------------------------
class SplitSection(Section):
    train: float = 0.8
    val: float = 0.1
    test: float = 0.1

    @model_validator(mode="after")
    def _sums_to_one(self) -> "SplitSection":
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6 or min(self.train, self.val, self.test) < 0:
            raise ValueError(f"split fractions must be >= 0 and sum to 1 (got {total:g})")
        return self


class IngestSection(Section):
    resolution: int = Field(518, ge=32, le=4096)  # short side of stored images (RAD-DINO 518 >= MI2 480)
    workers: int | None = None  # default: all cores
    chunk_files: int = Field(256, ge=1)  # files per resumable work unit
    accession_column: str = "accession_number"
    report_column: str = "report_text"
    patient_column: str = "patient_id"  # optional in the CSV
    date_column: str = "study_date"  # optional in the CSV
    modalities: list[str] = ["CR", "DX"]
    keep_for_processing: bool = False  # DX "FOR PROCESSING" images need site-specific processing first
    views: list[Literal["PA", "AP", "LATERAL", "unknown"]] = ["PA", "AP", "unknown"]
    chest_rule: Literal["tags_and_image", "tags_only", "image_only", "any"] = "tags_and_image"
    keep_unpaired_images: bool = True
    keep_unpaired_reports: bool = False
    dates: Literal["shift", "age_only"] = "shift"
    keep_manufacturer: bool = True  # a quasi-identifier, but needed to study domain shift
    merge_run_rows: int = Field(200_000, ge=1000)  # rows the final merge sorts in memory before spilling to disk
    split: SplitSection = SplitSection()


# -- labels ------------------------------------------------------------------------------------------------------
class LabelsSection(Section):
    schema_file: str | None = None  # default: the packaged templates/labels_schema.yaml
    workers: int | None = None
    text_column: str = "report_text"  # `labels extract`: the report column of the CSV
    encoding: str = "utf-8"  # `labels extract`: encoding of the report CSV
    on_bad_bytes: Literal["error", "replace"] = "error"  # undecodable bytes: stop naming the line, or U+FFFD
    max_report_chars: int = Field(200_000, ge=1000)  # longer reports are labelled on their first N characters
    plugin_model: str | None = None  # optional local transformers classifier refining uncertain labels (off)
    plugin_threshold: float = Field(0.9, gt=0.0, le=1.0)  # minimum class probability for the plugin to decide


# -- train -------------------------------------------------------------------------------------------------------
Auto = Literal["auto"]


class AugmentSection(Section):
    """Multi-crop intensity/geometry augmentation for radiographs (docs/training.md "Augmentations")."""

    hflip: float = Field(0.0, ge=0, le=1)  # off: laterality matters on a chest film
    jitter_p: float = Field(0.8, ge=0, le=1)
    brightness: float = Field(0.4, ge=0, lt=1)
    contrast: float = Field(0.4, ge=0, lt=1)
    gamma: tuple[float, float] = (0.7, 1.4)
    blur_global: list[float] = [1.0, 0.1]  # per global crop (DINOv2's intent; its code applies 0.0 and 0.9)
    blur_local: float = Field(0.5, ge=0, le=1)
    blur_sigma: tuple[float, float] = (0.1, 2.0)


class DinoSection(Section):
    """The DINOv2 objective (RAD-DINO). Defaults are DINOv2's ViT-B values; "auto" = the data-size rule."""

    global_crops: int = Field(2, ge=2)
    global_crop_size: int = Field(224, ge=14)
    global_crop_scale: tuple[float, float] = (0.32, 1.0)
    local_crops: int = Field(8, ge=0)
    local_crop_size: int = Field(98, ge=14)
    local_crop_scale: tuple[float, float] = (0.05, 0.32)
    prototypes: int | Auto = "auto"  # fresh head only; a warm head keeps its own count
    head_hidden_dim: int = 2048
    head_bottleneck_dim: int = 256
    head_layers: int = 3
    student_temp: float = 0.1
    teacher_temp: float | Auto = "auto"  # after warm-up (DINOv2 0.07)
    teacher_temp_start: float | Auto = "auto"  # DINOv2 0.04
    teacher_temp_warmup: float | Auto = "auto"  # fraction of the run (DINOv2 30 of 100 epochs)
    momentum_start: float | Auto = "auto"  # teacher EMA (DINOv2 0.992), cosine to momentum_end
    momentum_end: float = 1.0
    centering: Literal["centering", "sinkhorn_knopp"] = "centering"
    center_momentum: float = 0.9
    sinkhorn_iterations: int = 3
    base_lr: float = 0.004  # at a global batch of lr_reference_batch
    lr_reference_batch: int = 1024
    lr_scaling: Literal["sqrt", "linear", "none"] = "sqrt"
    lr: float | Auto = "auto"  # explicit peak lr (overrides base_lr and scaling)
    min_lr: float = 1e-6
    lr_warmup: float = Field(0.1, ge=0, le=1)  # fraction of the run (DINOv2 10 of 100 epochs)
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    clip_grad: float = 3.0
    layerwise_decay: float = 0.9
    patch_embed_lr_mult: float = 0.2
    freeze_last_layer: float | Auto = "auto"  # fraction of the run with the head's last layer at lr 0
    freeze_backbone: float | Auto = "auto"  # fraction of the run with the backbone at lr 0 (fresh-head warm-up)
    drop_path: float = Field(0.3, ge=0, lt=1)  # student only
    dino_weight: float = 1.0
    ibot_weight: float = 1.0
    koleo_weight: float = 0.1
    koleo_scope: Literal["global", "local"] = "global"  # nearest neighbours over all GPUs, or per GPU (DINOv2)
    mask_probability: float = Field(0.5, ge=0, le=1)
    mask_ratio: tuple[float, float] = (0.1, 0.5)
    collapse_entropy_high: float = 0.98  # mean teacher entropy / log K above this: uniform collapse
    collapse_usage_low: float = 0.05  # entropy of the batch-mean teacher distribution / log K below this: one prototype
    augment: AugmentSection = AugmentSection()


UniclSource = Literal["reports", "findings", "devices"]
MI2AugmentOp = Literal["identity", "rotate", "shear_x", "shear_y", "translate_x", "translate_y", "brightness",
                       "contrast", "sharpness", "gamma", "autocontrast", "equalize"]


class UniclSection(Section):
    """UniCL continual pretraining of MI2 (docs/training_mi2.md). Defaults: the released recipe (config.yaml)."""

    sources: list[UniclSource] = Field(["reports", "findings", "devices"], min_length=1)  # the study's design
    require_labels: bool = True  # findings/devices wanted but no labels.csv: stop (true) or train on reports (false)
    findings: list[str] | Literal["all"] = "all"  # labels.json finding columns used for prompts
    devices: list[str] | Literal["all"] = "all"  # labels.json device columns used for prompts
    use_uncertain: bool = False  # also prompt uncertain findings (-1) / devices ("uncertain")
    label_fraction: float = Field(0.5, ge=0, le=1)  # P(label prompt) for an image that has a report and labels
    label_mode: Literal["one", "set"] = "one"  # one fact per prompt (UniCL single-label), or the study's full set
    prompt_templates: list[str] = Field(["x-ray chest {view} {label}"], min_length=1)
    report_classes: Literal["text", "unique"] = "text"  # equal token sequences share a class, or each pair its own
    lr: float = Field(1e-5, gt=0)  # peak (START_LEARNING_RATE; no batch scaling, as released)
    min_lr: float = Field(1e-9, ge=0)
    warmup: float = Field(0.05, ge=0, le=1)  # fraction of the run (released: 5 of 100 epochs), from 1e-9
    weight_decay: float = Field(0.2, ge=0)
    clip_grad: float = Field(1.0, ge=0)  # 0 = no clipping
    ema: float = Field(0.999, ge=0, lt=1)  # EMA of weights (WEIGHT_SMOOTHING); final/ holds it; 0 = off
    ema_warmup: bool = True  # decay min(ema, (1+t)/(10+t)): short runs do not export the base model
    logit_scale_max: float | None = None  # clamp T = exp(logit_scale) at this value (CLIP: 100); none as released
    drop_path: float | Auto = "auto"  # image tower stochastic depth; auto = config.yaml DROP_PATH_RATE
    freeze: list[str] = []  # regular expressions on parameter names, e.g. "^lang_encoder\\.resblocks\\.[0-2]\\."
    image_size: int | Auto = "auto"  # training crop size; auto = config.yaml IMAGE_SIZE (480)
    crop_scale: tuple[float, float] = (0.8, 1.0)
    crop_ratio: tuple[float, float] = (0.75, 1.3333333)
    augment_ops: list[MI2AugmentOp] = ["identity", "rotate", "shear_x", "shear_y", "translate_x", "translate_y",
                                       "brightness", "contrast", "sharpness", "gamma", "autocontrast", "equalize"]
    erase_p: float = Field(0.25, ge=0, le=1)
    erase_scale: tuple[float, float] = (0.02, 0.33)

    @model_validator(mode="after")
    def _check(self) -> "UniclSection":
        import string

        for template in self.prompt_templates:
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
            if "label" not in fields or fields - {"label", "view"}:
                raise ValueError(f"prompt template {template!r} must use {{label}} and may use only {{view}}")
        if self.image_size != "auto" and (self.image_size < 32 or self.image_size % 4):
            raise ValueError("image_size must be a multiple of 4, at least 32")
        return self


class TrainSection(Section):
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    checkpoint_minutes: float = Field(15.0, gt=0)
    num_workers: int | None = None  # data loader workers (default: from cores)
    seed: int = 0
    batch_size: int = Field(64, ge=1)  # images per process per micro-batch
    accum: int = Field(1, ge=1)  # micro-batches per optimizer step
    epochs: float = Field(100.0, gt=0)  # passes over the training set when neither --max-steps nor --time-budget
    log_every: int = Field(10, ge=1)  # steps between metrics.jsonl rows
    keep_checkpoints: int = Field(2, ge=1)
    checkpoint_steps: int | None = None  # also checkpoint every N steps
    compile: bool = False
    grad_checkpointing: bool = False
    budget_measure_steps: int = Field(8, ge=2)  # steps timed by --time-budget before fixing the schedule
    guard_grad_factor: float = Field(50.0, gt=1)  # grad norm above this x the recent median: exploding
    guard_grad_patience: int = Field(3, ge=1)
    guard_collapse_patience: int = Field(200, ge=1)  # consecutive collapsed steps before stopping
    guard_fp16_skips: int = Field(20, ge=1)  # consecutive fp16 overflow skips before stopping
    dino: DinoSection = DinoSection()
    unicl: UniclSection = UniclSection()


# -- benchmark ---------------------------------------------------------------------------------------------------
class BenchSection(Section):
    bootstrap: int = Field(1000, ge=0)
    min_positives: int = Field(10, ge=1)
    seed: int = 0
    uncertain: Literal["exclude", "positive", "negative"] = "exclude"  # finding -1 / device "uncertain"
    linear_features: list[Literal["cls", "cls+patch_mean", "layers"]] = ["cls", "cls+patch_mean"]
    c_values: int = Field(45, ge=1)  # DINOv2's sweep: 45 log-spaced C in [c_min, c_max]
    c_min: float = Field(1e-6, gt=0)
    c_max: float = Field(1e5, gt=0)
    c_patience: int = Field(6, ge=0)  # end a label's sweep after this many C without a better val AUROC; 0 = all
    max_iter: int = Field(100, ge=1)  # L-BFGS iterations per C of the sweep (warm-started)
    refit_iter: int = Field(500, ge=1)  # at the chosen C
    knn_k: int = Field(20, ge=1)
    knn_temperature: float = Field(0.07, gt=0)
    attentive_probe: bool = False  # attentive pooling over patch tokens (trained; slower)
    attentive_epochs: int = Field(20, ge=1)
    probe_train_images: int = Field(20000, ge=1)  # cap on train-split images for fitting probes (whole patients)
    eval_images: int | None = None  # cap per val/test split (whole patients); default: all
    batch_size: int = Field(32, ge=1)
    cache_dir: str | None = None  # default: RESULTS/cache
    segmentation: bool = True
    seg_images: int = Field(500, ge=1)  # cap per split on images with masks
    seg_epochs: int = Field(30, ge=1)
    seg_tolerance_px: int = Field(3, ge=0)
    overlays: int = Field(4, ge=0)  # overlay PNGs per model and head
    retrieval_gallery: int = Field(5000, ge=2)  # MI2 image -> report retrieval: reports in the gallery
    ood_images: int = Field(100000, ge=1)


# -- export ------------------------------------------------------------------------------------------------------
class ExportSection(Section):
    licence_note: str | None = None  # extra licence text for the model card
    min_cell_count: int = Field(10, ge=1)  # model card breakdowns: smaller counts are shown as "<N"
    card_manufacturers: bool = True  # list scanner manufacturers in the model card's training-data section
    phi_max_phrase: int = Field(8, ge=1, le=32)  # longest run of words tested against the identifier audit


class SiteConfig(Section):
    site: SiteSection = SiteSection()
    ingest: IngestSection = IngestSection()
    labels: LabelsSection = LabelsSection()
    train: TrainSection = TrainSection()
    benchmark: BenchSection = BenchSection()
    export: ExportSection = ExportSection()

    # Where the config came from (None for defaults); relative paths in it resolve against this directory.
    source: Path | None = Field(default=None, exclude=True)

    def resolve(self, relative: str) -> Path:
        base = self.source.parent if self.source else Path.cwd()
        return (base / relative).expanduser()


def _format_validation_error(exc: ValidationError, path: Path) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    kind = first["type"]
    if kind == "extra_forbidden":
        return f"{path}: unknown setting '{where}' (check the spelling against templates/radadapt.toml)"
    return f"{path}: setting '{where}': {first['msg']}"


def load_config(path: str | os.PathLike | None = None) -> SiteConfig:
    """Load a site config: ``path``, else $RADADAPT_CONFIG, else ./radadapt.toml if present, else defaults."""
    candidate = path or os.environ.get(CONFIG_ENV)
    if candidate is None and Path(CONFIG_FILENAME).is_file():
        candidate = CONFIG_FILENAME
    if candidate is None:
        return SiteConfig()
    cfg_path = Path(candidate)
    if not cfg_path.is_file():
        raise ConfigError("config.missing", f"config file not found: {cfg_path}")
    try:
        data = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError("config.syntax", f"{cfg_path} is not valid TOML: {exc}") from None
    try:
        cfg = SiteConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("config.invalid", _format_validation_error(exc, cfg_path)) from None
    cfg.source = cfg_path.resolve()
    return cfg


def template_text() -> str:
    """The packaged site-config template (also what `radadapt init` writes)."""
    from importlib.resources import files

    return files("radadapt.templates").joinpath("radadapt.toml").read_text(encoding="utf-8")
