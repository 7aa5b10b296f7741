#!/usr/bin/env bash
# The exact recipes of the shipped checkpoints (Fashion-MNIST, CPU, 2 threads). Each run logs to
# checkpoints/logs/NAME.log and can be resumed after a kill (--resume). Usage: bash checkpoints/train_all.sh [NAME...]
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p checkpoints/logs
declare -A RECIPE=(
  [s4nd_iso_7]="s4nd_iso --train-res 7 --epochs 3 --bandlimit 0.5"
  [conv2d_iso_7]="conv2d_iso --train-res 7 --epochs 3"
  [s4nd_iso_14]="s4nd_iso --train-res 14 --epochs 8 --bandlimit 0.5"
  [conv2d_iso_14]="conv2d_iso --train-res 14 --epochs 3"
  [ckconv_14]="ckconv --train-res 14 --epochs 3"
  [convnext_14]="convnext --train-res 14 --epochs 3"
  [s4nd_convnext_14]="s4nd_convnext --train-res 14 --epochs 3 --bandlimit 0.5"
  [vit_14]="vit --train-res 14 --epochs 3"
  [s4nd_iso_28]="s4nd_iso --train-res 28 --epochs 4 --bandlimit 0.5"
  [s4nd_iso_prog28]="s4nd_iso --schedule 7:1,14:2,28:1 --bandlimit 0.5"
  [conv2d_iso_28]="conv2d_iso --train-res 28 --epochs 3"
  [s4nd_iso_28_long]="s4nd_iso --train-res 28 --epochs 10 --bandlimit 0.5 --set dropout=0"
  # the bandlimit ablation: the same recipes as s4nd_iso_7/14/28, trained without the bandlimit
  [s4nd_iso_7_nobandlimit]="s4nd_iso --train-res 7 --epochs 3 --bandlimit off"
  [s4nd_iso_14_nobandlimit]="s4nd_iso --train-res 14 --epochs 8 --bandlimit off"
  [s4nd_iso_28_nobandlimit]="s4nd_iso --train-res 28 --epochs 4 --bandlimit off"
  # the official S4ND-ConvNeXt arrangement (S4ND downsampling, no output linear), same recipe as s4nd_convnext_14
  [s4nd_convnext_official_14]="s4nd_convnext_official --train-res 14 --epochs 3 --bandlimit 0.5"
  # seeds of the headline pair: the recipes of s4nd_iso_7 / conv2d_iso_7 / s4nd_iso_14 / conv2d_iso_14 (seed 0)
  [s4nd_iso_7_seed1]="s4nd_iso --train-res 7 --epochs 3 --bandlimit 0.5 --seed 1"
  [s4nd_iso_7_seed2]="s4nd_iso --train-res 7 --epochs 3 --bandlimit 0.5 --seed 2"
  [conv2d_iso_7_seed1]="conv2d_iso --train-res 7 --epochs 3 --seed 1"
  [conv2d_iso_7_seed2]="conv2d_iso --train-res 7 --epochs 3 --seed 2"
  [s4nd_iso_14_seed1]="s4nd_iso --train-res 14 --epochs 8 --bandlimit 0.5 --seed 1"
  [s4nd_iso_14_seed2]="s4nd_iso --train-res 14 --epochs 8 --bandlimit 0.5 --seed 2"
  [conv2d_iso_14_seed1]="conv2d_iso --train-res 14 --epochs 3 --seed 1"
  [conv2d_iso_14_seed2]="conv2d_iso --train-res 14 --epochs 3 --seed 2"
  # signals (1-d): spoken digits at 4 kHz (4000 samples a clip); the Conv1d twin with 9 taps
  [s4nd_iso_digits4000]="s4nd_iso --dataset spoken-digits --train-res 4000 --epochs 12 --batch-size 32 --bandlimit 0.5 --set d_model=32"
  [conv1d_iso_digits4000]="conv1d_iso --dataset spoken-digits --train-res 4000 --epochs 12 --batch-size 32 --set d_model=32 --set kernel_size=9"
  # clips (3-d): moving Fashion-MNIST at 8 frames of 14x14; the Conv3d twin with 3x3x3 taps
  [s4nd_iso_moving8x14x14]="s4nd_iso --dataset moving-fashion-mnist --train-res 8x14x14 --epochs 10 --batch-size 32 --bandlimit 0.5 --set d_model=32"
  [conv3d_iso_moving8x14x14]="conv3d_iso --dataset moving-fashion-mnist --train-res 8x14x14 --epochs 10 --batch-size 32 --set d_model=32"
)
ORDER=(s4nd_iso_7 conv2d_iso_7 s4nd_iso_14 conv2d_iso_14 ckconv_14 convnext_14 s4nd_convnext_14 vit_14
       s4nd_iso_28 s4nd_iso_prog28 conv2d_iso_28 s4nd_iso_28_long
       s4nd_iso_7_nobandlimit s4nd_iso_14_nobandlimit s4nd_iso_28_nobandlimit s4nd_convnext_official_14
       s4nd_iso_7_seed1 s4nd_iso_7_seed2 conv2d_iso_7_seed1 conv2d_iso_7_seed2
       s4nd_iso_14_seed1 s4nd_iso_14_seed2 conv2d_iso_14_seed1 conv2d_iso_14_seed2
       s4nd_iso_digits4000 conv1d_iso_digits4000 s4nd_iso_moving8x14x14 conv3d_iso_moving8x14x14)
for name in "${@:-${ORDER[@]}}"; do
  [ -f "checkpoints/$name.pt" ] && { echo "skip $name (exists)"; continue; }
  seed="--seed 0"  # unless the recipe names its own
  [[ " ${RECIPE[$name]} " == *" --seed "* ]] && seed=""
  echo "== $name: resbench train ${RECIPE[$name]} $seed -o checkpoints/$name.pt"
  python cli.py train ${RECIPE[$name]} $seed --resume -o "checkpoints/$name.pt" 2>&1 | tee -a "checkpoints/logs/$name.log"
done
