"""Local only: resbench's DPLR S4ND against the official state-spaces/s4 layer (checked out at /tmp/s4off).

Skipped unless the official code imports (CI has no copy). `python3 tests/test_official_dplr_local.py`
prints the largest difference per case group.
"""

import importlib.util
import itertools
import sys
from pathlib import Path

import pytest
import torch

from resbench.layers.s4nd import S4ND

OFFICIAL = Path("/tmp/s4off")
_spec = importlib.util.spec_from_file_location(
    "official_matrix_fixtures", Path(__file__).parent / "fixtures" / "official_matrix" / "make_fixtures.py")
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)  # the layer config of the committed matrix (official_matrix/)
H, RATES, sizes_for = fixtures.H, fixtures.RATES, fixtures.sizes_for
TOL = 1e-4


def official_class():
    if not OFFICIAL.is_dir():
        pytest.skip(f"official state-spaces/s4 code not at {OFFICIAL}")
    if str(OFFICIAL) not in sys.path:
        sys.path.insert(0, str(OFFICIAL))
    try:
        from src.models.sequence.modules.s4nd import S4ND as Official
    except Exception as err:  # any import failure means: no official code to compare with here
        pytest.skip(f"official S4ND does not import from {OFFICIAL}: {type(err).__name__}: {err}")
    return Official


def build_pair(dim, kernel_key, rank, n_ssm, bidirectional, bandlimit, first_forward=True, seed=0):
    """An official layer moved off init (as the fixture script moves it), and ours loaded from its config and
    state dict."""
    config = fixtures.layer_config(dim, rank, n_ssm, bidirectional, bandlimit)
    if kernel_key is not None:
        config[kernel_key[0]] = kernel_key[1]
    official, state = fixtures.perturbed_layer(official_class(), config, first_forward, seed)
    ours = S4ND.from_state_spaces(config, state).eval()
    return official, state, ours


def compare(official, state, ours, dim, rates=RATES):
    """Largest |ours - official| per (rate, size kind, method), the official layer reset before each call."""
    diffs = {}
    for rate in rates:
        for kind, size in sizes_for(dim, rate).items():
            x = torch.randn(2, H, *size)
            official.load_state_dict(state)  # the official kernel rewrites C and l_kernel when it doubles
            with torch.no_grad():
                want = official(x, rate=rate)
                want = want[0] if isinstance(want, tuple) else want
                for method in ("toeplitz", "fft"):
                    got = ours(x, rate=rate, method=method)
                    assert got.shape == want.shape
                    diffs[(rate, kind, method)] = (got - want).abs().max().item()
    return diffs


CASES = list(itertools.product([1, 2, 3], [None, ("kernel", "dplr")], [1, 2], [1, None], [True, False],
                               [None, 0.5]))


def case_id(case):
    dim, key, rank, n_ssm, bi, bl = case
    return f"{dim}d-{'default' if key is None else key[1]}-r{rank}-ssm{n_ssm or 'H'}-{'bi' if bi else 'uni'}-bl{bl}"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_official_layer(case):
    official, state, ours = build_pair(*case)
    assert ours.kernel_type == "dplr"
    diffs = compare(official, state, ours, case[0])
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] < TOL, (worst, diffs[worst])


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_matches_official_layer_before_its_first_call(dim):
    """A state dict saved before any forward (l_kernel 0, C plain): converted on the fly, as officially."""
    official, state, ours = build_pair(dim, None, 2, None, True, 0.5, first_forward=False)
    assert all(int(v) == 0 for k, v in state.items() if k.endswith("l_kernel"))
    diffs = compare(official, state, ours, dim, rates=(1.0, 0.5, 3.5))
    assert max(diffs.values()) < TOL


def summary() -> None:
    """Print the largest difference per case group (dim, rank, n_ssm, bidirectional, bandlimit, rate)."""
    groups: dict = {}
    for case in CASES:
        official, state, ours = build_pair(*case)
        dim, key, rank, n_ssm, bi, bl = case
        for (rate, kind, method), d in compare(official, state, ours, dim).items():
            for group in (f"dim {dim}", f"kernel key {'absent' if key is None else 'dplr'}", f"rank {rank}",
                          f"n_ssm {n_ssm or 'H'}", f"bidirectional {bi}", f"bandlimit {bl}", f"rate {rate}",
                          f"size {kind}", f"method {method}"):
                groups[group] = max(groups.get(group, 0.0), d)
    for dim in (1, 2, 3):
        official, state, ours = build_pair(dim, None, 2, None, True, 0.5, first_forward=False)
        groups[f"l_kernel 0, dim {dim}"] = max(compare(official, state, ours, dim, rates=(1.0, 0.5, 3.5)).values())
    for group, d in groups.items():
        print(f"{group:28s} {d:.2e}")
    print(f"{'all':28s} {max(groups.values()):.2e}")


if __name__ == "__main__":
    summary()
