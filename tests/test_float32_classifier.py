"""Under autocast the classifier's logits are float32 (float32_classifier): bf16 logits tie and argmax takes
the lower class."""

import torch
import torch.nn as nn

from resbench.device import autocast, float32_classifier
from resbench.models import create_model


def _tie_model() -> nn.Module:
    """Features (1, 0) -> logits (1, 1 + 2^-10): distinct in float32, equal once the weights are bf16."""
    head = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [1.0 + 2 ** -10, 0.0]]))
    return nn.Sequential(nn.Identity(), head)


def test_bf16_logits_tie_and_float32_classifier_breaks_the_tie():
    model, x = _tie_model(), torch.tensor([[1.0, 0.0]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        tied = model(x)
        with float32_classifier(model, num_classes=2):
            kept = model(x)
    assert tied.dtype == torch.bfloat16 and tied[0, 0] == tied[0, 1] and tied.argmax(1).item() == 0
    assert kept.dtype == torch.float32 and kept.argmax(1).item() == 1
    assert torch.allclose(kept[0], model[1].weight @ x[0])  # the float32 product of float32 weights
    assert not model[1]._forward_hooks  # the hook is gone after the block


def test_without_autocast_or_a_classifier_nothing_changes():
    model, x = _tie_model(), torch.tensor([[1.0, 0.0]])
    with float32_classifier(model, num_classes=2):
        same = model(x)
    assert torch.equal(same, model(x)) and same.dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16), float32_classifier(model, num_classes=7):  # no 7-way layer
        assert model(x).dtype == torch.bfloat16
    with float32_classifier(lambda t: t, num_classes=2):  # not a module: nothing to find
        pass


def test_only_the_last_classifier_layer_is_recomputed():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.GELU(), nn.Linear(3, 3))  # both have 3 outputs
    x = torch.randn(5, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16), float32_classifier(model, num_classes=3):
        hidden = model[0](x)
        out = model(x)
    assert hidden.dtype == torch.bfloat16 and out.dtype == torch.float32
    expected = torch.nn.functional.linear(model[1](hidden).float(), model[2].weight, model[2].bias)
    assert torch.allclose(out, expected, atol=1e-6)


def test_s4nd_iso_under_bf16_returns_float32_logits_close_to_fp32():
    torch.manual_seed(0)
    model = create_model("s4nd_iso", train_res=[12, 12], num_classes=10, d_model=16, n_layers=2, d_state=8).eval()
    x = torch.randn(4, 1, 12, 12)
    with torch.inference_mode():
        ref = model(x)
        with autocast(torch.device("cpu"), "bf16"), float32_classifier(model, 10):
            out = model(x)
    assert out.dtype == torch.float32
    assert (out - ref).abs().max() < 0.1 * ref.abs().max()  # bf16 body, float32 classifier
