"""Start-up: seconds from launch to the first useful output of `sam2sod` for usage errors and quick commands.

Each case runs `sam2sod ARGS` in a fresh interpreter (`python -X importtime`, the console script's entry
point `sam2sod.cli:main`), records the seconds to its first line of output and to its exit, whether torch
was imported by then, and the top-level imports that cost the most (cumulative, from -X importtime).
Usage:
    .venv/bin/python benchmarks/startup.py [--repeats 1] [--top 8]
One `ratio=X.XX target=1.00` line per case, ratio = 1 s / seconds to the first output (target: under 1 s);
the last line is the slowest case.
"""

from __future__ import annotations

import argparse
import os
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIMIT_S = 1.0
_CHILD = """import sys, atexit
atexit.register(lambda: sys.stderr.write('\\nSTARTUP_TORCH=%d\\n' % ('torch' in sys.modules)))
from sam2sod.cli import main
sys.exit(main(sys.argv[1:]))
"""


def cases(tmp: Path) -> list[tuple[str, list[str]]]:
    """(label, sam2sod arguments): usage errors (bad path, bad flag, bad checkpoint) and quick commands."""
    bad_ckpt = tmp / "broken.pt"
    bad_ckpt.write_bytes(b"not a checkpoint")
    (tmp / "in").mkdir(exist_ok=True)
    return [
        ("predict, checkpoint not found", ["predict", "--checkpoint", "runs/nope", "--input", "x", "--out", "y"]),
        ("predict, bad flag", ["predict", "--no-such-flag"]),
        ("predict, damaged checkpoint", ["predict", "--checkpoint", str(bad_ckpt), "--input", str(tmp / "in"),
                                         "--out", str(tmp / "out")]),
        ("demo, checkpoint not found", ["demo", "--checkpoint", "runs/nope"]),
        ("methods", ["methods"]),
        ("--help", ["--help"]),
    ]


def run_case(args: list[str]) -> tuple[float, float, bool, int, str]:
    """(seconds to the first output line, seconds to exit, torch imported, exit code, -X importtime text)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-c", _CHILD, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, text=True)
    first = None
    err_lines: list[str] = []
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    sel.register(proc.stderr, selectors.EVENT_READ)
    open_streams = 2
    while open_streams:
        for key, _ in sel.select():
            line = key.fileobj.readline()
            if not line:
                sel.unregister(key.fileobj)
                open_streams -= 1
                continue
            useful = not line.startswith("import time:") and line.strip() and "STARTUP_TORCH" not in line
            if useful and first is None:
                first = time.perf_counter() - t0
            if key.fileobj is proc.stderr:
                err_lines.append(line)
    rc = proc.wait()
    total = time.perf_counter() - t0
    torch_line = [ln for ln in err_lines if ln.startswith("STARTUP_TORCH=")]
    return first if first is not None else total, total, bool(torch_line and torch_line[-1].strip().endswith("1")), \
        rc, "".join(ln for ln in err_lines if ln.startswith("import time:"))


def top_imports(text: str, top: int) -> list[tuple[str, float]]:
    """The `top` top-level modules by cumulative import seconds (from -X importtime's lines)."""
    rows = []
    for line in text.splitlines()[1:]:
        parts = line.split("|")
        if len(parts) != 3:
            continue
        name = parts[2].rstrip()
        if name.startswith(" ") and not name.startswith("  "):  # nested imports are indented further
            try:
                rows.append((name.strip(), int(parts[1]) / 1e6))
            except ValueError:
                continue
    return sorted(rows, key=lambda r: -r[1])[:top]


def heavy_packages(text: str, top: int) -> list[tuple[str, float]]:
    """The `top` third-party top-level packages (imported at any depth) by cumulative import seconds."""
    seen: dict[str, float] = {}
    for line in text.splitlines()[1:]:
        parts = line.split("|")
        name = parts[-1].strip() if len(parts) == 3 else ""
        if name and "." not in name and not name.startswith(("_", "sam2sod")) and name not in seen:
            try:
                seen[name] = int(parts[1]) / 1e6
            except ValueError:
                continue
    return sorted(seen.items(), key=lambda r: -r[1])[:top]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1, help="runs per case (the fastest is reported)")
    ap.add_argument("--top", type=int, default=8, help="top-level imports listed per case")
    args = ap.parse_args(argv)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    checks = []
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        os.chdir(tmp)  # relative paths (runs/nope, x, y) resolve in an empty folder
        for label, case in cases(tmp):
            runs = [run_case(case) for _ in range(max(1, args.repeats))]
            first, total, has_torch, rc, imports = min(runs, key=lambda r: r[0])
            print(f"\n{label}: `sam2sod {' '.join(case[:3])}{' ...' if len(case) > 3 else ''}` -> exit {rc}, "
                  f"first output {first:.2f} s, exit {total:.2f} s, torch imported: {'yes' if has_torch else 'no'}")
            for name, sec in top_imports(imports, args.top):
                print(f"    {sec:6.2f} s  import {name}")
            heavy = ", ".join(f"{n} {sec:.2f} s" for n, sec in heavy_packages(imports, args.top) if sec >= 0.05)
            print(f"    of which third-party packages: {heavy or 'none over 0.05 s'}")
            checks.append((label, LIMIT_S / first))
    print("\n== checks (ratio = 1 s / seconds to the first output; pass when >= 1) ==")
    for label, ratio in checks:
        print(f"{label}: ratio={ratio:.2f} target=1.00 {'PASS' if ratio >= 1 else 'FAIL'}")
    worst = min(checks, key=lambda c: c[1])
    print(f"slowest: {worst[0]}")
    print(f"ratio={worst[1]:.2f} target=1.00")
    return 0 if worst[1] >= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
