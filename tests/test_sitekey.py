import os
import re

import pytest

from radadapt.errors import PrivacyError, UsageError
from radadapt.sitekey import SiteKey, create_key, load_key


def test_pseudonyms_are_keyed_stable_and_domain_separated(site_key):
    _, key = site_key
    other = SiteKey(os.urandom(32))
    assert key.pseudonym("patient", "MRN123") == key.pseudonym("patient", "MRN123")
    assert key.pseudonym("patient", "MRN123") != other.pseudonym("patient", "MRN123")
    assert key.pseudonym("patient", "MRN123") != key.pseudonym("study", "MRN123")
    assert key.digest("a", "bc") != key.digest("a", "b", "c")
    assert "MRN123" not in repr(key)


def test_uid_is_valid_dicom_uid(site_key):
    _, key = site_key
    uid = key.uid("1.2.840.113619.2.55.3.1234")
    assert re.fullmatch(r"2\.25\.[1-9][0-9]*", uid) and len(uid) <= 64


def test_unit_interval_is_uniformish(site_key):
    _, key = site_key
    xs = [key.unit_interval("split", str(i)) for i in range(4000)]
    assert all(0 <= x < 1 for x in xs)
    assert abs(sum(xs) / len(xs) - 0.5) < 0.03


def test_key_file_mode_and_refusals(tmp_path):
    path = create_key(tmp_path / "k")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(UsageError):
        create_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(PrivacyError):
        load_key(path)
    os.chmod(path, 0o600)
    path.write_text("not hex at all")
    os.chmod(path, 0o600)
    with pytest.raises(PrivacyError):
        load_key(path)
    with pytest.raises(UsageError):
        load_key(tmp_path / "missing")
