"""radadapt: adapt open chest X-ray foundation encoders to a hospital's own archive, offline."""

__version__ = "0.1.0"
