"""Batches of a model from outside resbench are sized by its largest activation, measured by the probe at the
training size and scaled by the pixels, not by its widest layer at the full test size (a ResNet-50's 2048
channels run at 1/32 of the image: taken at full size they refused 160 px as needing 2.3 GiB an image)."""

import math

import pytest
import torch

from resbench.external import ModelOptions, from_module
from resbench.sweep.batches import MEMORY_BUDGET, batch_size_for

pytestmark = pytest.mark.usefixtures("keep_torch_threads")


def largest_output(net, size) -> int:
    """The elements of the largest tensor any module of `net` returns for one blank image, by hand."""
    seen = []
    handles = [m.register_forward_hook(lambda m, a, out: seen.append(out.numel())
                                       if isinstance(out, torch.Tensor) else None) for m in net.modules()]
    with torch.inference_mode():
        net(torch.zeros(1, 3, *size))
    for h in handles:
        h.remove()
    return max(seen)


def test_a_resnet50_is_batched_by_its_largest_map_scaled_by_the_pixels():
    import timm

    torch.manual_seed(0)
    net = timm.create_model("resnet50", num_classes=10).eval()
    source = from_module(net, ModelOptions(dataset="synthetic", train_res=64, in_chans=3, num_classes=10,
                                           mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)))
    model = source.build_model()
    want = largest_output(net, (64, 64))
    assert model.activation_elements((64, 64)) == want
    assert model.activation_elements((160, 160)) == math.ceil(want * 160 ** 2 / 64 ** 2)
    assert want < 2048 * 64 * 64 / 16  # far below the widest layer at full size
    batch = batch_size_for(model, (160, 160), 32)  # the old rule refused this size outright
    assert batch == min(32, MEMORY_BUDGET // (12 * model.activation_elements((160, 160)) * 4))
    assert largest_output(net, (160, 160)) <= model.activation_elements((160, 160))
