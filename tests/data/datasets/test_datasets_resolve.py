"""The dataset registry, the YAML datasets file, `--data NAME[=DIR]` resolution and the release layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from sam2sod.data import find_layout
from sam2sod.data.datasets import REGISTRY, load_mapping, lookup, resolve_data_args
from sam2sod.data.datasets.resolve import DATASETS_ENV, parse_spec
from sam2sod.data.discovery import dataset_root_of
from sam2sod.errors import SodError


@pytest.fixture(autouse=True)
def _no_env_file(monkeypatch):
    monkeypatch.delenv(DATASETS_ENV, raising=False)


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_registry_counts_and_roles():
    counts = {name: info.expected for name, info in REGISTRY.items()}
    assert counts == {"DUTS-TR": 10553, "DUTS-TE": 5019, "ECSSD": 1000, "HKU-IS": 4447, "PASCAL-S": 850,
                      "DUT-OMRON": 5168, "SOD": 300, "CAMO-test": 250, "COD10K-test": 2026, "CHAMELEON": 76,
                      "NC4K": 4121, "DIS-TR": 3000, "DIS-VD": 470, "DIS-TE1": 500, "DIS-TE2": 500, "DIS-TE3": 500,
                      "DIS-TE4": 500, "HRSOD-TR": 1610, "HRSOD-TE": 400, "UHRSD-TR": 4932, "UHRSD-TE": 988}
    assert [n for n, i in REGISTRY.items() if i.role == "train"] == ["DUTS-TR", "DIS-TR", "HRSOD-TR", "UHRSD-TR"]
    assert {n for n, i in REGISTRY.items() if i.task == "cod"} == {"CAMO-test", "COD10K-test", "CHAMELEON", "NC4K"}
    assert all(info.layouts for info in REGISTRY.values())


@pytest.mark.parametrize(("given", "name"), [("ecssd", "ECSSD"), ("duts_te", "DUTS-TE"), ("HKUIS", "HKU-IS"),
                                             ("CAMO", "CAMO-test"), ("cod10k", "COD10K-test"), ("x", None),
                                             ("dis5k_te2", "DIS-TE2"), ("UHRSD", "UHRSD-TE")])
def test_lookup_ignores_case_separators_and_knows_aliases(given, name):
    info = lookup(given)
    assert (info.name if info else None) == name


def test_detected_release_layouts_are_detected(tmp_path):
    """Every layout the registry marks as detected is found by find_layout, one root each."""
    seen = set()
    for info in REGISTRY.values():
        for layout in info.layouts:
            key = (layout.images, layout.masks)
            if not layout.detected or key in seen:
                continue
            seen.add(key)
            root = tmp_path / f"{len(seen)}"
            (root / layout.images).mkdir(parents=True)
            (root / layout.masks).mkdir(parents=True)
            assert find_layout(root) == (root / layout.images, root / layout.masks), key
            assert dataset_root_of(root / layout.masks) == root
    assert ("Image", "GT_Object") in seen and ("images", "ground_truth_mask") in seen


def test_cod10k_test_folder_with_its_other_gt_folders(tmp_path):
    for sub in ("Image", "GT_Object", "GT_Edge", "GT_Instance"):
        (tmp_path / sub).mkdir()
    assert find_layout(tmp_path) == (tmp_path / "Image", tmp_path / "GT_Object")


def test_parse_spec():
    assert parse_spec("a=x/test") == ("a", "x/test")
    assert parse_spec("x/test") == (None, "x/test")
    assert parse_spec("./a=b/c") == (None, "./a=b/c")
    with pytest.raises(SodError, match="after '='"):
        parse_spec("a=")


def test_name_eq_dir_needs_no_registry_and_bare_dirs_keep_their_name(tmp_path):
    for sub in ("x/test", "y/test"):
        (tmp_path / sub).mkdir(parents=True)
    got = resolve_data_args([f"a={tmp_path}/x/test", f"b={tmp_path}/y/test", str(tmp_path / "x")], None)
    assert got == [("a", tmp_path / "x/test"), ("b", tmp_path / "y/test"), ("x", tmp_path / "x")]


def test_names_from_the_file_and_the_env_var(tmp_path, monkeypatch):
    (tmp_path / "data" / "ecssd").mkdir(parents=True)
    (tmp_path / "cod").mkdir()
    file = write_yaml(tmp_path / "sets.yaml", "ECSSD: data/ecssd\nCOD10K-test: ~/nowhere\nmine: cod\n")
    mapping = load_mapping(file)
    assert mapping["ECSSD"] == tmp_path / "data/ecssd", "relative to the file"
    assert mapping["COD10K-test"] == Path.home() / "nowhere"
    got = resolve_data_args(["ecssd", "mine"], file)
    assert got == [("ECSSD", tmp_path / "data/ecssd"), ("mine", tmp_path / "cod")]
    monkeypatch.setenv(DATASETS_ENV, str(file))
    assert resolve_data_args(["ECSSD"], None) == [("ECSSD", tmp_path / "data/ecssd")]
    with pytest.raises(SodError, match="CAMO-test is a known dataset but not mapped.*not in datasets file"):
        resolve_data_args(["CAMO"], None)  # not mapped ...
    with pytest.raises(SodError, match=r"folder .*nowhere of COD10K-test does not exist"):
        resolve_data_args(["COD10K"], None)  # ... an alias of a mapped name whose folder is missing
    assert resolve_data_args(["COD10K"], None, must_exist=False) == [("COD10K-test", Path.home() / "nowhere")]


def test_unknown_names_say_how_to_map_them(tmp_path):
    file = write_yaml(tmp_path / "sets.yaml", "mine: .\n")
    with pytest.raises(SodError) as err:
        resolve_data_args(["NOPE"], file)
    msg = str(err.value)
    assert "known names: DUTS-TR, DUTS-TE, ECSSD" in msg and "names in" in msg and "mine" in msg
    assert "--datasets FILE" in msg and DATASETS_ENV in msg and "--data NOPE=DIR" in msg
    with pytest.raises(SodError, match="HKU-IS is a known dataset but not mapped.*no datasets file"):
        resolve_data_args(["hku-is"], None)


def test_duplicate_names_and_folders_that_are_missing(tmp_path):
    (tmp_path / "a" / "test").mkdir(parents=True)
    (tmp_path / "b" / "test").mkdir(parents=True)
    with pytest.raises(SodError, match="distinct.*test is given by both.*NAME=DIR"):
        resolve_data_args([str(tmp_path / "a/test"), str(tmp_path / "b/test")], None)
    with pytest.raises(SodError, match=r"X is given by both --data x=.* --data X=.*e\.g\. --data X2="):
        resolve_data_args([f"x={tmp_path}/a", f"X={tmp_path}/b"], None)
    with pytest.raises(SodError, match=r"folder .*missing of m does not exist"):
        resolve_data_args([f"m={tmp_path}/missing"], None)
    with pytest.raises(SodError, match="invalid dataset name"):
        resolve_data_args(["..=x"], None)


def test_a_name_that_is_also_a_folder_here_is_ambiguous(tmp_path, monkeypatch):
    (tmp_path / "ECSSD").mkdir()
    (tmp_path / "elsewhere").mkdir()
    file = write_yaml(tmp_path / "sets.yaml", "ECSSD: elsewhere\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SodError, match=r"both a folder here and a name.*\./ECSSD"):
        resolve_data_args(["ECSSD"], file)
    assert resolve_data_args(["./ECSSD"], file) == [("ECSSD", Path("./ECSSD"))]
    assert resolve_data_args(["ECSSD"], None) == [("ECSSD", Path("ECSSD"))], "no file: today's behaviour"


@pytest.mark.parametrize(("text", "match"), [
    ("- a\n- b\n", "must map names to folders"),
    ("a: [1]\n", "a must be a folder path"),
    ("ECSSD: x\necssd: y\n", "names one set twice"),
    ("a: b: c\n", "not valid YAML"),
    ("a/b: x\n", "invalid dataset name"),
])
def test_bad_datasets_files(tmp_path, text, match):
    file = write_yaml(tmp_path / "sets.yaml", text)
    with pytest.raises(SodError, match=match):
        resolve_data_args([str(tmp_path)], file)  # a file given explicitly is always checked


def test_missing_datasets_file_from_the_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv(DATASETS_ENV, str(tmp_path / "none.yaml"))
    assert resolve_data_args([str(tmp_path)], None) == [(tmp_path.name, tmp_path)], "not needed: not read"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "local").mkdir()
    assert resolve_data_args(["local"], None) == [("local", Path("local"))], "a folder here still works"
    with pytest.raises(SodError, match=f"none.yaml \\(from {DATASETS_ENV}\\) does not exist"):
        resolve_data_args(["ECSSD"], None)
