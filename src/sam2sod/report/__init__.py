"""Benchmark reports: bootstrap statistics, paper-style tables, curve plots, qualitative grids, HTML page.

Modules: :mod:`~sam2sod.report.stats` (CIs, paired tests), :mod:`~sam2sod.report.tables` (table.csv /
.md / .tex, p-value tables), :mod:`~sam2sod.report.curves` (PR / F / E plots),
:mod:`~sam2sod.report.qualitative` (image grid), :mod:`~sam2sod.report.html` (one self-contained page).
"""
