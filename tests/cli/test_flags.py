"""The command line's flags: one meaning per name across commands, shared declarations, old spellings of renamed
flags accepted but hidden, --no-progress wherever a progress bar is drawn."""

from __future__ import annotations

import argparse

import pytest

from sam2sod.cli import build_parser

SHARED = ("--checkpoint", "--base-checkpoint", "--device", "--workers", "--decode-workers", "--no-progress",
          "--overwrite", "--recursive")
PROGRESS_BARS = (("score",), ("datasets", "check"), ("weights", "download"), ("evaluate",), ("predict",),
                 ("benchmark",), ("train",))


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """{"predict": parser, "datasets check": parser, ...}: every (sub)command's own parser."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(prefix: str, parser: argparse.ArgumentParser) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if prefix:
            found[prefix] = parser
        for sub in subs:
            for name, child in sub.choices.items():
                walk(f"{prefix} {name}".strip(), child)

    walk("", build_parser())
    return found


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {o: a for a in parser._actions for o in a.option_strings if a.help != argparse.SUPPRESS}


def test_shared_flags_mean_one_thing_everywhere() -> None:
    seen: dict[str, dict[str, tuple]] = {}
    for cmd, parser in _parsers().items():
        for opt, action in _options(parser).items():
            seen.setdefault(opt, {})[cmd] = (action.dest, action.type, action.nargs)
    for opt in SHARED:
        assert len(set(seen[opt].values())) == 1, (opt, seen[opt])
    for opt in ("--workers", "--no-progress", "--overwrite", "--recursive", "--base-checkpoint"):
        helps = {_options(_parsers()[cmd])[opt].help for cmd in seen[opt]}
        assert len(helps) == 1, (opt, helps)
    # the names that used to mean different things in different commands
    assert "--size" not in seen and "--format" in seen and set(seen["--format"]) == {"predict"}
    assert set(seen["--threshold"]) == {"predict"} and "datasets check" not in seen["--workers"]
    assert "predict" not in seen["--workers"] and {"predict", "datasets check"} <= set(seen["--decode-workers"])
    assert all(_options(_parsers()[c])["--device"].default is None for c in seen["--device"])


def test_every_command_with_a_progress_bar_can_hide_it() -> None:
    parsers = _parsers()
    for path in PROGRESS_BARS:
        assert "--no-progress" in _options(parsers[" ".join(path)]), path
    assert {"--base-checkpoint", "--recursive"} <= set(_options(parsers["benchmark"]))


@pytest.mark.parametrize(("argv", "dest", "value"), [
    (["make-synthetic", "x", "--size", "32"], "image_size", 32),
    (["quickstart", "--size", "48"], "image_size", 48),
    (["methods", "--size", "small"], "backbone_size", "small"),
    (["export", "--checkpoint", "r", "--out", "o", "--format", "onnx"], "weights_format", "onnx"),
    (["datasets", "check", "--threshold", "5"], "near_distance", 5),
    (["datasets", "check", "--workers", "3"], "decode_workers", 3),
    (["predict", "--checkpoint", "r", "--input", "i", "--out", "o", "--workers", "2"], "decode_workers", 2),
])
def test_old_spellings_still_work_but_are_hidden(argv, dest, value, capsys) -> None:
    parser = build_parser()
    assert getattr(parser.parse_args(argv), dest) == value
    old = next(a for a in argv if a in ("--size", "--format", "--threshold", "--workers"))
    new = "--" + dest.replace("_", "-")
    cmd = [a for a in argv[:2] if not a.startswith("-") and a not in ("x", "r")]
    with pytest.raises(SystemExit):
        parser.parse_args([*cmd, "--help"])
    text = capsys.readouterr().out
    assert new in text and f"{old} " not in text.replace(f"{new} ", "")


def test_a_bad_device_is_refused_by_the_parser(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["predict", "--checkpoint", "r", "--input", "i", "--out", "o", "--device", "gpu"])
    assert e.value.code == 2 and "'gpu' is not a device" in capsys.readouterr().err
