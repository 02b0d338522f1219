"""The model's layers against torch's stock ones: same values, same gradients."""

from __future__ import annotations

import copy

import pytest
import torch

from trainables.bench import stock_layers
from trainables.config import TrialConfig
from trainables.model import VAE, Deconv


@pytest.mark.parametrize("c_out", [32, 1])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("input_grad", [True, False])
def test_deconv_backward_equals_conv_transpose(c_out, channels_last, input_grad):
    """Deconv's backward runs on convolution kernels; its gradients are the stock
    ConvTranspose2d's (to float rounding), in either memory layout."""
    torch.manual_seed(0)
    ours = Deconv(32, c_out)
    stock = torch.nn.ConvTranspose2d(32, c_out, 4, 2, 1)
    stock.load_state_dict(ours.state_dict())
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    ours, stock = ours.to(memory_format=fmt), stock.to(memory_format=fmt)
    x = torch.randn(5, 32, 8, 8).contiguous(memory_format=fmt)
    g = torch.randn(5, c_out, 16, 16).contiguous(memory_format=fmt)
    grads = []
    for layer in (ours, stock):
        xi = x.clone().requires_grad_(input_grad)
        y = layer(xi)
        y.backward(g)
        grads.append((y, xi.grad, layer.weight.grad, layer.bias.grad))
    (y, gx, gw, gb), (y0, gx0, gw0, gb0) = grads
    torch.testing.assert_close(y, y0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gw, gw0, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gb, gb0, rtol=1e-5, atol=1e-4)
    if input_grad:
        torch.testing.assert_close(gx, gx0, rtol=1e-5, atol=1e-5)
    else:
        assert gx is None


def test_a_model_with_stock_layers_computes_the_same():
    torch.manual_seed(0)
    model = VAE(TrialConfig(latent_dim=4, channels=8, hidden=16))
    stock = stock_layers(copy.deepcopy(model))
    assert not any(isinstance(m, Deconv) for m in stock.modules())
    assert model.state_dict().keys() == stock.state_dict().keys()
    x, noise = torch.rand(3, 1, 64, 64), torch.randn(3, 4)
    for m in (model, stock):
        logits, mu, logvar = m(x, noise)
        logits.square().mean().backward()
    for (name, p), q in zip(model.named_parameters(), stock.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_deconv_under_bf16_autocast_matches_the_stock_layer():
    torch.manual_seed(0)
    for c_out in (32, 1):
        ours = Deconv(32, c_out)
        stock = torch.nn.ConvTranspose2d(32, c_out, 4, 2, 1)
        stock.load_state_dict(ours.state_dict())
        x = torch.randn(4, 32, 8, 8)
        outs = []
        for layer in (ours, stock):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                y = layer(x.clone().requires_grad_(True))
            y.float().square().sum().backward()
            outs.append((y.float(), layer.weight.grad))
        assert outs[0][0].dtype == torch.float32 and y.dtype == torch.bfloat16
        torch.testing.assert_close(outs[0][0], outs[1][0], rtol=2e-2, atol=2e-2)
        torch.testing.assert_close(outs[0][1], outs[1][1], rtol=5e-2, atol=5e-1)


def test_deconv_in_evaluation_equals_the_stock_layer():
    torch.manual_seed(0)
    ours = Deconv(32, 1)
    stock = torch.nn.ConvTranspose2d(32, 1, 4, 2, 1)
    stock.load_state_dict(ours.state_dict())
    x = torch.randn(3, 32, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), stock(x), rtol=1e-5, atol=1e-5)
