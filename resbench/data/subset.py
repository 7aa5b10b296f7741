"""Test subsets that represent the test set: a fixed-seed, class-stratified sample of N images (--limit N)."""

from __future__ import annotations

import torch

__all__ = ["SUBSET_RULES", "stratified_indices", "subset_text"]

# "stratified": each class in proportion to its share of the split, images drawn with the sweep's seed;
# "first": the first N in the split's order (class order for an image folder: only an explicit choice)
SUBSET_RULES = ("stratified", "first")


def stratified_indices(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Indices (n,) int64, ascending, of a class-stratified sample of `labels` (N,): each class gets its share
    of n by largest remainder (ties to the lower class), drawn by a CPU generator seeded with `seed`, so every
    machine and device draws the same images."""
    labels = torch.as_tensor(labels).cpu()
    total = len(labels)
    if n >= total:
        return torch.arange(total)
    classes, counts = torch.unique(labels, return_counts=True)  # (K,), (K,)
    exact = counts.double() * n / total  # (K,) each class's share, fractional
    take = exact.floor().long()
    left = n - int(take.sum())
    # largest remainder first; stable sort keeps the lower class first among equal remainders
    order = torch.sort(exact - take.double(), descending=True, stable=True).indices
    take[order[:left]] += 1
    gen = torch.Generator().manual_seed(int(seed))
    chosen = []
    for cls, k in zip(classes.tolist(), take.tolist()):
        members = torch.nonzero(labels == cls).flatten()  # (count,)
        chosen.append(members[torch.randperm(len(members), generator=gen)[:k]])
    return torch.sort(torch.cat(chosen)).values


def subset_text(rule: str, n: int, available: int, seed: int) -> str:
    """A row's test_images: 'full', 'first N of M' or 'stratified N of M, seed S'."""
    if n >= available:
        return "full"
    return f"first {n} of {available}" if rule == "first" else f"stratified {n} of {available}, seed {seed}"
