"""Each command loads only what it uses: importing the CLI, `resbench info` and `resbench models` leave timm,
torchvision (and, where they can, torch's compiler stack) unimported. Module checks, not timings."""

import subprocess
import sys

import pytest

from conftest import REPO, make_checkpoint

HEAVY = ("timm", "torchvision", "torch._dynamo", "torch._inductor", "sympy")
_PROBE = ("import sys\nimport resbench.cli\n{run}\n"
          "print(sorted({{m.split('.')[0] if not m.startswith('torch.') else '.'.join(m.split('.')[:2])\n"
          "               for m in sys.modules}} & set({heavy!r})))\n")


def loaded_after(*args) -> list[str]:
    """The HEAVY modules in sys.modules of a fresh interpreter after `resbench ARGS` ran (no ARGS: after
    `import resbench.cli` alone); the command's own output goes to stderr of the probe."""
    run = ""
    if args:
        run = ("import contextlib\nwith contextlib.redirect_stdout(sys.stderr):\n"
               f"    code = resbench.cli.main({[str(a) for a in args]!r})\n"
               "assert code == 0, code")
    done = subprocess.run([sys.executable, "-c", _PROBE.format(run=run, heavy=HEAVY)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return eval(done.stdout.strip().splitlines()[-1]), done.stderr  # a list literal the probe printed


def test_importing_the_cli_loads_no_timm_torchvision_or_compiler():
    loaded, _ = loaded_after()
    assert loaded == []


def test_models_lists_every_model_without_timm_or_torchvision():
    loaded, out = loaded_after("models")
    assert loaded == []  # the compiler stack stays out too
    for name in ("s4nd_iso", "convnext", "s4nd_convnext", "vit", "s4nd_official_convnext3d"):
        assert f"│ {name} " in out, out


def test_info_loads_no_timm_or_torchvision(tmp_path):
    from resbench.checkpoints import save_checkpoint

    path = save_checkpoint(make_checkpoint("s4nd_iso", d_state=4), tmp_path / "tiny.pt")
    loaded, out = loaded_after("info", path)
    assert "timm" not in loaded and "torchvision" not in loaded, loaded
    assert "s4nd_iso" in out and "sha256" in out


@pytest.mark.parametrize("config", [{}, {"bandlimit": 0.5, "mask": "random"}], ids=["band", "random-mask"])
def test_info_loads_no_compiler_stack(tmp_path, config):
    from resbench.checkpoints import save_checkpoint

    path = save_checkpoint(make_checkpoint("s4nd_iso", d_state=4, **config), tmp_path / "tiny.pt")
    loaded, _ = loaded_after("info", path)
    assert "torch._dynamo" not in loaded and "sympy" not in loaded, loaded


_META_PROBE = """
import sys
import torch
from resbench.cli.models import example_model
from resbench.models import list_models, model_class
for name in list_models():
    if model_class(name).LISTED_PARAMETERS is None:  # the families timm builds import it, and timm dynamo
        with torch.device("meta"):
            example_model(name)
        if "torch._dynamo" in sys.modules or "sympy" in sys.modules:
            print(name)
            break
"""


def test_models_resbench_builds_build_on_meta_without_the_compiler_stack():
    """Checkpoint validation builds the model on the meta device: torch's out-of-place meta arithmetic would
    import torch._dynamo (1.7 s) and its meta randn sympy (0.9 s), so the layers' initialisation keeps clear
    of them."""
    done = subprocess.run([sys.executable, "-c", _META_PROBE], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"building {done.stdout.strip()} on meta imported torch._dynamo or sympy"


def test_the_recorded_parameter_counts_are_what_the_models_have():
    from resbench.cli.models import example_model
    from resbench.models import count_params, list_models, model_class

    recorded = {n: model_class(n).LISTED_PARAMETERS for n in list_models()}
    assert {n for n, v in recorded.items() if v is not None} >= {"convnext", "vit", "s4nd_official_convnext"}
    for name, count in recorded.items():
        if count is not None:
            assert count_params(example_model(name)) == count, name
