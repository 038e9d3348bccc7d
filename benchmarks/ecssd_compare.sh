#!/usr/bin/env bash
# Equal-budget comparison on ECSSD-700 (issues 5 and 6): every SAM2 method and classical baseline, then the
# report-001 Tuned SAM ablations. Resumable: rerun to continue. Tables: runs/compare*/ablation.md
set -euo pipefail
cd "$(dirname "$0")/.."
S=.venv/bin/sam2sod
$S ablate --config ecssd700_compare --out runs/compare \
  --grid model.method=adapter_cbam,decoder_only,full,lora,sam_adapter,sam2unet,tuned_sam,u2netp,u2net,f3net,pfan,poolnet,poolnet_vgg
# Report 001 table 1(a): neither / +Tuned Blocks (refiner + FAD off) and +FAD alone; "both" is the
# default tuned_sam cell of runs/compare (12 tuned blocks, refiner + FAD on).
$S ablate --config ecssd700_compare --out runs/compare_tuned_sam_modules --set model.method=tuned_sam \
  --set model.args.use_msr=false --set model.args.use_fad=false --grid model.args.tuned_blocks=0,12
$S ablate --config ecssd700_compare --out runs/compare_tuned_sam_fad --set model.method=tuned_sam \
  --grid model.args.tuned_blocks=0
# Number of tuned blocks (refiner + FAD on); 12 is the default cell of runs/compare.
$S ablate --config ecssd700_compare --out runs/compare_tuned_sam_blocks --set model.method=tuned_sam \
  --grid model.args.tuned_blocks=6,9
