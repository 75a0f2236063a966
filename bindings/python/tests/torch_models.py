"""Torch-only models shaped like the ones users offload, shared by the
simulator tests (test_torch_apps.py) and the GPU tests (test_torch_gpu.py).

- Decoder: a causal LM with a KV cache (embedding, attention blocks with their
  own q/k/v/o projections, MLP, RMS-style norm, LM head) and `generate()`
  (greedy or sampling, cache on or off) that builds its tensors on
  ``model.device`` the way transformers' generate() does.
- A diffusers-shaped pipeline: a text encoder (nn.TransformerEncoder, so
  nn.MultiheadAttention and its fast path), a small UNet (conv, GroupNorm,
  time embedding, down/up blocks with skips, cross-attention through
  nn.MultiheadAttention) and a VAE-style decoder, run by a few Euler steps.
"""

import torch
import torch.nn.functional as F
from torch import nn


class DeviceMixin:
    """What transformers' ModuleUtilsMixin offers: ``device``/``dtype`` from the parameters."""

    @property
    def device(self):
        return next(self.parameters()).device

    @property
    def dtype(self):
        return next(self.parameters()).dtype


class Norm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.norm1 = Norm(dim)
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.o = nn.Linear(dim, dim, bias=False)
        self.norm2 = Norm(dim)
        self.up = nn.Linear(dim, 2 * dim, bias=False)
        self.down = nn.Linear(2 * dim, dim, bias=False)

    def forward(self, x, cache, pos):
        b, t, d = x.shape
        h = self.norm1(x)
        split = lambda y: y.view(b, t, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        if cache is not None:
            if cache[0] is not None:
                k = torch.cat([cache[0], k], dim=2)
                v = torch.cat([cache[1], v], dim=2)
            cache[0], cache[1] = k, v
        s = k.shape[2]
        att = q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5
        # causal: query i (absolute position pos + i) sees keys 0..pos + i
        qi = torch.arange(t, device=x.device).view(t, 1) + pos
        kj = torch.arange(s, device=x.device).view(1, s)
        att = att.masked_fill(kj > qi, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.o(y)
        return x + self.down(F.gelu(self.up(self.norm2(x))))


class Decoder(DeviceMixin, nn.Module):
    def __init__(self, vocab=256, dim=64, layers=4, heads=4, max_len=128):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(max_len, dim)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.norm = Norm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)

    def forward(self, ids, cache=None, pos=0):
        t = ids.shape[1]
        x = self.embed(ids) + self.pos(torch.arange(pos, pos + t, device=ids.device))
        for i, blk in enumerate(self.blocks):
            x = blk(x, cache[i] if cache is not None else None, pos)
        return self.head(self.norm(x))


@torch.no_grad()
def generate(model, ids, new_tokens, use_cache=True, sample=False, seed=0):
    """Tokens after `ids`, and the logits of every step. Tensors are built on
    ``model.device`` (as transformers' generate() does), so a model that says
    the wrong device fails here."""
    dev = model.device
    ids = ids.to(dev)
    gen = torch.Generator(device=dev).manual_seed(seed) if sample else None
    cache = [[None, None] for _ in model.blocks] if use_cache else None
    out = ids
    pos, step_in = 0, ids
    logits_all = []
    done = torch.zeros(ids.shape[0], dtype=torch.bool, device=dev)
    for _ in range(new_tokens):
        logits = model(step_in, cache, pos) if use_cache else model(out)
        last = logits[:, -1, :].float()
        logits_all.append(last)
        if sample:
            nxt = torch.multinomial(torch.softmax(last / 0.8, -1), 1, generator=gen)
        else:
            nxt = last.argmax(-1, keepdim=True)
        nxt = torch.where(done.view(-1, 1), torch.zeros_like(nxt), nxt)
        if use_cache:
            pos += step_in.shape[1]
            step_in = nxt
        out = torch.cat([out, nxt], dim=1)
    return out, torch.stack(logits_all, 1)


# ---------------------------------------------------------------------- a diffusers-shaped pipeline

class TextEncoder(DeviceMixin, nn.Module):
    def __init__(self, vocab=128, dim=64, layers=2, heads=4):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.final = nn.LayerNorm(dim)

    def forward(self, ids):
        return self.final(self.encoder(self.embed(ids)))


class ResBlock(nn.Module):
    def __init__(self, cin, cout, temb):
        super().__init__()
        self.norm1 = nn.GroupNorm(8, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(8, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, t):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(F.silu(t))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class CrossAttention(nn.Module):
    """GroupNorm, self-attention over pixels, cross-attention to the text."""

    def __init__(self, ch, ctx, heads=4):
        super().__init__()
        self.norm = nn.GroupNorm(8, ch)
        self.self_attn = nn.MultiheadAttention(ch, heads, batch_first=True)
        self.cross = nn.MultiheadAttention(ch, heads, kdim=ctx, vdim=ctx, batch_first=True)
        self.proj = nn.Linear(ch, ch)

    def forward(self, x, ctx):
        b, c, hh, ww = x.shape
        h = self.norm(x).flatten(2).transpose(1, 2)
        h = h + self.self_attn(h, h, h, need_weights=False)[0]
        h = h + self.cross(h, ctx, ctx, need_weights=False)[0]
        return x + self.proj(h).transpose(1, 2).reshape(b, c, hh, ww)


class UNet(DeviceMixin, nn.Module):
    def __init__(self, ch=32, ctx=64, temb=64):
        super().__init__()
        self.temb = temb
        self.time_mlp = nn.Sequential(nn.Linear(temb, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.conv_in = nn.Conv2d(4, ch, 3, padding=1)
        self.down1 = ResBlock(ch, ch, temb)
        self.attn1 = CrossAttention(ch, ctx)
        self.downsample = nn.Conv2d(ch, ch, 3, stride=2, padding=1)
        self.down2 = ResBlock(ch, 2 * ch, temb)
        self.mid = ResBlock(2 * ch, 2 * ch, temb)
        self.mid_attn = CrossAttention(2 * ch, ctx)
        self.up2 = ResBlock(4 * ch, ch, temb)
        self.upconv = nn.Conv2d(ch, ch, 3, padding=1)
        self.up1 = ResBlock(2 * ch, ch, temb)
        self.attn_up = CrossAttention(ch, ctx)
        self.norm_out = nn.GroupNorm(8, ch)
        self.conv_out = nn.Conv2d(ch, 4, 3, padding=1)

    def forward(self, x, t, ctx):
        half = self.temb // 2
        freqs = torch.exp(-torch.arange(half, device=x.device, dtype=torch.float32) * (9.21 / half))
        ang = t.float().view(-1, 1) * freqs.view(1, -1)
        temb = self.time_mlp(torch.cat([ang.sin(), ang.cos()], -1).to(x.dtype))
        h1 = self.attn1(self.down1(self.conv_in(x), temb), ctx)
        h2 = self.down2(self.downsample(h1), temb)
        m = self.mid_attn(self.mid(h2, temb), ctx)
        u = self.up2(torch.cat([m, h2], 1), temb)
        u = self.upconv(F.interpolate(u, scale_factor=2.0, mode="nearest"))
        u = self.attn_up(self.up1(torch.cat([u, h1], 1), temb), ctx)
        return self.conv_out(F.silu(self.norm_out(u)))


class VAEDecoder(DeviceMixin, nn.Module):
    def __init__(self, ch=32):
        super().__init__()
        self.conv_in = nn.Conv2d(4, ch, 3, padding=1)
        self.block = ResBlockNoTime(ch)
        self.up = nn.Conv2d(ch, ch, 3, padding=1)
        self.norm = nn.GroupNorm(8, ch)
        self.conv_out = nn.Conv2d(ch, 3, 3, padding=1)

    def forward(self, z):
        h = self.block(self.conv_in(z))
        h = self.up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm(h)))


class ResBlockNoTime(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.norm = nn.GroupNorm(8, ch)
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return x + self.conv(F.silu(self.norm(x)))


class Pipeline:
    """A DiffusionPipeline-shaped object: components, ``device``, ``__call__``."""

    def __init__(self, text_encoder, unet, vae):
        self.text_encoder = text_encoder
        self.unet = unet
        self.vae = vae

    @property
    def components(self):
        return {"text_encoder": self.text_encoder, "unet": self.unet, "vae": self.vae}

    @property
    def device(self):
        return self.unet.device

    @torch.no_grad()
    def __call__(self, prompt_ids, steps=3, size=16, seed=0):
        dev = self.device
        ctx = self.text_encoder(prompt_ids.to(dev))
        g = torch.Generator(device="cpu").manual_seed(seed)
        x = torch.randn(prompt_ids.shape[0], 4, size, size, generator=g).to(dev, self.unet.dtype)
        for i in range(steps):
            t = torch.full((prompt_ids.shape[0],), 1000 - i * (1000 // steps), device=dev)
            x = x - self.unet(x, t, ctx.to(self.unet.dtype)) * (1.0 / steps)
        return self.vae(x)


def make_pipeline(seed=0, dim=64, ch=32, dtype=torch.float32):
    torch.manual_seed(seed)
    te = TextEncoder(dim=dim).eval()
    unet = UNet(ch=ch, ctx=dim).eval()
    vae = VAEDecoder(ch=ch).eval()
    return Pipeline(te.to(dtype), unet.to(dtype), vae.to(dtype))


def make_decoder(seed=0, **kw):
    torch.manual_seed(seed)
    return Decoder(**kw).eval()
