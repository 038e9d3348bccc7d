"""The sam2sod version (kept in one place: the package, the CLI and the download user agent read it)."""

__version__ = "0.1.0"
