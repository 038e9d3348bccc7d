"""Speed and memory of scoring: `sam2sod score` vs a plain sequential py_sod_metrics loop, in one run.

Scores the ECSSD masks of ../shared/data/ecssd-700 against Gaussian-blurred copies of themselves. The
reference is py_sod_metrics' Smeasure, WeightedFmeasure, Emeasure, Fmeasure and MAE stepped image by image
in one process (the set `score` computes). Figures:
- pair computation only: every pair is decoded into memory first, then only the metrics are timed: ours
  (`pair_scores`, what `score` runs in its workers, plus `aggregate`) in 1 process (per core) and in a
  pool of `--workers` (forked, started before timing), vs the reference's `step`s + `get_results`;
- whole command: `sam2sod score` (start-up, decoding, scoring, writing every output) with 1 and
  `--workers` workers vs the reference loop with decoding;
- memory: peak RSS of `sam2sod score` (one process) and of the reference on one 6000x4000 pair.
Every side runs in its own child process, so each peak RSS (resource.getrusage, workers included) is its
own. All dataset values must agree to 1e-10. Ratios are ours over the reference (higher is better); the
run passes when every ratio reaches its target, and the last line is the headline (whole command, 2
workers): `ratio=X.XX target=Y.YY`. The whole-command targets are meant for the full 700 masks: the
command's fixed start-up (about 2 s on 2 cores) dominates a small `--limit`. Usage:
    .venv/bin/python benchmarks/score_speed.py [--data ../shared/data/ecssd-700] [--workers 2] [--limit N]
        [--repeat 1] [--no-memory]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

KEYS = ("Smeasure", "wFmeasure", "MAE", "adpEm", "meanEm", "maxEm", "adpFm", "meanFm", "maxFm")
CURVES = ("precision", "recall", "fm_curve", "em_curve")
TOL = 1e-10
TARGET_PAIRS = 2.0  # pair computation, 1 process, vs the sequential reference
TARGET_E2E = 1.7  # whole command with 2 workers vs the sequential reference
LIMIT_LARGE_GIB = 0.75  # peak RSS of scoring one 24 MP pair in one process
LARGE_HW = (4000, 6000)
_PAIRS: list[tuple[np.ndarray, np.ndarray]] = []  # inherited by forked pool workers


def peak_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak RSS in MB (Linux reports KiB)."""
    return resource.getrusage(who).ru_maxrss / 1024


def make_predictions(mask_dir: Path, out: Path, limit: int | None) -> list[str]:
    """Write a Gaussian-blurred copy (radius 4) of each of the first `limit` masks; return the names."""
    names = sorted(p.stem for p in mask_dir.glob("*.png"))[:limit]
    out.mkdir(parents=True, exist_ok=True)
    for n in names:
        m = Image.open(mask_dir / f"{n}.png").convert("L")
        m.filter(ImageFilter.GaussianBlur(radius=4)).save(out / f"{n}.png")
    return names


def decode(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def large_pair() -> tuple[np.ndarray, np.ndarray]:
    """A deterministic 6000x4000 (uint8 prediction, uint8 mask) pair: a soft, noisy ellipse."""
    h, w = LARGE_HW
    gt, pred = np.empty((h, w), np.uint8), np.empty((h, w), np.uint8)
    rng = np.random.default_rng(0)
    xx = (np.arange(w) - w * 0.45) / (w * 0.3)
    for r0 in range(0, h, 256):
        yy = (np.arange(r0, min(r0 + 256, h)) - h * 0.5) / (h * 0.35)
        d = yy[:, None] ** 2 + xx[None, :] ** 2
        gt[r0 : r0 + len(yy)] = np.where(d < 1, 255, 0)
        p = 255 / (1 + np.exp((d - 1) * 6)) + rng.normal(0, 12, d.shape)
        pred[r0 : r0 + len(yy)] = np.clip(p, 0, 255).astype(np.uint8)
    return pred, gt


# --------------------------------------------------------------------------- the sides (child processes)
def reference_results(pairs) -> dict:
    """py_sod_metrics over (pred, gt) pairs (an iterable, decoded lazily or not): dataset values + curves."""
    import py_sod_metrics as psm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm, wfm, sm, em, mae = psm.Fmeasure(), psm.WeightedFmeasure(), psm.Smeasure(), psm.Emeasure(), psm.MAE()
        for pred, gt in pairs:
            for m in (fm, wfm, sm, em, mae):
                m.step(pred=pred, gt=gt)
        f, e = fm.get_results(), em.get_results()["em"]
    return {"Smeasure": sm.get_results()["sm"], "wFmeasure": wfm.get_results()["wfm"],
            "MAE": mae.get_results()["mae"], "adpEm": e["adp"], "meanEm": e["curve"].mean(),
            "maxEm": e["curve"].max(), "adpFm": f["fm"]["adp"], "meanFm": f["fm"]["curve"].mean(),
            "maxFm": f["fm"]["curve"].max(), "precision": f["pr"]["p"], "recall": f["pr"]["r"],
            "fm_curve": f["fm"]["curve"], "em_curve": e["curve"]}


def _plain(results: dict) -> dict:
    return {k: (np.asarray(v).tolist() if k in CURVES else float(v)) for k, v in results.items()}


def best_of(repeat: int, fn):
    """(best seconds, last result) of `repeat` calls."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def side_reference(paths: list[tuple[Path, Path]], repeat: int) -> dict:
    """Whole loop with decoding (streaming), then pair computation only on arrays decoded first."""
    t_e2e, _ = best_of(repeat, lambda: reference_results((decode(p), decode(g)) for p, g in paths))
    rss_e2e = peak_mb()
    pairs = [(decode(p), decode(g)) for p, g in paths]
    t_pairs, res = best_of(repeat, lambda: reference_results(pairs))
    return {"e2e_s": t_e2e, "e2e_rss": rss_e2e, "pairs_s": t_pairs, "pairs_rss": peak_mb(), "results": _plain(res)}


def _score_index(i: int):
    from sam2sod.metrics import pair_scores

    return pair_scores(*_PAIRS[i])


def _score_arrays(pair):
    from sam2sod.metrics import pair_scores

    return pair_scores(*pair)


def _warm(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def side_ours(paths: list[tuple[Path, Path]], workers: int, repeat: int) -> dict:
    """Pair computation only, 1 process and a pool of `workers`, on arrays decoded first."""
    from sam2sod.metrics import aggregate, pair_scores

    _PAIRS[:] = [(decode(p), decode(g)) for p, g in paths]
    t1, res1 = best_of(repeat, lambda: aggregate([pair_scores(p, g) for p, g in _PAIRS]))
    rss1 = peak_mb()
    fork = "fork" in multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if fork else None)
    chunk = max(1, min(32, len(_PAIRS) // (workers * 8)))  # as `sam2sod score` chunks its work
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        assert len(set(pool.map(_warm, [0.3] * workers))) == workers, "the pool did not start every worker"
        fn, args = (_score_index, range(len(_PAIRS))) if fork else (_score_arrays, _PAIRS)
        tw, resw = best_of(repeat, lambda: aggregate(list(pool.map(fn, args, chunksize=chunk))))
    return {"one_s": t1, "one_rss": rss1, "pool_s": tw, "pool_rss": peak_mb(resource.RUSAGE_CHILDREN),
            "results_one": _plain(res1), "results_pool": _plain(resw)}


def side_large_reference(folder: Path) -> dict:
    """Peak RSS and time of the reference on the large pair (decoded from the PNG files)."""
    t0 = time.perf_counter()
    reference_results([(decode(folder / "pred" / "large.png"), decode(folder / "gt" / "large.png"))])
    return {"s": time.perf_counter() - t0, "rss": peak_mb()}


def run_side(args: list[str]) -> tuple[dict, float]:
    """Run this script as a child with `--side ...`; (its JSON answer, its peak RSS in MB incl. workers)."""
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"error: side {args} failed with exit code {proc.returncode}")
    return json.loads(out), usage.ru_maxrss / 1024


def run_cli(pred: Path, gt: Path, out: Path, workers: int, repeat: int) -> tuple[float, float, dict]:
    """(best seconds, peak RSS MB of the largest process, metrics) of the whole `sam2sod score` command."""
    exe = Path(sys.executable).with_name("sam2sod")
    cmd = [str(exe), "score", "--pred", f"blur={pred}", "--gt", str(gt), "--out", str(out),
           "--workers", str(workers), "--no-progress"]
    best, rss = float("inf"), 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        best = min(best, time.perf_counter() - t0)
        rss = max(rss, usage.ru_maxrss / 1024)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"error: {' '.join(cmd)} failed")
    return best, rss, json.loads((out / "metrics.json").read_text())["blur"]


# --------------------------------------------------------------------------- main
def max_difference(ours: dict, ref: dict) -> float:
    """Largest absolute difference over the dataset values (and the curves both sides have)."""
    diffs = [abs(float(ours[k]) - float(ref[k])) for k in KEYS]
    diffs += [float(np.max(np.abs(np.asarray(ours[k]) - np.asarray(ref[k])))) for k in CURVES if k in ours]
    return max(diffs)


def memory_section(tmp: Path, checks: list, repeat: int) -> None:
    """Score one 6000x4000 pair with `sam2sod score` (one process) and with the reference."""
    for sub in ("pred", "gt"):
        (tmp / "large" / sub).mkdir(parents=True)
    pred, gt = large_pair()
    Image.fromarray(pred).save(tmp / "large" / "pred" / "large.png", compress_level=1)
    Image.fromarray(gt).save(tmp / "large" / "gt" / "large.png", compress_level=1)
    del pred, gt
    t_ours, rss_ours, _ = run_cli(tmp / "large" / "pred", tmp / "large" / "gt", tmp / "large_out", 1, repeat)
    ref, rss_ref = run_side(["--side", "large-reference", str(tmp / "large")])
    mp = LARGE_HW[0] * LARGE_HW[1] / 1e6
    print(f"\n== memory: one {LARGE_HW[1]}x{LARGE_HW[0]} pair ({mp:.0f} MP, PNG files) ==")
    print(f"sam2sod score (whole command, one process = one worker's peak): {rss_ours / 1024:.2f} GiB, {t_ours:.2f} s")
    print(f"py_sod_metrics (decode + steps, one process): {rss_ref / 1024:.2f} GiB, {ref['s']:.2f} s")
    print(f"reference peak / our peak: {rss_ref / rss_ours:.2f}x")
    checks.append((f"{mp:.0f} MP pair: limit {LIMIT_LARGE_GIB} GiB / our peak RSS", LIMIT_LARGE_GIB * 1024 / rss_ours,
                   1.0))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/ecssd-700")
    ap.add_argument("--workers", type=int, default=2, help="workers of the parallel figures (default 2)")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N masks")
    ap.add_argument("--repeat", type=int, default=1, help="time each side N times, keep the best")
    ap.add_argument("--no-memory", action="store_true", help="skip the 24 MP memory figure")
    ap.add_argument("--side", nargs="+", help=argparse.SUPPRESS)  # internal: run one side, print JSON
    args = ap.parse_args()
    if args.side:
        kind, rest = args.side[0], args.side[1:]
        if kind == "large-reference":
            print(json.dumps(side_large_reference(Path(rest[0]))))
            return 0
        paths = [tuple(map(Path, line.split("\t"))) for line in Path(rest[0]).read_text().splitlines()]
        answer = side_reference(paths, args.repeat) if kind == "reference" else side_ours(paths, args.workers,
                                                                                            args.repeat)
        print(json.dumps(answer))
        return 0

    gt_dir = args.data / "masks"
    if not gt_dir.is_dir():
        print(f"error: {gt_dir} not found (pass --data)", file=sys.stderr)
        return 2
    checks: list[tuple[str, float, float | None]] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        names = make_predictions(gt_dir, tmp / "pred", args.limit)
        (tmp / "gt").mkdir()
        for n in names:
            os.symlink((gt_dir / f"{n}.png").resolve(), tmp / "gt" / f"{n}.png")
        listing = tmp / "pairs.tsv"
        listing.write_text("".join(f"{tmp / 'pred' / n}.png\t{tmp / 'gt' / n}.png\n" for n in names))
        print(f"{len(names)} masks from {gt_dir}, predictions = Gaussian-blurred masks (radius 4); "
              f"parallel figures with {args.workers} workers; best of {args.repeat}; {os.cpu_count()} cores")

        ref, _ = run_side(["--side", "reference", str(listing), "--repeat", str(args.repeat)])
        ours, _ = run_side(["--side", "ours", str(listing), "--workers", str(args.workers), "--repeat",
                            str(args.repeat)])
        t_cli1, rss_cli1, res_cli1 = run_cli(tmp / "pred", tmp / "gt", tmp / "out1", 1, args.repeat)
        t_cliw, rss_cliw, res_cliw = run_cli(tmp / "pred", tmp / "gt", tmp / "outw", args.workers, args.repeat)

        n, w = len(names), args.workers
        print("\n== pair computation only (arrays decoded into memory first) ==")
        print(f"py_sod_metrics, 1 process:  {ref['pairs_s']:7.2f} s  {ref['pairs_s'] / n * 1e3:6.2f} ms/pair  "
              f"peak RSS {ref['pairs_rss']:5.0f} MB")
        print(f"sam2sod, 1 process:         {ours['one_s']:7.2f} s  {ours['one_s'] / n * 1e3:6.2f} ms/pair  "
              f"peak RSS {ours['one_rss']:5.0f} MB")
        eff = ours["one_s"] / (w * ours["pool_s"])
        print(f"sam2sod, pool of {w}:         {ours['pool_s']:7.2f} s  {ours['pool_s'] / n * 1e3:6.2f} ms/pair  "
              f"peak RSS {ours['pool_rss']:5.0f} MB per worker; parallel efficiency {eff:.0%}")
        print("\n== whole command (start-up, decoding, scoring, writing outputs) ==")
        print(f"py_sod_metrics loop with decoding, 1 process: {ref['e2e_s']:7.2f} s  peak RSS {ref['e2e_rss']:5.0f} MB")
        print(f"sam2sod score --workers 1:                    {t_cli1:7.2f} s  peak RSS {rss_cli1:5.0f} MB")
        print(f"sam2sod score --workers {w}:                    {t_cliw:7.2f} s  peak RSS {rss_cliw:5.0f} MB "
              "(largest process)")
        checks.append(("pair computation, 1 process vs py_sod_metrics (per core)", ref["pairs_s"] / ours["one_s"],
                       TARGET_PAIRS))
        checks.append((f"pair computation, pool of {w} vs py_sod_metrics (1 process)", ref["pairs_s"] / ours["pool_s"],
                       None))
        checks.append(("whole command, --workers 1 vs py_sod_metrics loop", ref["e2e_s"] / t_cli1, None))

        print(f"\n== agreement with py_sod_metrics (max abs difference, tolerance {TOL:g}) ==")
        rows = [("pair computation, 1 process", ours["results_one"]), (f"pair computation, pool of {w}",
                ours["results_pool"]), ("score --workers 1", res_cli1), (f"score --workers {w}", res_cliw)]
        worst = 0.0
        for label, res in rows:
            diff = max_difference(res, ref["results"])
            worst = max(worst, diff)
            print(f"{label}: {diff:.1e}")
        print(f"{'key':<10} {'sam2sod':>20} {'py_sod_metrics':>20}")
        for k in KEYS:
            print(f"{k:<10} {res_cliw[k]:>20.15f} {ref['results'][k]:>20.15f}")
        if not args.no_memory:
            memory_section(tmp, checks, args.repeat)
    headline = (f"whole command, --workers {w} vs py_sod_metrics loop", ref["e2e_s"] / t_cliw, TARGET_E2E)
    print("\n== checks (ratio = ours / reference, pass when ratio >= target) ==")
    for label, ratio, target in [*checks, headline]:
        verdict = "(no target)" if target is None else ("PASS" if ratio >= target else "FAIL")
        print(f"{label}: ratio={ratio:.2f}" + ("" if target is None else f" target={target:.2f}") + f" {verdict}")
    agree = worst <= TOL
    print(f"agreement: max abs difference {worst:.1e} <= {TOL:g} {'PASS' if agree else 'FAIL'}")
    ok = agree and all(t is None or r >= t for _, r, t in [*checks, headline])
    print(f"all {'PASS' if ok else 'FAIL'}; headline: {headline[0]}")
    print(f"ratio={headline[1]:.2f} target={headline[2]:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
