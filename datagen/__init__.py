"""worldforge datagen: record action-annotated episodes (MP4 + CSV + meta.json)."""

__version__ = "0.1.0"
