"""Image-folder fixtures written in tests: mixed sizes and aspect ratios, JPEG and PNG, val-only layouts, class
names with spaces and unicode."""

from pathlib import Path

import numpy as np

CLASSES = {"a cat": 12, "été 日本": 6, "zebra": 3}  # unequal classes: first-N would take only the first


def write_folder(root: Path, counts: dict = CLASSES, split: str = "val", seed: int = 0) -> Path:
    """ROOT/SPLIT/CLASS/*.{jpg,png}: images 20 to 60 px a side, both orientations, RGB; class k's images are
    tinted by k so a model could tell them apart."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k, (name, n) in enumerate(counts.items()):
        folder = Path(root) / split / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            h, w = (int(v) for v in rng.integers(20, 61, size=2))
            arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
            arr[..., k % 3] = 255 - 40 * k  # the class tint
            suffix = ".jpg" if i % 2 else ".png"
            Image.fromarray(arr).save(folder / f"img {i:03d}{suffix}")
    return Path(root)
