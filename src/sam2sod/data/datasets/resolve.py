"""`--data` arguments: a folder, ``NAME=DIR``, or a NAME mapped to a folder in a YAML datasets file.

The datasets file maps names to folders, one per line (``ECSSD: /data/ECSSD``); relative folders are taken
relative to the file, ``~`` and ``$VARS`` are expanded. It is given with ``--datasets FILE`` or the
environment variable ``SAM2SOD_DATASETS``. Names are matched ignoring case and ``-``/``_`` (see
`sam2sod.data.datasets.registry.normalize_name`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import yaml

from sam2sod.data.datasets.registry import REGISTRY, lookup, normalize_name
from sam2sod.errors import SodError, format_names
from sam2sod.names import check_name, check_stem

__all__ = ["DATASETS_ENV", "find_datasets_file", "load_mapping", "parse_spec", "resolve_data_args"]

DATASETS_ENV = "SAM2SOD_DATASETS"


def find_datasets_file(given: str | os.PathLike | None) -> Path | None:
    """The datasets file to use: `given`, else ``$SAM2SOD_DATASETS`` when set, else None."""
    if given is not None:
        return Path(given)
    env = os.environ.get(DATASETS_ENV, "").strip()
    return Path(env) if env else None


def _where(file: Path, from_env: bool) -> str:
    return f"{file} (from {DATASETS_ENV})" if from_env else str(file)


def load_mapping(file: str | os.PathLike, *, from_env: bool = False) -> dict[str, Path]:
    """{name: folder} from a YAML datasets file; `SodError` on a missing or malformed file."""
    file = Path(file)
    where = _where(file, from_env)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SodError(f"datasets file {where} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SodError(f"cannot read datasets file {where}: {err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SodError(f"datasets file {where} is not valid YAML: {' '.join(str(err).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SodError(f"datasets file {where} must map names to folders (e.g. `ECSSD: /data/ECSSD`), "
                       f"got a {type(data).__name__}")
    mapping: dict[str, Path] = {}
    seen: dict[str, str] = {}
    for key, value in data.items():
        name = str(key).strip()
        check_name(name, "dataset name", f"in datasets file {where}")
        if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
            raise SodError(f"datasets file {where}: {name} must be a folder path, got {value!r}")
        norm = normalize_name(name)
        if norm in seen:
            raise SodError(f"datasets file {where} names one set twice: {seen[norm]} and {name}")
        seen[norm] = name
        folder = Path(os.path.expandvars(os.path.expanduser(str(value).strip())))
        mapping[name] = folder if folder.is_absolute() else file.parent / folder
    return mapping


def parse_spec(spec: str) -> tuple[str | None, str]:
    """(name, value) of one ``--data`` value: ``NAME=DIR`` -> (NAME, DIR); anything else -> (None, spec).

    ``=`` only splits when its left side holds no path separator, so ``./a=b/c`` stays a path.
    """
    left, sep, right = spec.partition("=")
    if sep and left.strip() and "/" not in left and "\\" not in left:
        if not right.strip():
            raise SodError(f"--data {spec}: give a folder after '=' (NAME=DIR)")
        return left.strip(), right.strip()
    return None, spec


def _looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.startswith((".", "~"))


def _unknown(spec: str, mapping: dict[str, Path], file: Path | None) -> SodError:
    info = lookup(spec)
    how = (f"map it in a YAML datasets file (a line `{info.name if info else spec}: /path/to/folder`) given with "
           f"--datasets FILE or {DATASETS_ENV}=FILE, or pass --data {info.name if info else spec}=DIR")
    if info is not None:
        where = f"not in datasets file {file}" if file else "no datasets file is given"
        return SodError(f"--data {spec}: {info.name} is a known dataset but not mapped to a folder ({where}); {how}")
    mapped = f"; names in {file}: {format_names(list(mapping), 12)}" if mapping else ""
    return SodError(f"--data {spec}: no folder {spec} and no dataset of that name; known names: "
                    f"{', '.join(REGISTRY)}{mapped}; {how}")


def _from_mapping(spec: str, mapping: dict[str, Path]) -> tuple[str, Path] | None:
    norm = normalize_name(spec)
    for key, folder in mapping.items():
        if normalize_name(key) == norm:
            info = lookup(key)
            return (info.name if info else key), folder
    info = lookup(spec)  # an alias (CAMO) of a mapped registry name (CAMO-test)
    if info is not None:
        for key, folder in mapping.items():
            if lookup(key) is info:
                return info.name, folder
    return None


def _resolve_one(spec: str, file: Path | None, load: Callable[[], dict[str, Path]], from_env: bool
                 ) -> tuple[str, Path]:
    name, value = parse_spec(spec)
    if name is not None:
        check_name(name, "dataset name", f"in --data {spec}")
        return name, Path(os.path.expanduser(value))
    path = Path(os.path.expanduser(spec))
    if _looks_like_path(spec):
        return path.resolve().name or spec, path
    try:
        mapping = load()
    except SodError:
        if from_env and path.is_dir():  # a stale SAM2SOD_DATASETS does not break plain folders
            return path.resolve().name, path
        raise
    hit = _from_mapping(spec, mapping)
    if hit is not None:
        if path.is_dir() and path.resolve() != Path(hit[1]).resolve():
            raise SodError(f"--data {spec} is both a folder here and a name in datasets file {file} "
                           f"({hit[1]}); write ./{spec} for the folder or {hit[0]}=DIR")
        return hit
    if path.is_dir():
        return path.resolve().name, path
    raise _unknown(spec, mapping, file)


def _check_folder(name: str, spec: str, folder: Path) -> None:
    if not folder.exists():
        raise SodError(f"--data {spec}: folder {folder} of {name} does not exist")
    if not folder.is_dir():
        raise SodError(f"--data {spec}: {folder} of {name} is not a folder")


def resolve_data_args(specs: list[str], datasets_file: str | os.PathLike | None = None, *,
                      must_exist: bool = True) -> list[tuple[str, Path]]:
    """(name, folder) for each ``--data`` value, in order.

    A value is ``NAME=DIR`` (no registry needed), a folder (named after the folder, as before), or a NAME
    from the datasets file (`datasets_file`, else ``$SAM2SOD_DATASETS``). Registered names come back in their
    canonical spelling (``ecssd`` -> ``ECSSD``). Raises `SodError` for an unknown name (listing the known
    ones and how to map it), two values with one name, and (with `must_exist`) a folder that does not exist.
    """
    file = find_datasets_file(datasets_file)
    from_env = datasets_file is None and file is not None
    cache: dict[str, dict[str, Path]] = {}

    def load() -> dict[str, Path]:
        if file is None:
            return {}
        if "m" not in cache:
            cache["m"] = load_mapping(file, from_env=from_env)
        return cache["m"]

    if datasets_file is not None:
        load()  # a file given explicitly is always checked
    resolved: list[tuple[str, Path]] = []
    seen: dict[str, str] = {}
    for spec in specs:
        name, folder = _resolve_one(str(spec), file, load, from_env)
        check_stem(name, "dataset folder name", f"of --data {spec}")  # a folder's own name, e.g. ECSSD or test
        key = name.lower()
        if key in seen:
            raise SodError(f"--data names must be distinct: {name} is given by both --data {seen[key]} and "
                           f"--data {spec}; name them apart with NAME=DIR (e.g. --data {name}2={folder})")
        seen[key] = str(spec)
        if must_exist:
            _check_folder(name, str(spec), folder)
        resolved.append((name, folder))
    return resolved
