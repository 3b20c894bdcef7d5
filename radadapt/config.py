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
    split: SplitSection = SplitSection()


# -- labels ------------------------------------------------------------------------------------------------------
class LabelsSection(Section):
    schema_file: str | None = None  # default: the packaged templates/labels_schema.yaml
    workers: int | None = None


# -- train -------------------------------------------------------------------------------------------------------
class TrainSection(Section):
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    checkpoint_minutes: float = Field(15.0, gt=0)
    num_workers: int | None = None  # data loader workers (default: from cores)
    seed: int = 0


# -- benchmark ---------------------------------------------------------------------------------------------------
class BenchSection(Section):
    bootstrap: int = Field(1000, ge=0)
    min_positives: int = Field(10, ge=1)
    seed: int = 0


# -- export ------------------------------------------------------------------------------------------------------
class ExportSection(Section):
    licence_note: str | None = None  # extra licence text for the model card


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
