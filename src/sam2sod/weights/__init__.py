"""Official SAM2 / SAM2.1 weights by name: registry, cache folder, download, verification.

The eight official files (SAM2 of 07/2024 and SAM2.1 of 09/2024, Hiera tiny / small / base+ / large) come
from Meta's download host, with the Hugging Face mirror as the second source. `download_weights(NAME)`
stores one in the cache folder (`SAM2SOD_WEIGHTS_DIR`, else `$XDG_CACHE_HOME/sam2sod/weights`, else
`~/.cache/sam2sod/weights`) after checking it: its size, its key set and every tensor shape against the
named variant (the strict loader's own expectations), and its SHA-256, which is written beside it in
`FILE.json` at the first download and compared on every later check. `model.checkpoint: sam2.1_hiera_tiny`
(a name, not a path) loads the file from the cache (`resolve_checkpoint`).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sam2sod.errors import SodError
from sam2sod.outputs import in_output_scope
from sam2sod.safe_load import WEIGHTS_CHECKS

__all__ = ["OFFICIAL", "WEIGHTS_ENV", "Verified", "WeightsEntry", "checked_sha256", "download_weights", "get_entry",
           "read_record", "record_path", "resolve_checkpoint", "verify_file", "weights_dir"]

WEIGHTS_ENV = "SAM2SOD_WEIGHTS_DIR"
META_HOST = "https://dl.fbaipublicfiles.com/segment_anything_2"
HF_HOST = "https://huggingface.co/facebook"
_RELEASE = {"sam2": "072824", "sam2.1": "092824"}
_MIB = {"tiny": 149, "small": 176, "base_plus": 309, "large": 857}  # approximate file sizes (MiB)
_HF_SIZE = {"tiny": "tiny", "small": "small", "base_plus": "base-plus", "large": "large"}


@dataclass(frozen=True)
class WeightsEntry:
    """One downloadable checkpoint: `name` (also the config value), its variant, file name and sources."""

    name: str
    version: str  # sam2 | sam2.1
    size: str  # tiny | small | base_plus | large
    filename: str
    urls: tuple[str, ...]  # tried in order: Meta's host, then the Hugging Face mirror
    approx_bytes: int
    sha256: str | None = None  # a published value, where one is known
    size_tolerance: float = 0.05  # the file may differ from approx_bytes by this fraction

    @property
    def variant(self) -> str:
        return f"{self.version} hiera {self.size}"


def _official() -> dict[str, WeightsEntry]:
    out = {}
    for version in ("sam2", "sam2.1"):
        for size, mib in _MIB.items():
            name = f"{version}_hiera_{size}"
            urls = (f"{META_HOST}/{_RELEASE[version]}/{name}.pt",
                    f"{HF_HOST}/{version}-hiera-{_HF_SIZE[size]}/resolve/main/{name}.pt")
            out[name] = WeightsEntry(name, version, size, f"{name}.pt", urls, mib * 2**20)
    return out


OFFICIAL: dict[str, WeightsEntry] = _official()


def _registry(registry: Mapping[str, WeightsEntry] | None) -> Mapping[str, WeightsEntry]:
    return OFFICIAL if registry is None else registry


def get_entry(name: str, registry: Mapping[str, WeightsEntry] | None = None) -> WeightsEntry:
    """The registry entry `name`; SodError listing the names otherwise."""
    reg = _registry(registry)
    if name not in reg:
        raise SodError(f"unknown weights {name!r}: the official names are {', '.join(reg)} (sam2sod weights list)")
    return reg[name]


def weights_dir(folder: str | os.PathLike | None = None) -> Path:
    """`folder`, else $SAM2SOD_WEIGHTS_DIR, else $XDG_CACHE_HOME/sam2sod/weights (~/.cache/sam2sod/weights)."""
    if folder is not None:
        return Path(folder).expanduser()
    env = os.environ.get(WEIGHTS_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or "~/.cache"
    return Path(cache).expanduser() / "sam2sod" / "weights"


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


# ---- records: the SHA-256 of a downloaded file, beside it

def record_path(path: str | os.PathLike) -> Path:
    """`FILE.json` beside `FILE`."""
    p = Path(path)
    return p.with_name(p.name + ".json")


def read_record(path: str | os.PathLike) -> dict[str, Any] | None:
    """The download record of `path`, or None when it has none (or an unreadable one)."""
    try:
        data = json.loads(record_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("sha256"), str) else None


def _write_record(path: Path, entry: WeightsEntry, sha256: str, source: str) -> None:
    from sam2sod.atomic import atomic_write_text

    st = path.stat()
    record = {"name": entry.name, "file": path.name, "variant": entry.variant, "bytes": st.st_size,
              "sha256": sha256, "mtime_ns": st.st_mtime_ns, "source": source,
              "recorded": time.strftime("%Y-%m-%d %H:%M:%S"), "written_by": "sam2sod weights download"}
    atomic_write_text(record_path(path), json.dumps(record, indent=2) + "\n")


def _check_record(path: Path, sha256: str | None = None) -> bool:
    """Compare `path` with its record (the hash only when size or mtime changed, unless `sha256` is given).

    Returns whether a record exists; SodError when the file is not the one recorded.
    """
    from sam2sod.models.sam2_backbone import file_sha256

    record = read_record(path)
    if record is None:
        return False
    st = path.stat()
    again = (f"check it with `sam2sod weights verify {path}`, or delete it (and {record_path(path).name}) and run "
             f"`sam2sod weights download {record.get('name', '')}`")
    if record.get("bytes") not in (None, st.st_size):
        raise SodError(f"{path} has {st.st_size:,} bytes, but {record['bytes']:,} were recorded when it was "
                       f"downloaded ({record.get('recorded', '?')}): the file changed; {again}")
    if sha256 is None and record.get("mtime_ns") == st.st_mtime_ns:
        return True
    got = sha256 or file_sha256(path)
    if got != record["sha256"]:
        raise SodError(f"{path} has sha256 {got[:16]}..., but {record['sha256'][:16]}... was recorded when it was "
                       f"downloaded ({record.get('recorded', '?')}): the file changed; {again}")
    return True


WEIGHTS_CHECKS.append(_check_record)  # every SAM2 weights load (`models.load_checkpoint`) checks the record


def checked_sha256(path: str | os.PathLike) -> str | None:
    """The SHA-256 of a weights file about to be loaded, after comparing it with the file's download record.

    Every load hashes the whole file (a 149 MiB file takes well under a second), so a file changed in place
    is refused even when its size and modification time were kept; `SodError` names the file and the fix.
    None when `path` is not a readable file (the loader then says what is wrong with it).
    """
    from sam2sod.models.sam2_backbone import file_sha256

    p = Path(path)
    try:
        sha = file_sha256(p) if p.is_file() else None
    except OSError:
        return None
    if sha is not None:
        _check_record(p, sha)
    return sha


# ---- verification

@functools.lru_cache(maxsize=8)
def _expected_shapes(version: str, size: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Key -> shape of the official state dict of a variant (from sam2's own config; no image-size dependence)."""
    import warnings

    from sam2sod.models.sam2_backbone import RandomInitWarning, build_sam2_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomInitWarning)
        import logging

        log = logging.getLogger("sam2sod.models.sam2_backbone")
        level = log.level
        log.setLevel(logging.ERROR)
        try:
            sd = build_sam2_model(version, size, image_size=64, seed=0).state_dict()
        finally:
            log.setLevel(level)
    return tuple((k, tuple(v.shape)) for k, v in sd.items())


@dataclass
class Verified:
    """What `verify_file` found: the variant, size and hash, and whether a download record vouches for it."""

    path: Path
    version: str
    size: str
    nbytes: int
    sha256: str
    recorded: bool  # a download record exists and matches
    published: bool  # the entry's published sha256 is known and matches
    format: str = "sam2"  # "sam2" (official names) | "transformers" (Sam2Model layout; see sam2sod.hf_format)

    @property
    def variant(self) -> str:
        return f"{self.version} hiera {self.size}"


def entry_for_file(path: str | os.PathLike, registry: Mapping[str, WeightsEntry] | None = None
                   ) -> WeightsEntry | None:
    """The registry entry whose file name `path` has, if any."""
    name = Path(path).name.removesuffix(".part")
    return next((e for e in _registry(registry).values() if e.filename == name), None)


def verify_file(path: str | os.PathLike, entry: WeightsEntry | None = None, *, check_record: bool = True
                ) -> Verified:
    """Check that `path` is a complete official checkpoint (of `entry`'s variant when given); SodError why not.

    Checks, in order: size (near `entry.approx_bytes`), the SHA-256 against the download record beside the
    file (`check_record`), readable as weights (no pickled code), the variant its keys show, every key and
    tensor shape of that variant, and the entry's published SHA-256 where known.
    """
    import torch

    from sam2sod.models.sam2_backbone import (
        describe_variant,
        detect_variant,
        file_sha256,
        read_state_dict,
        state_dict_mismatch,
    )

    p = Path(path)
    if not p.is_file():
        raise SodError(f"{p} not found" if not p.exists() else f"{p} is not a file")
    nbytes = p.stat().st_size
    if entry is not None and abs(nbytes - entry.approx_bytes) > entry.size_tolerance * entry.approx_bytes:
        raise SodError(f"{p} has {mib(nbytes)}, but {entry.name} has about {mib(entry.approx_bytes)}: not the "
                       "official file (a truncated or a different download)")
    sha = file_sha256(p)
    recorded = _check_record(p, sha) if check_record else False  # a changed file: say so before parsing it
    from sam2sod.hf_format import FORMAT_NAMES, detect_format, image_path_keys, is_safetensors, read_base_state_dict

    fmt = detect_format(p) if is_safetensors(p) else "sam2"  # a pickle is read once, below
    if fmt == "sam2sod-export":
        raise SodError(f"{p} is {FORMAT_NAMES[fmt]} (format sam2sod export), not an official SAM2 checkpoint: "
                       f"open its folder with `--checkpoint {p.parent}` or `model.init_from: {p.parent}`")
    sd, fmt = read_base_state_dict(p) if fmt == "transformers" else (read_state_dict(p), fmt)
    version, size = detect_variant(sd)
    if fmt == "transformers" and version is not None:  # no memory keys: SAM2 and SAM2.1 look alike (same image path)
        version = entry.version if entry is not None else "sam2.1"
    if entry is not None and (version, size) != (entry.version, entry.size):
        raise SodError(f"{p} is {describe_variant(version, size)}, not {entry.name} ({entry.variant})")
    if version is None or size is None:
        raise SodError(f"{p} is none of the official SAM2 / SAM2.1 variants: it is {describe_variant(version, size)}")
    expected = {k: torch.empty(s, device="meta") for k, s in _expected_shapes(version, size)}
    if fmt == "transformers":  # transformers' Sam2Model holds the still-image path only
        expected = image_path_keys(expected)
    problem = state_dict_mismatch(expected, sd)
    del sd
    if problem:
        raise SodError(f"{p} looks like {version} hiera {size} ({FORMAT_NAMES[fmt]}) but does not match its "
                       f"official key set: {problem}")
    published = entry is not None and entry.sha256 is not None
    if published and sha != entry.sha256:
        raise SodError(f"{p} has sha256 {sha[:16]}..., but the published {entry.name} has {entry.sha256[:16]}...: "
                       "not the official file")
    return Verified(p, version, size, nbytes, sha, recorded, published, fmt)


# ---- download

def _check_free_space(folder: Path, need: int) -> None:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < need:
        raise SodError(f"not enough free disk space in {folder} for the download: {mib(free)} free, "
                       f"need about {mib(need)}")


@in_output_scope
def download_weights(name: str, folder: str | os.PathLike | None = None, *,
                     registry: Mapping[str, WeightsEntry] | None = None, overwrite: bool = False,
                     progress: bool = True, timeout: float = 30.0, retries: int = 3) -> Verified:
    """Download official weights `name` into `folder` (default: the cache), resuming a partial download.

    A finished download is verified (`verify_file`) before it is renamed into place and its SHA-256 recorded;
    a file already there is verified instead (and recorded if it has no record yet). Offline, the SodError
    says which URL to fetch by hand and how to verify the file.
    """
    from sam2sod.outputs import prepare_output_dir
    from sam2sod.weights.download import DownloadError, OfflineError, download_to_part

    entry = get_entry(name, registry)
    out = weights_dir(folder)
    prepare_output_dir(out, overwrite=overwrite, inputs=[], command="weights download",
                       legacy_files=(entry.filename,))
    dest = out / entry.filename
    if dest.is_file():
        found = verify_file(dest, entry)
        if not found.recorded:
            _write_record(dest, entry, found.sha256, "found in the folder (not downloaded by sam2sod)")
        return found
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    _check_free_space(out, int(entry.approx_bytes * (1 + entry.size_tolerance)) - have)
    try:
        url = download_to_part(entry.urls, part, timeout=timeout, retries=retries, progress=progress,
                               desc=entry.filename)
    except OfflineError as e:
        mirror = f" (or {entry.urls[1]})" if len(entry.urls) > 1 else ""
        raise SodError(f"cannot download {name}: {e}. Offline? Fetch {entry.urls[0]}{mirror} by hand into {dest}, "
                       f"then check it with `sam2sod weights verify {dest}`") from None
    except DownloadError as e:
        raise SodError(f"cannot download {name}: {e}") from None
    try:
        found = verify_file(part, entry, check_record=False)
    except SodError as e:
        part.unlink(missing_ok=True)
        raise SodError(f"the file downloaded from {url} is not the official {name} (removed it): {e}") from None
    os.replace(part, dest)
    _write_record(dest, entry, found.sha256, url)
    found.path = dest
    return found


# ---- model.checkpoint by name

def resolve_checkpoint(value: str | os.PathLike, registry: Mapping[str, WeightsEntry] | None = None) -> str:
    """A checkpoint path for `value`: an official name resolves from the cache, anything else is a path.

    SodError when the named file is not in the cache (with the command that downloads it), or when it
    no longer matches its download record.
    """
    text = os.fspath(value)
    reg = _registry(registry)
    if text in reg and not Path(text).exists():
        entry = reg[text]
        path = weights_dir() / entry.filename
        if not path.is_file():
            raise SodError(f"the SAM2 weights {text} are not in the weights cache {path.parent}: get them with "
                           f"`sam2sod weights download {text}` (or set {WEIGHTS_ENV} to the folder that holds "
                           f"{entry.filename})")
        _check_record(path)
        return str(path)
    p = Path(text)
    known = entry_for_file(p, reg)
    if not p.exists() and known is not None:
        raise SodError(f"SAM2 checkpoint not found: {text} (to use the weights cache write the name "
                       f"`{known.name}` instead of a path; `sam2sod weights download {known.name}` fetches it)")
    return text


# ---- text for the command line

def list_lines(folder: str | os.PathLike | None = None, registry: Mapping[str, WeightsEntry] | None = None
               ) -> list[str]:
    """`sam2sod weights list`: one line per file (name, variant, size, whether cached) and its sources."""
    out = weights_dir(folder)
    lines = [f"{'name':<24}{'variant':<22}{'size':>12}  cached in {out}"]
    for e in _registry(registry).values():
        cached = "yes" if (out / e.filename).is_file() else "no"
        lines.append(f"{e.name:<24}{e.variant:<22}{'~' + mib(e.approx_bytes):>12}  {cached}")
        lines += [f"    {url}" for url in e.urls]
    lines.append(f"download one with `sam2sod weights download NAME` (folder: --dir, or {WEIGHTS_ENV}); "
                 "use it with `model.checkpoint: NAME`")
    return lines


def verified_line(found: Verified) -> str:
    """One line saying what `verify_file` found."""
    if found.recorded:
        how = "matches the sha256 recorded at download"
    else:
        how = "no download record beside it"
    if found.published:
        how += ", matches the published sha256"
    layout = ("transformers' Sam2Model layout, official image-path key set and tensor shapes"
              if found.format == "transformers" else "official key set and tensor shapes")
    return (f"{found.path}: {found.variant} ({layout}), format {found.format}, {found.nbytes:,} bytes, "
            f"sha256 {found.sha256} ({how})")
