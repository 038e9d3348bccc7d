"""Score folders of saliency maps against ground-truth masks (the `sam2sod score` command).

Predictions are matched to masks by file stem; every mask needs a prediction. A prediction of another
size is resized (bilinear) to the mask's size, as the field's evaluation tools do. Pairs are scored in
worker processes; each returns a small `PairScores` that the parent aggregates, so the numbers are
identical to a sequential run. Workers exit when the parent dies (`exit_with_parent`), and the command's
output set is swapped in whole (`write_output_set`), so a reader never mixes files of two runs. The worker
count is lowered when the largest image (read from the file headers) would not leave half the available
memory for that many workers (`sam2sod.metrics.memory`).
"""

from __future__ import annotations

import csv
import ctypes
import hashlib
import io
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from sam2sod.atomic import atomic_write_text, current_umask
from sam2sod.data.discovery import list_images, warn_nested
from sam2sod.data.io import load_mask
from sam2sod.errors import SodError, format_names
from sam2sod.lock import LOCK
from sam2sod.metrics import PairScores, aggregate, pair_scores
from sam2sod.metrics.memory import image_pixels, memory_capped_workers
from sam2sod.outputs import MARKER, read_marker, write_marker
from sam2sod.wording import plural

METRIC_KEYS = ("Smeasure", "wFmeasure", "MAE", "adpEm", "meanEm", "maxEm", "adpFm", "meanFm", "maxFm")
SHORT_NAMES = {"Smeasure": "S", "wFmeasure": "wF", "MAE": "MAE", "adpEm": "adpE", "meanEm": "meanE",
               "maxEm": "maxE", "adpFm": "adpF", "meanFm": "meanF", "maxFm": "maxF"}
SCORE_FILES = ("metrics.json", "per_image.csv", "curves.csv", "pr_curve.png", "f_curve.png", "e_curve.png")
MANIFEST = "manifest.json"


@dataclass
class MethodResult:
    """Scores of one method on one dataset: aggregated metrics, curves and per-image rows."""

    name: str
    metrics: dict[str, float]
    curves: dict[str, np.ndarray]
    per_image: list[dict] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)
    pair_scores: list = field(default_factory=list, repr=False)  # per-image PairScores, in per_image order


def match_predictions(pred_dir: Path, gt_dir: Path, recursive: bool = False,
                      ) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """Pair every mask in `gt_dir` with the prediction of the same stem (relative path with `recursive`).

    Returns (pairs sorted by name, names of predictions that have no mask). A mask without a
    prediction is an error listing the names.
    """
    preds = list_images(pred_dir, "prediction", recursive=recursive)
    gts = list_images(gt_dir, "mask", recursive=recursive)
    if not gts:
        raise SodError(f"no masks found in {gt_dir}")
    missing = sorted(set(gts) - set(preds))
    if missing:
        raise SodError(
            f"{len(missing)} of {len(gts)} masks in {gt_dir} have no prediction in {pred_dir}: "
            f"{format_names(missing)}"
        )
    extra = sorted(set(preds) - set(gts))
    return [(n, preds[n], gts[n]) for n in sorted(gts)], extra


def load_prediction(path: Path, size_hw: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """Read a saliency map as uint8 HxW, resized bilinearly to `size_hw` if needed."""
    try:
        pred = load_mask(path)
    except SodError as err:  # load_mask calls every file a "mask"
        raise SodError(str(err).replace(f"mask {path}", f"prediction {path}", 1)) from None
    if pred.shape == tuple(size_hw):
        return pred, False
    resized = Image.fromarray(pred).resize((size_hw[1], size_hw[0]), Image.BILINEAR)
    return np.asarray(resized, dtype=np.uint8), True


def _score_one(item: tuple[str, Path, Path]) -> tuple[str, PairScores, bool]:
    name, pred_path, gt_path = item
    gt = load_mask(gt_path)
    pred, resized = load_prediction(pred_path, gt.shape)
    return name, pair_scores(pred, gt), resized


def _parent_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def exit_with_parent(parent_pid: int, poll_s: float = 0.5) -> None:
    """Make this (worker) process exit when its parent dies, instead of blocking forever.

    Linux: PR_SET_PDEATHSIG asks the kernel for SIGKILL when the parent exits. Everywhere: a daemon thread
    also exits the process once its parent process id changes (the process was re-parented).
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    ppid = os.getppid()
    if not _parent_alive(parent_pid):
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != ppid:
                os._exit(1)

    threading.Thread(target=watch, name="sam2sod-parent-watch", daemon=True).start()


def _run_pairs(items: Sequence[tuple[str, Path, Path]], workers: int, desc: str,
               progress: bool) -> Iterator[tuple[str, PairScores, bool]]:
    bar = tqdm(total=len(items), desc=desc, unit="img", disable=not progress, file=sys.stderr,
               dynamic_ncols=True)
    try:
        if workers <= 1 or len(items) < 8:
            for item in items:
                yield _score_one(item)
                bar.update()
            return
        chunk = max(1, min(32, len(items) // (workers * 8)))
        with ProcessPoolExecutor(max_workers=workers, initializer=exit_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            for out in pool.map(_score_one, items, chunksize=chunk):
                yield out
                bar.update()
    finally:
        bar.close()


def _check_dirs(pred_dir: Path, gt_dir: Path) -> None:
    for label, flag, d in (("prediction", "--pred", pred_dir), ("mask", "--gt", gt_dir)):
        if not d.exists():
            raise SodError(f"{label} folder {d} does not exist")
        if not d.is_dir():
            raise SodError(f"{flag} {d} is a file, not a folder: give the folder that holds the {label}s")
        if label == "mask":
            _check_not_root(d, flag, label)


def _check_not_root(folder: Path, flag: str, label: str) -> None:
    """SodError when `folder` holds no image itself but is a dataset root (images/ + masks/ inside it)."""
    from sam2sod.data.discovery import find_layout

    if list_images(folder, label, allow_empty=True):
        return
    try:
        images, masks = find_layout(folder)
    except SodError:
        return
    raise SodError(f"{flag} {folder} looks like a dataset root ({images.name}/ + {masks.name}/), not a folder of "
                   f"{label}s: did you mean {flag} {masks}?")


def check_score_inputs(preds: dict[str, Path], gt_dir: Path, recursive: bool = False) -> None:
    """The checks `score` can make before scoring: folders exist, every mask has a prediction, every file's
    header reads (pixel data is only decoded while scoring)."""
    checked: set[Path] = set()
    for d in preds.values():
        _check_dirs(Path(d), Path(gt_dir))
        items, _ = match_predictions(Path(d), Path(gt_dir), recursive)
        for _name, pred, gt in items:
            image_pixels(pred, "prediction")
            if gt not in checked:
                image_pixels(gt, "mask")
                checked.add(gt)


def score_method(name: str, pred_dir: Path, gt_dir: Path, workers: int | None = None,
                 progress: bool = True, *, recursive: bool = False, nested_warning: bool = True) -> MethodResult:
    """Score one folder of predictions against `gt_dir` (see module docstring)."""
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    _check_dirs(pred_dir, gt_dir)
    items, extra = match_predictions(pred_dir, gt_dir, recursive)
    if not recursive and nested_warning:
        warn_nested(gt_dir, "mask")
        warn_nested(pred_dir, "prediction")
    if extra:
        print(f"warning: {name}: {plural(len(extra), 'prediction')} in {pred_dir} without a mask ignored: "
              f"{format_names(extra)}", file=sys.stderr)
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers > 1 and len(items) >= 8:  # the sizes that `_run_pairs` runs in a pool
        workers = memory_capped_workers(items, workers, name)
    scores, rows, resized = [], [], []
    for img_name, s, was_resized in _run_pairs(items, workers, name, progress):
        scores.append(s)
        rows.append({"name": img_name, **s.per_image_row()})
        if was_resized:
            resized.append(img_name)
    if resized:
        print(f"warning: {name}: {plural(len(resized), 'prediction')} of another size than the mask resized "
              f"(bilinear) to the mask's size: {format_names(resized)}", file=sys.stderr)
    agg = aggregate(scores)
    metrics = {k: float(agg[k]) for k in METRIC_KEYS}
    curves = {k: np.asarray(agg[k]) for k in ("precision", "recall", "fm_curve", "em_curve")}
    return MethodResult(name, metrics, curves, rows, resized, scores)


def format_table(results: Sequence[MethodResult], notes: dict[str, str] | None = None) -> str:
    """An aligned plain-text table, one row per method."""
    head = ["method"] + [SHORT_NAMES[k] for k in METRIC_KEYS]
    rows = [[r.name] + [f"{r.metrics[k]:.4f}" for k in METRIC_KEYS] for r in results]
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    fmt = lambda row: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                for i, (c, w) in enumerate(zip(row, widths, strict=True)))
    lines = [fmt(head), "  ".join("-" * w for w in widths), *map(fmt, rows)]
    for name, note in (notes or {}).items():
        lines.append(f"note: {name}: {note}")
    return "\n".join(lines)


def write_outputs(results: Sequence[MethodResult], out: Path, notes: dict[str, str] | None = None) -> None:
    """Write metrics.json, per_image.csv, curves.csv, pr_curve.png, f_curve.png and e_curve.png into `out`."""
    from sam2sod.report.plots import plot_curves

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {r.name: dict(r.metrics) for r in results}
    for name, note in (notes or {}).items():
        payload.setdefault(name, {})["note"] = note
    atomic_write_text(out / "metrics.json", json.dumps(payload, indent=2) + "\n")

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["method", "name", "S", "MAE", "wF", "adpF", "E"])
    for r in results:
        for row in r.per_image:
            w.writerow([r.name, row["name"]] + [f"{row[k]:.6f}" for k in ("S", "MAE", "wF", "adpF", "E")])
    atomic_write_text(out / "per_image.csv", buf.getvalue())

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["method", "threshold", "precision", "recall", "fmeasure", "emeasure"])
    for r in results:
        c = r.curves
        for t in range(len(c["precision"])):
            w.writerow([r.name, t] + [f"{c[k][t]:.6f}" for k in ("precision", "recall", "fm_curve", "em_curve")])
    atomic_write_text(out / "curves.csv", buf.getvalue())
    plot_curves(results, out)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_manifest(folder: Path) -> None:
    """`manifest.json` (written last): the files of this output set and their SHA-256."""
    files = {n: _sha256(folder / n) for n in SCORE_FILES if (folder / n).is_file()}
    atomic_write_text(folder / MANIFEST, json.dumps({"command": "score", "written": time.time(), "files": files},
                                                    indent=2) + "\n")


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where not supported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(-100, os.fsencode(a), -100, os.fsencode(b), 2) == 0  # AT_FDCWD, RENAME_EXCHANGE


_SET_TAG = re.compile(r"^(?:score-(\d+)-.*|old-(\d+))\.tmp$")


def _stale_set(d: Path, tag: str, now: float, min_age_s: float) -> bool:
    """A staging set `d` of a killed score: its writer's PID (in the name) is gone, or it is old (no PID)."""
    if not (tag.startswith(("score-", "old-")) and d.is_dir() and not d.is_symlink()):
        return False
    found = _SET_TAG.match(tag)
    pid = int(found.group(1) or found.group(2)) if found else None
    if read_marker(d) != "score":  # ours only; an empty one with a PID: killed before the marker was written
        return pid is not None and pid != os.getpid() and not any(d.iterdir()) and not _parent_alive(pid)
    if pid is not None and pid != os.getpid():
        return not _parent_alive(pid)
    return now - d.stat().st_mtime >= min_age_s


def _remove_stale_sets(out: Path, min_age_s: float = 60.0) -> None:
    """Delete `.OUT.score-PID-*.tmp` / `.OUT.old-PID.tmp` sets of killed runs next to `out` (ours only: marker
    'score'): at once when process PID is gone, else (no PID in the name) after `min_age_s`."""
    now = time.time()
    try:
        siblings = list(out.parent.glob(f".{out.name}.*.tmp"))
    except OSError:
        return
    for d in siblings:
        try:
            if _stale_set(d, d.name[len(out.name) + 2:], now, min_age_s):
                shutil.rmtree(d)
        except OSError:
            continue


def write_output_set(results: Sequence[MethodResult], out: Path, notes: dict[str, str] | None = None) -> None:
    """`write_outputs` as one set: built in a hidden folder next to `out`, then swapped in place of it.

    Used when `out` holds nothing but an earlier score set; otherwise (other files in `out`, or no room
    next to it) the files are written in place, the old `manifest.json` removed first and the new one last.
    """
    out = Path(os.path.abspath(out)).resolve()  # through a symlink: swap the real folder, keep the link
    _remove_stale_sets(out)
    ours = {*SCORE_FILES, MANIFEST, MARKER, LOCK}
    tmp = None
    if not out.exists() or (out.is_dir() and not os.path.ismount(out) and {e.name for e in out.iterdir()} <= ours):
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.score-{os.getpid()}-", suffix=".tmp", dir=out.parent))
        except OSError:
            tmp = None
    if tmp is not None and (out / LOCK).is_file():  # the new set holds this process's lock (the same file)
        try:
            os.link(out / LOCK, tmp / LOCK)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp = None
    if tmp is None:
        (out / MANIFEST).unlink(missing_ok=True)
        write_outputs(results, out, notes)
        _write_manifest(out)
        return
    try:
        os.chmod(tmp, 0o777 & ~current_umask())
        write_marker(tmp, "score")
        write_outputs(results, tmp, notes)
        _write_manifest(tmp)
        if not out.exists():
            os.rename(tmp, out)
        elif _exchange(tmp, out):
            shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the previous set
        else:
            old = out.with_name(f".{out.name}.old-{os.getpid()}.tmp")
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SodError(f"cannot write the score outputs to {out}: {err.strerror or err}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def score(preds: dict[str, Path], gt_dir: Path, out: Path | None = None, workers: int | None = None,
          progress: bool = True, notes: dict[str, str] | None = None, *, recursive: bool = False,
          atomic: bool = False, nested_warning: bool = True) -> list[MethodResult]:
    """Score each named prediction folder against `gt_dir`; write outputs to `out` when given.

    `recursive`: include sub-folders (names are relative paths). `atomic`: write the outputs as one set
    (`write_output_set`; `out` must then hold nothing else of value, e.g. not the predictions).
    `nested_warning`: warn about files a non-recursive listing skips (off when the caller already did).
    """
    results = [score_method(name, d, gt_dir, workers, progress, recursive=recursive, nested_warning=nested_warning)
               for name, d in preds.items()]
    if out is not None:
        (write_output_set if atomic else write_outputs)(results, out, notes)
    return results


def parse_pred_args(values: Sequence[str]) -> dict[str, Path]:
    """`["DIR"]` or `["A=DIR1", "B=DIR2"]` -> {name: folder}; a bare DIR is named after the folder."""
    preds: dict[str, Path] = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep:
            name, path = Path(v).name or v, v
        if not name or not path:
            raise SodError(f"--pred {v!r}: expected DIR or NAME=DIR")
        if name in preds:
            raise SodError(f"--pred: method name {name!r} given twice")
        preds[name] = Path(path)
    return preds

