"""The site secret key and the keyed pseudonyms derived from it.

A plain hash of a medical record number can be reversed by trying every number, so every identifier that
enters the store is replaced by HMAC-SHA256 under a random 256-bit site key kept outside the store (file mode
0600). The same key gives the same pseudonym for the same patient in every later ingest, which keeps a growing
archive linkable; losing the key breaks that linkage but reveals nothing. The key is never printed or logged;
``fingerprint`` (an HMAC of a fixed label) identifies which key made a store without revealing it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from radadapt import atomic
from radadapt.errors import PrivacyError, UsageError

KEY_BYTES = 32
PSEUDONYM_HEX = 20  # 80 bits: collision-free at 10^7 patients, short enough for file names


class SiteKey:
    """A loaded site key. ``repr`` never shows the secret."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes):
        if len(key) < 16:
            raise PrivacyError("sitekey.too_short", "the site key must be at least 128 bits")
        self._key = key

    def __repr__(self) -> str:
        return f"SiteKey(fingerprint={self.fingerprint()})"

    def digest(self, domain: str, *parts: str) -> bytes:
        """HMAC-SHA256 over ``domain`` and ``parts`` joined by NUL (so ("ab","c") != ("a","bc"))."""
        msg = "\x00".join((domain, *parts)).encode("utf-8")
        return hmac.new(self._key, msg, hashlib.sha256).digest()

    def pseudonym(self, domain: str, value: str, issuer: str = "") -> str:
        """A stable hex pseudonym for ``value`` in ``domain`` (patient, study, image, ...)."""
        return self.digest(domain, issuer, value.strip()).hex()[:PSEUDONYM_HEX]

    def uid(self, value: str) -> str:
        """A valid DICOM UID ("2.25." + decimal of 128 bits): <= 44 chars, no leading zero."""
        return "2.25." + str(int.from_bytes(self.digest("uid", value)[:16], "big"))

    def unit_interval(self, domain: str, value: str) -> float:
        """A deterministic number in [0, 1) for ``value`` (used for splits and subsets)."""
        return int.from_bytes(self.digest(domain, value)[:8], "big") / 2**64

    def fingerprint(self) -> str:
        """Identifies the key (safe to record in stores and reports); not a secret."""
        return self.digest("radadapt-key-fingerprint").hex()[:16]


def create_key(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a new random key file (hex, mode 0600). Refuses to replace an existing key unless asked."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise UsageError(
            "sitekey.exists",
            f"a site key already exists at {target}; replacing it would break linkage with earlier stores",
            hint="keep the existing key, or pass --force if you really want a new one",
        )
    atomic.write_text(target, secrets.token_hex(KEY_BYTES) + "\n", perms=0o600)
    return target


def load_key(path: str | os.PathLike) -> SiteKey:
    """Load a key file, refusing files that other users can read."""
    target = Path(path)
    if not target.is_file():
        raise UsageError(
            "sitekey.missing",
            f"site key file not found: {target}",
            hint="create one with `radadapt init SITE_DIR` and pass SITE_DIR/site.key",
        )
    mode = target.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PrivacyError(
            "sitekey.permissions",
            f"site key {target} is readable by other users (mode {stat.S_IMODE(mode):o})",
            hint=f"run: chmod 600 {target}",
        )
    text = target.read_text(encoding="ascii", errors="strict").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise PrivacyError("sitekey.invalid", f"site key {target} is not a hex key written by radadapt") from None
    return SiteKey(key)
