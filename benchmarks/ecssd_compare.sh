#!/usr/bin/env bash
# ECSSD-700 on CPU from random init (issue 13): split by name 500 train / 100 val (picks best.pt) / 100 test
# (scored). Every SAM2 method and classical baseline at an equal budget, report 001's ablations with the
# two-stage Tuned SAM recipe, report 000's edge branch, the centred-Gaussian floor, and a benchmark report
# of the trained models on the test split. Resumable: rerun to continue. Tables: runs/*/ablation.md
set -euo pipefail
cd "$(dirname "$0")/.."
S=.venv/bin/sam2sod
R=${RUNS:-runs}
$S ablate --config ecssd700_compare --out $R/compare_test \
  --grid model.method=adapter_cbam,decoder_only,full,lora,sam_adapter,sam2unet,tuned_sam,u2netp,f3net,u2net,pfan,poolnet,poolnet_vgg
# Report 001 table 1(a), two stages (decoder, then modules on the frozen retrained decoder): neither / +TB ...
$S ablate --config ecssd700_tuned_sam_two_stage --out $R/two_stage_modules \
  --set model.args.use_msr=false --set model.args.use_fad=false --grid model.args.tuned_blocks=0,12
# ... and MSR + FAD on, with 12 (both), 0 (+FAD), 6 and 9 tuned blocks
$S ablate --config ecssd700_tuned_sam_two_stage --out $R/two_stage_fad --grid model.args.tuned_blocks=12,0,6,9
# Report 000's edge branch (the edge=false cell is adapter_cbam in compare_test: same seed and config)
$S ablate --config ecssd700_compare --out $R/edge --set model.method=adapter_cbam --grid model.args.edge=true
.venv/bin/python benchmarks/ecssd_centre_prior.py --config ecssd700_compare --out $R/centre_prior
# The paper-style report of the trained models on the test split (first model = the reference of the paired tests)
models=()
for m in adapter_cbam decoder_only full lora sam_adapter sam2unet tuned_sam u2netp f3net u2net pfan poolnet poolnet_vgg; do
  [ -f "$R/compare_test/method=$m/result.json" ] && models+=(--model "$m=$R/compare_test/method=$m")
done
[ -f "$R/two_stage_fad/tuned_blocks=12/best.pt" ] && models+=(--model "tuned_sam_2stage=$R/two_stage_fad/tuned_blocks=12")
$S benchmark "${models[@]}" --pred "centre_prior=$R/centre_prior/pred" --data ECSSD-700=../shared/data/ecssd-700 \
  --split test --out $R/bench_ecssd_test --overwrite
