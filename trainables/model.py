"""The Burgess et al. 2018 model: conv encoder q(z|x), factor encoder q(z|f), conv decoder.

Encoder: four 4x4 stride-2 convolutions (32 channels), FC 256, FC 256, then the mean and
log-variance of the latents. Decoder: the mirror image, ending in Bernoulli logits.

Initialisation (``init_weights``): He-normal weights (He et al. 2015) for every layer
followed by a ReLU, Glorot-normal for the three linear outputs (the mean/log-variance
heads and the logits layer), zero biases. PyTorch's default (Kaiming-uniform with
a = sqrt(5), i.e. weights of variance 1/(3 fan_in), and uniform biases) shrinks the
signal by about a third in variance at every layer: through the image encoder's seven
layers the posterior means barely depend on the image at step 0 (Var_x E[z|x] about
1e-7), the decoder learns the mean image before the encoder tells it anything, and a
plain VAE at lr 5e-4 or a capacity VAE at gamma 1000 stays there (recon 564-570 nats,
KL 0.04 or KL = C from constant offsets; three quarters of the encoder's hidden units
dead by step 3,000). With He-normal weights the same runs start encoding within the
first thousand steps.

The ReLUs work in place (the layer before each needs its input, not its output, for its
gradients), as in the reference implementations, and the decoder's transposed
convolutions take their gradients through convolution kernels on a CPU (``Deconv``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainables.config import TrialConfig
from trainables.data import FACTOR_FEATURES


def fp32_head(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Run ``layers``, the last one (the mean/log-variance head) in fp32 even under
    autocast: the capacity objective multiplies the KL's rounding error by gamma."""
    *body, head = layers
    for layer in body:
        x = layer(x)
    with torch.autocast(x.device.type, enabled=False):
        return head(x.float())


class _TransposedConv(torch.autograd.Function):
    """``conv_transpose2d(x, w, b, stride 2, padding 1)`` whose backward runs on ordinary
    convolution kernels (and whose forward to one channel is ``_to_one_channel``).

    A transposed convolution is the adjoint of the convolution with the same weight, so
    the gradient for its input is that convolution of the output gradient, and the
    gradient for its weight is that convolution's weight gradient with the roles of
    input and output swapped. oneDNN's own transposed-convolution backward is about
    twice as slow on a CPU (the decoder's 16x16 -> 32x32 layer: 11 ms against ~6 ms per
    step, batch 64, 2 threads); the values are the same to float rounding."""

    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if w.shape[1] == 1:
            return _to_one_channel(x, w, b)
        return F.conv_transpose2d(x, w, b, stride=2, padding=1)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, w, _ = inputs
        ctx.save_for_backward(x, w)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        x, w = ctx.saved_tensors
        wg = w.to(g.dtype)  # under autocast the forward ran in g's dtype (bf16)
        gx = None
        if ctx.needs_input_grad[0]:
            gx = F.conv2d(g, wg, None, stride=2, padding=1).to(x.dtype)
        # the convolution g -> x with weight w; its weight gradient, x as the output gradient
        gw = torch.ops.aten.convolution_backward(
            x.to(g.dtype), g, wg, None, (2, 2), (1, 1), (1, 1), False, (0, 0), 1,
            (False, True, False),
        )[1]  # fmt: skip
        return gx, gw.to(w.dtype), g.sum((0, 2, 3), dtype=w.dtype)


# ConvTranspose2d(kernel 4, stride 2, padding 1): output row 2m + a sums input rows m + di
# through kernel rows ky, for (di, ky) in TAPS[a]; the same for columns.
TAPS = (((0, 1), (-1, 3)), ((0, 2), (1, 0)))


def _to_one_channel(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The transposed convolution to one channel (the logits layer) as one matrix
    product and 16 shifted adds. oneDNN runs this layer far below its arithmetic rate
    (a single output channel); this way its forward takes 1.7 ms against 5.4 ms (batch
    64, 32 -> 1 channels, 32x32 -> 64x64, 2 threads)."""
    n, c, h, wd = x.shape
    xs = x.permute(0, 2, 3, 1).reshape(n, h * wd, c)  # a view when x is channels_last
    taps = torch.matmul(w.reshape(c, 16).t(), xs.transpose(1, 2)).view(n, 16, h, wd)
    bias = b.float()  # the taps are summed in fp32 (under autocast, they are bf16)
    phases = taps.new_empty(n, 2, 2, h, wd, dtype=torch.float32)  # pixel (2m + a, 2k + e)
    for a in range(2):
        for e in range(2):
            out = phases[:, a, e]
            for di, ky in TAPS[a]:
                for dj, kx in TAPS[e]:
                    src = taps[:, ky * 4 + kx]
                    if di == 0 and dj == 0:  # every phase has this tap: it starts the sum
                        torch.add(src, bias, out=out)
                        continue
                    r0, r1, c0, c1 = max(0, -di), h - max(0, di), max(0, -dj), wd - max(0, dj)
                    out[:, r0:r1, c0:c1].add_(src[:, r0 + di : r1 + di, c0 + dj : c1 + dj])
    return phases.permute(0, 3, 1, 4, 2).reshape(n, 1, 2 * h, 2 * wd).to(taps.dtype)


class Deconv(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)``, faster on a CPU (``_TransposedConv``:
    its backward, and the forward to one channel) in training and evaluation alike;
    elsewhere, under torch.compile and under torch.func transforms (a population's
    vmap), exactly the parent module."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(c_in, c_out, 4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.device.type == "cpu"
            and not torch.compiler.is_compiling()  # inductor picks its own kernels
            and not torch._C._functorch.is_functorch_wrapped_tensor(x)
        ):
            return _TransposedConv.apply(x, self.weight, self.bias)
        return super().forward(x)


class ImageEncoder(nn.Module):
    """q(z|x): (B, 1, 64, 64) -> mean, log-variance, each (B, d)."""

    def __init__(self, latent_dim: int, channels: int = 32, hidden: int = 256) -> None:
        super().__init__()
        c = channels
        self.conv = nn.Sequential(
            nn.Conv2d(1, c, 4, 2, 1), nn.ReLU(inplace=True),  # 32x32
            nn.Conv2d(c, c, 4, 2, 1), nn.ReLU(inplace=True),  # 16x16
            nn.Conv2d(c, c, 4, 2, 1), nn.ReLU(inplace=True),  # 8x8
            nn.Conv2d(c, c, 4, 2, 1), nn.ReLU(inplace=True),  # 4x4
        )  # fmt: skip
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c * 4 * 4, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, 2 * latent_dim),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = fp32_head(self.fc, self.conv(x)).chunk(2, dim=-1)
        return mu, logvar


class FactorEncoder(nn.Module):
    """q(z|f): (B, 8) factor features (data.factor_features) -> mean, log-variance."""

    def __init__(self, latent_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(FACTOR_FEATURES, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, 2 * latent_dim),
        )  # fmt: skip

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = fp32_head(self.net, f).chunk(2, dim=-1)
        return mu, logvar


class Decoder(nn.Module):
    """p(x|z): (B, d) -> (B, 1, 64, 64) Bernoulli logits."""

    def __init__(self, latent_dim: int, channels: int = 32, hidden: int = 256) -> None:
        super().__init__()
        c = channels
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, c * 4 * 4), nn.ReLU(inplace=True),
            nn.Unflatten(1, (c, 4, 4)),
        )  # fmt: skip
        self.deconv = nn.Sequential(
            Deconv(c, c), nn.ReLU(inplace=True),  # 8x8
            Deconv(c, c), nn.ReLU(inplace=True),  # 16x16
            Deconv(c, c), nn.ReLU(inplace=True),  # 32x32
            Deconv(c, 1),  # 64x64 logits
        )  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.fc(z))


def init_weights(model: nn.Module) -> None:
    """He-normal for layers a ReLU follows, Glorot-normal for the linear outputs, zero
    biases (see the module docstring for why). Every weight layer sits in an
    ``nn.Sequential``; what follows it there says which. A transposed convolution's
    fan-in is what one output pixel sums, in_channels x (kernel / stride)^2, not
    PyTorch's reading of its weight shape (out_channels x kernel^2)."""
    for seq in (m for m in model.modules() if isinstance(m, nn.Sequential)):
        kids = list(seq)
        for i, layer in enumerate(kids):
            if not isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                continue
            w = layer.weight
            if isinstance(layer, nn.ConvTranspose2d):
                taps = (layer.kernel_size[0] // layer.stride[0]) ** 2
                fan_in, fan_out = w.shape[0] * taps, w.shape[1] * taps
            else:
                fan_in, fan_out = w[0].numel(), w.shape[0] * w[0, 0].numel()
            relu = i + 1 < len(kids) and isinstance(kids[i + 1], nn.ReLU)
            std = (2.0 / fan_in) ** 0.5 if relu else (2.0 / (fan_in + fan_out)) ** 0.5
            with torch.no_grad():
                w.normal_(0.0, std)
                layer.bias.zero_()


class VAE(nn.Module):
    """An encoder (image or factors) and the shared decoder, initialised by ``init_weights``."""

    def __init__(self, cfg: TrialConfig) -> None:
        super().__init__()
        d = cfg.latent_dim
        if cfg.encoder == "image":
            self.encoder: nn.Module = ImageEncoder(d, cfg.channels, cfg.hidden)
        else:
            self.encoder = FactorEncoder(d, cfg.hidden)
        self.decoder = Decoder(d, cfg.channels, cfg.hidden)
        init_weights(self)

    def forward(
        self, inputs: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """inputs (images or factor features), noise (B, d) ~ N(0, I) -> logits, mu, logvar."""
        mu, logvar = self.encoder(inputs)
        z = mu + noise * torch.exp(0.5 * logvar)  # reparameterisation
        return self.decoder(z), mu, logvar
