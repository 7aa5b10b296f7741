"""What the CUDA paths rely on, checked on the CPU: kernels and FFTs in float32 under autocast, true fp32
(no TF32), GPU batches sized by memory rather than the CPU cache, the memory budget's view of torch's cache."""

import pandas as pd
import pytest
import torch

from resbench import device as devmod
from resbench.layers.ckconv import ContinuousDepthwiseConv
from resbench.layers.s4nd import S4ND, conv_fft
from resbench.sweep import CACHE_PIXELS, cache_batch


@pytest.mark.parametrize("kernel", ["diag", "dplr"])
def test_s4nd_kernels_stay_float32_under_autocast(kernel):
    torch.manual_seed(0)
    layer = S4ND(8, d_state=4, dim=2, l_max=14, kernel=kernel, bandlimit=0.5).eval()
    ref = layer._operators((14, 14), 0.5, ..., "toeplitz")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = layer._operators((14, 14), 0.5, ..., "toeplitz")
        ks = layer._operators((14, 14), 0.5, ..., "fft")
    assert all(t.dtype == torch.float32 for t in got + ks)
    for a, b in zip(ref, got):
        assert torch.equal(a, b)


def test_fft_convolution_runs_in_float32_and_returns_the_input_dtype():
    torch.manual_seed(0)
    u = torch.randn(2, 4, 20, 20)
    ks = [torch.randn(2, 4, 20), torch.randn(2, 4, 20)]
    ref = conv_fft(u, ks)
    out = conv_fft(u.bfloat16(), [k.bfloat16() for k in ks])
    assert out.dtype == torch.bfloat16
    # only the inputs' and the output's rounding to bf16 separate the two (bf16 FFTs would lose far more)
    expected = conv_fft(u.bfloat16().float(), [k.bfloat16().float() for k in ks])
    assert torch.allclose(out.float(), expected, rtol=1e-2, atol=1e-2 * expected.abs().max().item())
    assert not torch.equal(out.float(), ref)  # it did round to bf16


def test_ckconv_kernel_stays_float32_under_autocast():
    torch.manual_seed(0)
    conv = ContinuousDepthwiseConv(4, taps=5, train_size=(14, 14)).eval()
    ref = conv.kernel((7, 7), adaptive=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = conv.kernel((7, 7), adaptive=True)
        plain = conv.kernel((28, 28))
    assert got.dtype == plain.dtype == torch.float32
    assert torch.equal(ref, got)


def test_gpu_batches_are_not_cut_to_the_cpu_cache():
    assert cache_batch(4096, (28, 28), "cpu") == CACHE_PIXELS // (28 * 28)
    assert cache_batch(4096, (28, 28), "cuda:0") == 4096
    assert cache_batch(4, (28, 28), "cpu") == 4


def test_fp32_on_cuda_turns_tf32_off_and_restores_it(monkeypatch):
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", True)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    with devmod.autocast(torch.device("cuda", 0), "fp32"):
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    with devmod.autocast(torch.device("cpu"), "fp32"):  # nothing to change on the CPU
        assert torch.backends.cudnn.allow_tf32


def test_memory_budget_counts_torchs_idle_cache_as_free(monkeypatch):
    gib = 1024 ** 3
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d: (10 * gib, 80 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda d: 30 * gib)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda d: 4 * gib)
    assert devmod.free_memory_budget(torch.device("cuda", 0)) == (10 + 30 - 4) * gib // 2


@pytest.mark.parametrize("shape,taps", [((2, 3, 56, 56), (37, 37)), ((2, 3, 20, 17), (5, 9)),
                                        ((2, 3, 8, 14, 14), (3, 9, 9))])
def test_fft_depthwise_conv_equals_the_direct_convolution(shape, taps):
    from resbench.layers.ckconv import fft_depthwise_conv
    torch.manual_seed(0)
    x, k = torch.randn(shape), torch.randn(shape[1], 1, *taps)
    conv = torch.nn.functional.conv2d if len(taps) == 2 else torch.nn.functional.conv3d
    ref = conv(x, k, padding=tuple(t // 2 for t in taps), groups=shape[1])
    assert torch.allclose(fft_depthwise_conv(x, k), ref, atol=1e-5 * ref.abs().max().item())


def test_a_rendered_test_set_is_rendered_once_per_size(tmp_path, monkeypatch, keep_torch_threads):
    from conftest import tiny_config, tiny_train
    from resbench import data
    from resbench.sweep import SweepConfig, run_sweep

    tiny_train(tiny_config(), tmp_path / "m.pt")
    calls = []
    render = data.render
    monkeypatch.setattr(data, "render", lambda *a, **k: calls.append(a[2]) or render(*a, **k))
    run_sweep(SweepConfig(checkpoints=[str(tmp_path / "m.pt")], out=str(tmp_path / "out"), test_res=[(7, 7), (14, 14)],
                          limit=40, batch_size=16, threads=1), quiet=True)
    rows = pd.read_csv(tmp_path / "out" / "results.csv")
    assert len(rows) > 2 * 2  # several cells (policies, bandlimits) at each size
    assert sorted(calls) == [(7, 7)] * 3 + [(14, 14)] * 3  # 40 images in batches of 16, once per size


def test_a_built_model_goes_to_ray_workers_on_the_cpu():
    from types import SimpleNamespace

    from resbench.sweep.ray_executor import _put_checkpoints

    class Net:
        device = "cuda:0"

        def cpu(self):
            self.device = "cpu"
            return self

    sent = []
    ray = SimpleNamespace(put=lambda obj: sent.append(getattr(getattr(obj, "net", None), "device", None)) or "ref")
    plan = SimpleNamespace(ckpts=[SimpleNamespace(net=Net(), path="m"), SimpleNamespace(path="ckpt.pt")])
    assert _put_checkpoints(ray, plan, [0, 1]) == {0: "ref", 1: "ref"}
    assert sent[0] == "cpu"


def test_a_budget_that_shrinks_mid_run_is_one_error_row(tmp_path, monkeypatch, keep_torch_threads):
    from conftest import tiny_config, tiny_train
    from resbench.sweep import SweepConfig, batches, cell, run_sweep

    tiny_train(tiny_config(), tmp_path / "m.pt")
    running = []  # the checks and the plan before the run see plenty; then the cell finds almost none
    evaluate = cell.evaluate_cell
    monkeypatch.setattr(cell, "evaluate_cell", lambda *a, **k: running.append(1) or evaluate(*a, **k))
    monkeypatch.setattr(batches, "memory_budget", lambda cfg: 10 if running else 10 ** 9)
    run_sweep(SweepConfig(checkpoints=[str(tmp_path / "m.pt")], out=str(tmp_path / "out"), test_res=[(14, 14)],
                          limit=16, threads=1, policy=["native"], bandlimit=["on"]), quiet=True)
    rows = pd.read_csv(tmp_path / "out" / "results.csv")
    assert len(rows) == 1 and "free device memory fell during the run" in rows["error"].iloc[0]
