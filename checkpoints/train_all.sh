#!/usr/bin/env bash
# The exact recipes of the shipped checkpoints (Fashion-MNIST, CPU, 2 threads). Each run logs to
# checkpoints/logs/NAME.log and can be resumed after a kill (--resume). Usage: bash checkpoints/train_all.sh [NAME...]
# Names with a folder (ablation/..., baselines/...) write there: `resbench sweep checkpoints/` reads only the
# top folder's files, so those studies are swept by naming their folder.
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
  # the Conv2D twin at 14 with S4ND's budget (8 epochs, as s4nd_iso_14): the headline pair at equal budgets
  [conv2d_iso_14_8ep]="conv2d_iso --train-res 14 --epochs 8 --seed 0"
  [conv2d_iso_14_8ep_seed1]="conv2d_iso --train-res 14 --epochs 8 --seed 1"
  [conv2d_iso_14_8ep_seed2]="conv2d_iso --train-res 14 --epochs 8 --seed 2"
  # signals (1-d): spoken digits at 4 kHz (4000 samples a clip); the Conv1d twin with 9 taps
  [s4nd_iso_digits4000]="s4nd_iso --dataset spoken-digits --train-res 4000 --epochs 12 --batch-size 32 --bandlimit 0.5 --set d_model=32"
  [conv1d_iso_digits4000]="conv1d_iso --dataset spoken-digits --train-res 4000 --epochs 12 --batch-size 32 --set d_model=32 --set kernel_size=9"
  # clips (3-d): moving Fashion-MNIST at 8 frames of 14x14; the Conv3d twin with 3x3x3 taps
  [s4nd_iso_moving8x14x14]="s4nd_iso --dataset moving-fashion-mnist --train-res 8x14x14 --epochs 10 --batch-size 32 --bandlimit 0.5 --set d_model=32"
  [conv3d_iso_moving8x14x14]="conv3d_iso --dataset moving-fashion-mnist --train-res 8x14x14 --epochs 10 --batch-size 32 --set d_model=32"
  # seeds 1 and 2 of the four 1-d and 3-d checkpoints (their recipes above, seed 0 is the file without a suffix)
  [s4nd_iso_digits4000_seed1]="s4nd_iso --dataset spoken-digits --train-res 4000 --epochs 12 --batch-size 32 --bandlimit 0.5 --set d_model=32 --seed 1"
  [s4nd_iso_digits4000_seed2]="s4nd_iso --dataset spoken-digits --train-res 4000 --epochs 12 --batch-size 32 --bandlimit 0.5 --set d_model=32 --seed 2"
  [conv1d_iso_digits4000_seed1]="conv1d_iso --dataset spoken-digits --train-res 4000 --epochs 12 --batch-size 32 --set d_model=32 --set kernel_size=9 --seed 1"
  [conv1d_iso_digits4000_seed2]="conv1d_iso --dataset spoken-digits --train-res 4000 --epochs 12 --batch-size 32 --set d_model=32 --set kernel_size=9 --seed 2"
  [s4nd_iso_moving8x14x14_seed1]="s4nd_iso --dataset moving-fashion-mnist --train-res 8x14x14 --epochs 10 --batch-size 32 --bandlimit 0.5 --set d_model=32 --seed 1"
  [s4nd_iso_moving8x14x14_seed2]="s4nd_iso --dataset moving-fashion-mnist --train-res 8x14x14 --epochs 10 --batch-size 32 --bandlimit 0.5 --set d_model=32 --seed 2"
  [conv3d_iso_moving8x14x14_seed1]="conv3d_iso --dataset moving-fashion-mnist --train-res 8x14x14 --epochs 10 --batch-size 32 --set d_model=32 --seed 1"
  [conv3d_iso_moving8x14x14_seed2]="conv3d_iso --dataset moving-fashion-mnist --train-res 8x14x14 --epochs 10 --batch-size 32 --set d_model=32 --seed 2"
  # S4ND trained natively at half the rate, the reference for the zero-shot cells there: 2000 samples (2 kHz),
  # 4 frames of 14x14 (half the frame rate), 8 frames of 7x7 (half the frame size); the recipes above otherwise
  [s4nd_iso_digits2000]="s4nd_iso --dataset spoken-digits --train-res 2000 --epochs 12 --batch-size 32 --bandlimit 0.5 --set d_model=32"
  [s4nd_iso_moving4x14x14]="s4nd_iso --dataset moving-fashion-mnist --train-res 4x14x14 --epochs 10 --batch-size 32 --bandlimit 0.5 --set d_model=32"
  [s4nd_iso_moving8x7x7]="s4nd_iso --dataset moving-fashion-mnist --train-res 8x7x7 --epochs 10 --batch-size 32 --bandlimit 0.5 --set d_model=32"
  # the bandlimit ablation with controls, every arm and seed by the same code and the recipes of s4nd_iso_7/14/28:
  # the band mask (bandmask), no mask (nomask), a random mask keeping as many modes per channel (randmask)
  [ablation/s4nd_iso_7_bandmask_seed0]="s4nd_iso --train-res 7 --epochs 3 --bandlimit 0.5 --seed 0"
  [ablation/s4nd_iso_7_bandmask_seed1]="s4nd_iso --train-res 7 --epochs 3 --bandlimit 0.5 --seed 1"
  [ablation/s4nd_iso_7_bandmask_seed2]="s4nd_iso --train-res 7 --epochs 3 --bandlimit 0.5 --seed 2"
  [ablation/s4nd_iso_7_nomask_seed0]="s4nd_iso --train-res 7 --epochs 3 --bandlimit off --seed 0"
  [ablation/s4nd_iso_7_nomask_seed1]="s4nd_iso --train-res 7 --epochs 3 --bandlimit off --seed 1"
  [ablation/s4nd_iso_7_nomask_seed2]="s4nd_iso --train-res 7 --epochs 3 --bandlimit off --seed 2"
  [ablation/s4nd_iso_7_randmask_seed0]="s4nd_iso --train-res 7 --epochs 3 --bandlimit 0.5 --mask random --seed 0"
  [ablation/s4nd_iso_7_randmask_seed1]="s4nd_iso --train-res 7 --epochs 3 --bandlimit 0.5 --mask random --seed 1"
  [ablation/s4nd_iso_7_randmask_seed2]="s4nd_iso --train-res 7 --epochs 3 --bandlimit 0.5 --mask random --seed 2"
  [ablation/s4nd_iso_14_bandmask_seed0]="s4nd_iso --train-res 14 --epochs 8 --bandlimit 0.5 --seed 0"
  [ablation/s4nd_iso_14_bandmask_seed1]="s4nd_iso --train-res 14 --epochs 8 --bandlimit 0.5 --seed 1"
  [ablation/s4nd_iso_14_bandmask_seed2]="s4nd_iso --train-res 14 --epochs 8 --bandlimit 0.5 --seed 2"
  [ablation/s4nd_iso_14_nomask_seed0]="s4nd_iso --train-res 14 --epochs 8 --bandlimit off --seed 0"
  [ablation/s4nd_iso_14_nomask_seed1]="s4nd_iso --train-res 14 --epochs 8 --bandlimit off --seed 1"
  [ablation/s4nd_iso_14_nomask_seed2]="s4nd_iso --train-res 14 --epochs 8 --bandlimit off --seed 2"
  [ablation/s4nd_iso_14_randmask_seed0]="s4nd_iso --train-res 14 --epochs 8 --bandlimit 0.5 --mask random --seed 0"
  [ablation/s4nd_iso_14_randmask_seed1]="s4nd_iso --train-res 14 --epochs 8 --bandlimit 0.5 --mask random --seed 1"
  [ablation/s4nd_iso_14_randmask_seed2]="s4nd_iso --train-res 14 --epochs 8 --bandlimit 0.5 --mask random --seed 2"
  [ablation/s4nd_iso_28_bandmask_seed0]="s4nd_iso --train-res 28 --epochs 4 --bandlimit 0.5 --seed 0"
  [ablation/s4nd_iso_28_bandmask_seed1]="s4nd_iso --train-res 28 --epochs 4 --bandlimit 0.5 --seed 1"
  [ablation/s4nd_iso_28_bandmask_seed2]="s4nd_iso --train-res 28 --epochs 4 --bandlimit 0.5 --seed 2"
  [ablation/s4nd_iso_28_nomask_seed0]="s4nd_iso --train-res 28 --epochs 4 --bandlimit off --seed 0"
  [ablation/s4nd_iso_28_nomask_seed1]="s4nd_iso --train-res 28 --epochs 4 --bandlimit off --seed 1"
  [ablation/s4nd_iso_28_nomask_seed2]="s4nd_iso --train-res 28 --epochs 4 --bandlimit off --seed 2"
  [ablation/s4nd_iso_28_randmask_seed0]="s4nd_iso --train-res 28 --epochs 4 --bandlimit 0.5 --mask random --seed 0"
  [ablation/s4nd_iso_28_randmask_seed1]="s4nd_iso --train-res 28 --epochs 4 --bandlimit 0.5 --mask random --seed 1"
  [ablation/s4nd_iso_28_randmask_seed2]="s4nd_iso --train-res 28 --epochs 4 --bandlimit 0.5 --mask random --seed 2"
  # baselines built or trained for resolution change, the recipe of conv2d_iso_7/14 (3 epochs): blur-pooled
  # downsampling (Zhang 2019) and its plain-strided control; Conv2D-ISO trained at random sizes from half the
  # training size up to it (multi-scale; no detail finer than the training size, as its single-size twin)
  [baselines/conv2d_blurpool_7_seed0]="conv2d_blurpool --train-res 7 --epochs 3 --seed 0"
  [baselines/conv2d_blurpool_7_seed1]="conv2d_blurpool --train-res 7 --epochs 3 --seed 1"
  [baselines/conv2d_blurpool_7_seed2]="conv2d_blurpool --train-res 7 --epochs 3 --seed 2"
  [baselines/conv2d_blurpool_14_seed0]="conv2d_blurpool --train-res 14 --epochs 3 --seed 0"
  [baselines/conv2d_blurpool_14_seed1]="conv2d_blurpool --train-res 14 --epochs 3 --seed 1"
  [baselines/conv2d_blurpool_14_seed2]="conv2d_blurpool --train-res 14 --epochs 3 --seed 2"
  [baselines/conv2d_strided_7_seed0]="conv2d_strided --train-res 7 --epochs 3 --seed 0"
  [baselines/conv2d_strided_7_seed1]="conv2d_strided --train-res 7 --epochs 3 --seed 1"
  [baselines/conv2d_strided_7_seed2]="conv2d_strided --train-res 7 --epochs 3 --seed 2"
  [baselines/conv2d_strided_14_seed0]="conv2d_strided --train-res 14 --epochs 3 --seed 0"
  [baselines/conv2d_strided_14_seed1]="conv2d_strided --train-res 14 --epochs 3 --seed 1"
  [baselines/conv2d_strided_14_seed2]="conv2d_strided --train-res 14 --epochs 3 --seed 2"
  [baselines/conv2d_iso_7_multiscale_seed0]="conv2d_iso --train-res 7 --epochs 3 --multiscale 4,5,6,7 --seed 0"
  [baselines/conv2d_iso_7_multiscale_seed1]="conv2d_iso --train-res 7 --epochs 3 --multiscale 4,5,6,7 --seed 1"
  [baselines/conv2d_iso_7_multiscale_seed2]="conv2d_iso --train-res 7 --epochs 3 --multiscale 4,5,6,7 --seed 2"
  [baselines/conv2d_iso_14_multiscale_seed0]="conv2d_iso --train-res 14 --epochs 3 --multiscale 7,9,11,14 --seed 0"
  [baselines/conv2d_iso_14_multiscale_seed1]="conv2d_iso --train-res 14 --epochs 3 --multiscale 7,9,11,14 --seed 1"
  [baselines/conv2d_iso_14_multiscale_seed2]="conv2d_iso --train-res 14 --epochs 3 --multiscale 7,9,11,14 --seed 2"
)
ORDER=(s4nd_iso_7 conv2d_iso_7 s4nd_iso_14 conv2d_iso_14 ckconv_14 convnext_14 s4nd_convnext_14 vit_14
       s4nd_iso_28 s4nd_iso_prog28 conv2d_iso_28 s4nd_iso_28_long
       s4nd_iso_7_nobandlimit s4nd_iso_14_nobandlimit s4nd_iso_28_nobandlimit s4nd_convnext_official_14
       s4nd_iso_7_seed1 s4nd_iso_7_seed2 conv2d_iso_7_seed1 conv2d_iso_7_seed2
       s4nd_iso_14_seed1 s4nd_iso_14_seed2 conv2d_iso_14_seed1 conv2d_iso_14_seed2
       conv2d_iso_14_8ep conv2d_iso_14_8ep_seed1 conv2d_iso_14_8ep_seed2
       s4nd_iso_digits4000 conv1d_iso_digits4000 s4nd_iso_moving8x14x14 conv3d_iso_moving8x14x14
       s4nd_iso_digits4000_seed1 s4nd_iso_digits4000_seed2 conv1d_iso_digits4000_seed1 conv1d_iso_digits4000_seed2
       s4nd_iso_moving8x14x14_seed1 s4nd_iso_moving8x14x14_seed2 conv3d_iso_moving8x14x14_seed1 conv3d_iso_moving8x14x14_seed2
       s4nd_iso_digits2000 s4nd_iso_moving4x14x14 s4nd_iso_moving8x7x7
       ablation/s4nd_iso_7_bandmask_seed0 ablation/s4nd_iso_7_bandmask_seed1 ablation/s4nd_iso_7_bandmask_seed2
       ablation/s4nd_iso_7_nomask_seed0 ablation/s4nd_iso_7_nomask_seed1 ablation/s4nd_iso_7_nomask_seed2
       ablation/s4nd_iso_7_randmask_seed0 ablation/s4nd_iso_7_randmask_seed1 ablation/s4nd_iso_7_randmask_seed2
       ablation/s4nd_iso_14_bandmask_seed0 ablation/s4nd_iso_14_bandmask_seed1 ablation/s4nd_iso_14_bandmask_seed2
       ablation/s4nd_iso_14_nomask_seed0 ablation/s4nd_iso_14_nomask_seed1 ablation/s4nd_iso_14_nomask_seed2
       ablation/s4nd_iso_14_randmask_seed0 ablation/s4nd_iso_14_randmask_seed1 ablation/s4nd_iso_14_randmask_seed2
       ablation/s4nd_iso_28_bandmask_seed0 ablation/s4nd_iso_28_bandmask_seed1 ablation/s4nd_iso_28_bandmask_seed2
       ablation/s4nd_iso_28_nomask_seed0 ablation/s4nd_iso_28_nomask_seed1 ablation/s4nd_iso_28_nomask_seed2
       ablation/s4nd_iso_28_randmask_seed0 ablation/s4nd_iso_28_randmask_seed1 ablation/s4nd_iso_28_randmask_seed2
       baselines/conv2d_blurpool_7_seed0 baselines/conv2d_blurpool_7_seed1 baselines/conv2d_blurpool_7_seed2
       baselines/conv2d_blurpool_14_seed0 baselines/conv2d_blurpool_14_seed1 baselines/conv2d_blurpool_14_seed2
       baselines/conv2d_strided_7_seed0 baselines/conv2d_strided_7_seed1 baselines/conv2d_strided_7_seed2
       baselines/conv2d_strided_14_seed0 baselines/conv2d_strided_14_seed1 baselines/conv2d_strided_14_seed2
       baselines/conv2d_iso_7_multiscale_seed0 baselines/conv2d_iso_7_multiscale_seed1 baselines/conv2d_iso_7_multiscale_seed2
       baselines/conv2d_iso_14_multiscale_seed0 baselines/conv2d_iso_14_multiscale_seed1 baselines/conv2d_iso_14_multiscale_seed2)
for name in "${@:-${ORDER[@]}}"; do
  [ -f "checkpoints/$name.pt" ] && { echo "skip $name (exists)"; continue; }
  mkdir -p "$(dirname "checkpoints/$name")" "$(dirname "checkpoints/logs/$name")"  # ablation/, baselines/
  seed="--seed 0"  # unless the recipe names its own
  [[ " ${RECIPE[$name]} " == *" --seed "* ]] && seed=""
  echo "== $name: resbench train ${RECIPE[$name]} $seed -o checkpoints/$name.pt"
  python cli.py train ${RECIPE[$name]} $seed --resume -o "checkpoints/$name.pt" 2>&1 | tee -a "checkpoints/logs/$name.log"
done
