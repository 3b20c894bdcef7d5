import tomllib

import pytest

from radadapt.config import SiteConfig, load_config, template_text
from radadapt.errors import ConfigError


def _leaves(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def test_template_equals_defaults_field_for_field():
    parsed = tomllib.loads(template_text())
    assert SiteConfig.model_validate(parsed) == SiteConfig()
    defaults = SiteConfig().model_dump(exclude_none=True)
    in_template = set(_leaves(parsed))
    missing = [k for k in _leaves(defaults) if k not in in_template]
    assert not missing, f"template lacks settings: {missing}"
    text = template_text()
    for section, fields in SiteConfig().model_dump().items():
        if isinstance(fields, dict):
            for name, value in fields.items():
                if value is None:  # optional settings appear commented out
                    assert f"# {name} =" in text, f"{section}.{name} is not documented in the template"


def test_typo_is_a_one_line_error(tmp_path):
    cfg = tmp_path / "radadapt.toml"
    cfg.write_text("[ingest]\nresolutoin = 512\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert "ingest.resolutoin" in str(info.value)


def test_bad_split_rejected(tmp_path):
    cfg = tmp_path / "radadapt.toml"
    cfg.write_text("[ingest.split]\ntrain = 0.9\nval = 0.2\ntest = 0.1\n")
    with pytest.raises(ConfigError):
        load_config(cfg)


def test_relative_paths_resolve_against_config(tmp_path):
    cfg = tmp_path / "radadapt.toml"
    cfg.write_text('[site]\nkey_file = "keys/site.key"\n')
    loaded = load_config(cfg)
    assert loaded.resolve(loaded.site.key_file) == tmp_path / "keys" / "site.key"
