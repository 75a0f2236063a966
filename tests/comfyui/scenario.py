#!/usr/bin/env python3
"""A ComfyUI-shaped workload driven through the comfy_aimdo API.

Torch only, random weights, no network. It calls `comfy_aimdo` the way
ComfyUI does (the ComfyUI file and function are named beside each step; the
calls were read from ComfyUI's sources, none of its code is used), so it runs
unchanged on vramswap's drop-in (bindings/comfy_aimdo) and on the original
comfy-aimdo:

  three models -- a text encoder (linear layers), a diffusion model (conv,
  group norm, cross-attention, linear) and a VAE decoder (conv, group norm,
  upsampling) -- each in its own ModelVBAR on one device whose budget holds
  about one and a half diffusion models;
  1 prompt run: encode -> N steps -> VAE decode
  2 a run at a larger resolution, with an exception raised between a fault
    and its unpin in its first step (the run is then repeated and completes)
  3 a LoRA applied to some diffusion weights, the run again (patched weights
    recopied, the others not), the same LoRA applied a second time (no-op), the
    run again; the LoRA removed, the run again (pristine weights)
  4 a second diffusion model loaded and run, then the first one again
  5 a new prompt: the text encoder's resident weights are not recopied
Every output is compared bit for bit with the same computation on plain
resident weights (`reference`).

  python3 tests/comfyui/scenario.py [--device cpu|cuda] [--size sim|gpu]
                                    [--implementation NAME] [--out FILE.json]

--device cpu needs vramswap's comfy_aimdo: main() sizes the simulator (256
MiB of headroom plus 1.5 diffusion models) and uses the "sim" backend, or
--implementation rocm/xpu/cuda with a driver emulator loaded (whose device
memory is host memory, so CPU tensors work; see
bindings/comfy_aimdo/tests/test_emulators.py). --device cuda works with
either comfy_aimdo (tests/comfyui/compare_gpu.py runs both). Results
(per-step times, totals, peak memory, OOMs, copy counts, checks) are printed
and written as JSON. Exit status 0 when every check passed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import traceback

# ComfyUI main.py: comfy_aimdo.control is imported (and init() called) before torch.
import comfy_aimdo.control as aimdo_control

MiB = 1 << 20

# Model shapes. "sim": a few MiB per model for the simulator in CI; "gpu": about
# 0.8 GiB encoder, 1.2 GiB per diffusion model, a VAE with large activations.
SIZES = {
    "sim": dict(enc_dim=256, enc_layers=3, ctx_dim=128, tokens=16, ch=96, blocks=4,
                vae_ch=64, latent=(8, 12), steps=3, dtype="float32"),
    "gpu": dict(enc_dim=4096, enc_layers=3, ctx_dim=1024, tokens=77, ch=1536, blocks=6,
                vae_ch=256, latent=(64, 96), steps=4, dtype="float32"),
}


class InjectedError(RuntimeError):
    """Raised on purpose between a fault and its unpin (stage 2)."""


# --------------------------------------------------------------------------- ops
# comfy/ops.py: disable_weight_init.{Linear,Conv2d,GroupNorm}.forward_comfy_cast_weights
# -> cast_bias_weight -> cast_bias_weight_with_vbar, then uncast_bias_weight.

class Run:
    """Process-wide state of the workload (ComfyUI keeps it in comfy.model_management)."""

    def __init__(self, torch, device, aimdo):
        self.torch = torch
        self.device = device
        self.aimdo = aimdo            # (model_vbar, torch) modules, or None = reference
        self.copies = {}              # module name -> weight copies host -> device
        self.copied_bytes = 0
        self.streamed = 0             # casts through a temporary buffer (fault -> None)
        self.fail_in = None           # module name whose next cast raises after its fault
        self.sync = (torch.cuda.synchronize if device.type == "cuda" else (lambda: None))


RUN = None


class CastMixin:
    """Weights live in a pinned host tensor (`_pin`: weight bytes then bias
    bytes); with dynamic VRAM the module has `_v` = vbar.alloc(...)."""

    def _cast(self):
        torch, run = RUN.torch, RUN
        lora = getattr(self, "weight_lowvram_function", None)
        if not hasattr(self, "_v"):          # reference: plain resident weights
            w = self._ref_w if lora is None else lora(self._ref_w.clone())
            return w, self._ref_b, None
        mv, at = run.aimdo
        # comfy/ops.py cast_bias_weight_with_vbar: fault, compare signatures.
        signature = mv.vbar_fault(self._v)
        resident = mv.vbar_signature_compare(signature, self._v_signature)
        if signature is not None and resident:
            w, b = self._v_weight, self._v_bias
        else:
            if signature is not None:
                dest = at.aimdo_to_tensor(self._v, run.device)
            else:                             # not resident: a temporary cast buffer
                dest = torch.empty((self._nbytes,), dtype=torch.uint8, device=run.device)
                run.streamed += 1
            dest[:self._nbytes].copy_(self._pin, non_blocking=True)
            run.copies[self._name] = run.copies.get(self._name, 0) + 1
            run.copied_bytes += self._nbytes
            w, b = self._views(dest)
            # comfy/ops.py post_cast: a LoRA (lowvram function) applied to the fresh
            # copy, written back into the VBAR (update_weight) so resident reuse
            # sees the patched weight.
            if lora is not None:
                w.copy_(lora(w.clone()))
            if signature is not None:
                self._v_weight, self._v_bias = w, b
            self._v_signature = signature
        if run.fail_in == self._name:
            run.fail_in = None
            raise InjectedError("injected failure in %s between fault and unpin" % self._name)
        return w, b, signature

    def _uncast(self, signature):
        # comfy/ops.py uncast_bias_weight: vbar_unpin(s._v) after the op.
        if hasattr(self, "_v") and signature is not None:
            RUN.aimdo[0].vbar_unpin(self._v)

    def _views(self, dest):
        torch = RUN.torch
        w = dest[:self._wbytes].view(self.weight.dtype).view(self.weight.shape)
        b = None
        if self.bias is not None:
            b = dest[self._wbytes:self._nbytes].view(self.bias.dtype).view(self.bias.shape)
        return w, b


def _ops(torch):
    nn, F = torch.nn, torch.nn.functional

    class Linear(nn.Linear, CastMixin):
        def forward(self, x):
            w, b, sig = self._cast()
            y = F.linear(x, w, b)
            self._uncast(sig)
            return y

    class Conv2d(nn.Conv2d, CastMixin):
        def forward(self, x):
            w, b, sig = self._cast()
            y = F.conv2d(x, w, b, self.stride, self.padding)
            self._uncast(sig)
            return y

    class GroupNorm(nn.GroupNorm, CastMixin):
        def forward(self, x):
            w, b, sig = self._cast()
            y = F.group_norm(x, self.num_groups, w, b, self.eps)
            self._uncast(sig)
            return y

    return Linear, Conv2d, GroupNorm


# --------------------------------------------------------------------------- models

def build_models(torch, cfg):
    nn, F = torch.nn, torch.nn.functional
    Linear, Conv2d, GroupNorm = _ops(torch)
    meta = dict(device="meta")

    class TextEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            d = cfg["enc_dim"]
            self.fc1 = nn.ModuleList(Linear(d, 2 * d, **meta) for _ in range(cfg["enc_layers"]))
            self.fc2 = nn.ModuleList(Linear(2 * d, d, **meta) for _ in range(cfg["enc_layers"]))
            self.proj = Linear(d, cfg["ctx_dim"], **meta)

        def forward(self, x):
            for a, b in zip(self.fc1, self.fc2):
                x = x + b(F.gelu(a(x)))
            return self.proj(x)

    class Block(nn.Module):
        def __init__(self, ch):
            super().__init__()
            self.gn1 = GroupNorm(32, ch, **meta)
            self.conv1 = Conv2d(ch, ch, 3, padding=1, **meta)
            self.temb = Linear(ch, ch, **meta)
            self.gn2 = GroupNorm(32, ch, **meta)
            self.conv2 = Conv2d(ch, ch, 3, padding=1, **meta)
            self.q = Linear(ch, ch, bias=False, **meta)
            self.k = Linear(cfg["ctx_dim"], ch, bias=False, **meta)
            self.v = Linear(cfg["ctx_dim"], ch, bias=False, **meta)
            self.o = Linear(ch, ch, **meta)

        def forward(self, h, t, ctx):
            r = h
            h = self.conv1(F.silu(self.gn1(h))) + self.temb(t)[:, :, None, None]
            h = r + self.conv2(F.silu(self.gn2(h)))
            n, c, hh, ww = h.shape
            seq = h.flatten(2).transpose(1, 2)                     # n, hw, c
            q, k, v = self.q(seq), self.k(ctx), self.v(ctx)
            a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(c), dim=-1) @ v
            return h + self.o(a).transpose(1, 2).reshape(n, c, hh, ww)

    class Diffusion(nn.Module):
        def __init__(self):
            super().__init__()
            ch = cfg["ch"]
            self.conv_in = Conv2d(4, ch, 3, padding=1, **meta)
            self.time = Linear(ch, ch, **meta)
            self.blocks = nn.ModuleList(Block(ch) for _ in range(cfg["blocks"]))
            self.gn_out = GroupNorm(32, ch, **meta)
            self.conv_out = Conv2d(ch, 4, 3, padding=1, **meta)

        def forward(self, x, t, ctx):
            ch = cfg["ch"]
            freqs = torch.exp(-math.log(1e4) * torch.arange(ch // 2, device=x.device) / (ch // 2))
            temb = torch.cat([torch.sin(t * freqs), torch.cos(t * freqs)])[None].to(x.dtype)
            temb = F.silu(self.time(temb))
            h = self.conv_in(x)
            for blk in self.blocks:
                h = blk(h, temb, ctx)
            return self.conv_out(F.silu(self.gn_out(h)))

    class VAEDecoder(nn.Module):
        def __init__(self):
            super().__init__()
            ch = cfg["vae_ch"]
            self.conv_in = Conv2d(4, ch, 3, padding=1, **meta)
            self.gn = nn.ModuleList(GroupNorm(32, ch, **meta) for _ in range(4))
            self.conv = nn.ModuleList(Conv2d(ch, ch, 3, padding=1, **meta) for _ in range(4))
            self.conv_out = Conv2d(ch, 3, 3, padding=1, **meta)

        def forward(self, z):
            h = self.conv_in(z)
            for i, (g, c) in enumerate(zip(self.gn, self.conv)):
                h = h + c(F.silu(g(h)))
                if i % 2 == 1:
                    h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            return self.conv_out(h)

    return TextEncoder, Diffusion, VAEDecoder


def model_sizes(size):
    """Bytes of weights of each model of a SIZES entry (no memory allocated)."""
    import torch
    TextEncoder, Diffusion, VAEDecoder = build_models(torch, SIZES[size])
    return dict(encoder=model_size(TextEncoder()), diffusion=model_size(Diffusion()),
                vae=model_size(VAEDecoder()))


def weight_modules(model):
    """Modules with their own weights, in load order (most important first)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, CastMixin)]


def _param_bytes(m):
    wb = m.weight.numel() * m.weight.element_size()
    bb = 0 if m.bias is None else m.bias.numel() * m.bias.element_size()
    return wb, wb + bb


def model_size(model):
    return sum(_param_bytes(m)[1] for _, m in weight_modules(model))


# --------------------------------------------------------------------------- loading

class LoadedModel:
    """A model whose weights are in pinned host memory (ComfyUI: a ModelPatcher
    with its pins, comfy/pinned_memory.py), optionally in a ModelVBAR."""

    def __init__(self, name, model, seed, run, hostbuf_mod, file_path=None):
        torch = run.torch
        self.name, self.model, self.vbar = name, model, None
        self.applied = set()          # LoRA ids applied (model_patcher.py: patches_uuid)
        size = model_size(model)
        # comfy/model_patcher.py ModelPatcherDynamic: a HostBuffer per model for
        # the pins, grown module by module (pinned_memory.py pin_memory:
        # offset = hostbuf.size; hostbuf.extend(size); hostbuf_to_tensor(...)).
        self.hostbuf = hostbuf_mod.HostBuffer(0, max_grow_size=size + 4096)
        gen_dev = run.device
        gen = torch.Generator(device=gen_dev)
        fh = open(file_path, "rb") if file_path else None
        file_off = 0
        for i, (n, m) in enumerate(weight_modules(model)):
            wb, nb = _param_bytes(m)
            m._name = "%s.%s" % (name, n)
            m._wbytes, m._nbytes = wb, nb
            offset = self.hostbuf.size
            self.hostbuf.extend(nb)
            if fh is not None:
                # comfy/memory_management.py: weights read from the checkpoint
                # straight into the pinned buffer (HostBuffer.read_file_slice).
                self.hostbuf.read_file_slice(fh, file_off, nb, offset=offset)
                file_off += nb
            m._pin = run.aimdo_torch.hostbuf_to_tensor(self.hostbuf)[offset:offset + nb]
            if fh is None:
                gen.manual_seed(seed * 1000 + i)
                fan_in = m.weight[0].numel() if m.weight.dim() > 1 else 1
                w = torch.randn(m.weight.shape, generator=gen, device=gen_dev) / math.sqrt(fan_in)
                if isinstance(m, torch.nn.GroupNorm):
                    w = 1.0 + 0.1 * w
                m._pin[:wb].view(torch.float32).copy_(w.flatten().cpu())
                if m.bias is not None:
                    b = 0.01 * torch.randn(m.bias.shape, generator=gen, device=gen_dev)
                    m._pin[wb:nb].view(torch.float32).copy_(b.cpu())
            m._ref_w = m._ref_b = None
        if fh is not None:
            fh.close()
        self.size = size

    def make_reference(self, run):
        """Plain resident copies of every weight (the reference run)."""
        for _, m in weight_modules(self.model):
            dest = m._pin.to(run.device, copy=True)
            m._ref_w, m._ref_b = m._views(dest)

    def drop_reference(self):
        for _, m in weight_modules(self.model):
            m._ref_w = m._ref_b = None

    def load_dynamic(self, run, index):
        # comfy/model_patcher.py ModelPatcherDynamic._vbar_get:
        # ModelVBAR(self.model_size() * 10, self.load_device.index); then every
        # weight-bearing module gets m._v = vbar.alloc(size) in load order.
        mv = run.aimdo[0]
        self.vbar = mv.ModelVBAR(self.size * 10, index)
        for _, m in weight_modules(self.model):
            m._v = self.vbar.alloc(m._nbytes)
            m._v_signature = None
            m._v_weight = m._v_bias = None

    def prioritize(self):
        # comfy/model_patcher.py ModelPatcherDynamic.load: the model being
        # loaded for a sampler/encoder/decoder node is made most important.
        if self.vbar is not None:
            self.vbar.prioritize()

    def unload(self):
        # comfy/model_patcher.py detach/partially_unload: the VBAR is dropped
        # (its __del__ unpins and frees).
        for _, m in weight_modules(self.model):
            for a in ("_v", "_v_signature", "_v_weight", "_v_bias"):
                if hasattr(m, a):
                    delattr(m, a)
        self.vbar = None


class Lora:
    """A LoRA: per patched module a low-rank delta (comfy/lora.py + the
    patcher's weight_lowvram_function)."""

    def __init__(self, torch, device, model, every, seed, rank=4):
        self.id = "lora-%d" % seed
        self.deltas = {}
        gen = torch.Generator(device=device)
        gen.manual_seed(seed)
        mods = [(n, m) for n, m in weight_modules(model) if isinstance(m, torch.nn.Linear)]
        for n, m in mods[::every]:
            out_f, in_f = m.weight.shape
            a = torch.randn((out_f, rank), generator=gen, device=device) * 0.01
            b = torch.randn((rank, in_f), generator=gen, device=device) * 0.01
            self.deltas[m._name] = (a @ b)

    def apply(self, loaded):
        """model_patcher.py add_patches / patch_weight: a LoRA already applied
        (same id) is not applied again. Patched modules drop their signature so
        the next cast recopies them."""
        if self.id in loaded.applied:
            return False
        for _, m in weight_modules(loaded.model):
            d = self.deltas.get(m._name)
            if d is not None:
                m.weight_lowvram_function = (lambda w, d=d: w + d)
                m._v_signature = None
        loaded.applied.add(self.id)
        return True

    def remove(self, loaded):
        for _, m in weight_modules(loaded.model):
            if m._name in self.deltas:
                m.weight_lowvram_function = None
                m._v_signature = None
        loaded.applied.discard(self.id)


# --------------------------------------------------------------------------- workload

def prompt_input(torch, cfg, seed, device):
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    return torch.randn((1, cfg["tokens"], cfg["enc_dim"]), generator=g).to(device)


def latent_input(torch, cfg, seed, hw, device):
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    return torch.randn((1, 4, hw, hw), generator=g).to(device)


def mem_sample(run, peak):
    torch = run.torch
    if run.device.type == "cuda":
        free, total = torch.cuda.mem_get_info(run.device)
        peak["device_used"] = max(peak.get("device_used", 0), total - free)


def generate(run, models, cfg, prompt_seed, hw, diffusion, record, mv=None, before_steps=None):
    """One prompt: comfy/sd.py CLIP.encode_from_tokens -> comfy/samplers.py
    KSampler steps -> comfy/sd.py VAE.decode. After each node,
    execution.py calls vbars_reset_watermark_limits()."""
    torch = run.torch
    peak = record.setdefault("peak", {})
    times = record.setdefault("step_s", [])

    def node_done():
        if mv is not None:
            mv.vbars_reset_watermark_limits()
        mem_sample(run, peak)

    with torch.no_grad():
        t0 = time.perf_counter()
        enc = models["encoder"]
        enc.prioritize()
        ctx = enc.model(prompt_input(torch, cfg, prompt_seed, run.device))
        run.sync()
        record["encode_s"] = time.perf_counter() - t0
        node_done()
        diffusion.prioritize()
        if before_steps is not None:
            before_steps()
        x = latent_input(torch, cfg, prompt_seed + 1, hw, run.device)
        for i in range(cfg["steps"]):
            ts = time.perf_counter()
            t = torch.tensor(float(cfg["steps"] - i), device=run.device)
            x = x - 0.1 * diffusion.model(x, t, ctx)
            run.sync()
            times.append(time.perf_counter() - ts)
            mem_sample(run, peak)
        node_done()
        ts = time.perf_counter()
        vae = models["vae"]
        vae.prioritize()
        img = vae.model(x)
        run.sync()
        record["decode_s"] = time.perf_counter() - ts
        node_done()
        record["total_s"] = time.perf_counter() - t0
    return img


def _resident_modules(loaded, mv):
    """Names of modules whose whole range is resident now (page flag bit 0)."""
    if loaded.vbar is None:
        return set()
    res = loaded.vbar.get_residency()
    page = _page_size(loaded.vbar)
    out = set()
    for _, m in weight_modules(loaded.model):
        off = m._v[1] - loaded.vbar.base_addr
        first, last = off // page, (off + m._nbytes - 1) // page
        if all(res[p] & 1 for p in range(first, last + 1)):
            out.add(m._name)
    return out


def _page_size(vbar):
    if hasattr(vbar, "page_size"):
        return vbar.page_size()
    return 32 * MiB   # comfy-aimdo's fixed VBAR page


# --------------------------------------------------------------------------- the scenario

def run_scenario(device="cpu", size="sim", budget=None, out=None, implementation=None,
                 log=print):
    """Run the whole scenario; returns the result dict (result["ok"])."""
    global RUN
    cfg = dict(SIZES[size])
    import torch
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", 0)   # torch.cuda.set_device wants an index
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.cuda.set_device(dev)
    torch.set_grad_enabled(False)
    result = dict(implementation=getattr(sys.modules.get("comfy_aimdo"), "IMPLEMENTATION",
                                         "comfy-aimdo"),
                  device=str(dev), size=size, alloc_conf=os.environ.get("PYTORCH_CUDA_ALLOC_CONF", ""),
                  runs=[], checks={}, errors=[], ooms=0)
    checks = result["checks"]
    tmp = tempfile.TemporaryDirectory(prefix="vs-comfy-")

    TextEncoder, Diffusion, VAEDecoder = build_models(torch, cfg)
    modules = dict(encoder=TextEncoder(), diffusion=Diffusion(), diffusion2=Diffusion(), vae=VAEDecoder())
    sizes = {k: model_size(m) for k, m in modules.items()}
    result["model_bytes"] = sizes
    if budget is None:
        budget = int(1.5 * sizes["diffusion"])
    result["weight_budget"] = budget
    log("models (MiB): %s; weight budget %.1f MiB" % (
        {k: round(v / MiB, 1) for k, v in sizes.items()}, budget / MiB))

    # --- comfy_aimdo setup: main.py init(); comfy/model_management.py init_devices
    # with (index, extra_headroom) so that the usable memory is what we want.
    index = dev.index or 0
    ok = aimdo_control.init(**({"implementation": implementation} if implementation else {}))
    checks["init"] = bool(ok)
    result["backend"] = getattr(aimdo_control, "backend", lambda: None)()   # vramswap's only
    if not ok:
        result["errors"].append("comfy_aimdo.control.init() returned False")
        result["ok"] = False
        return result
    import comfy_aimdo.host_buffer as hostbuf_mod
    import comfy_aimdo.model_mmap as mmap_mod
    import comfy_aimdo.model_vbar as mv
    import comfy_aimdo.torch as at
    if dev.type == "cuda":
        free, total = torch.cuda.mem_get_info(dev)
        activations = int(os.environ.get("VS_COMFY_ACT_ROOM", str(3 << 30)))
        used = total - free
        extra = max(0, total - used - budget - activations - (256 * MiB))
    else:
        extra = 0   # the simulator is configured with the budget (see the CI test)
    gen = ((index, extra) for _ in range(1))
    checks["init_devices"] = bool(aimdo_control.init_devices(gen))
    result["extra_headroom"] = extra

    RUN = run = Run(torch, dev, (mv, at))
    run.aimdo_torch = at

    # The VAE's weights come from a checkpoint file (read_file_slice), the rest
    # are generated into their pins.
    vae_file = os.path.join(tmp.name, "vae.bin")
    tmp_vae = LoadedModel("vae_src", VAEDecoder(), 3, run, hostbuf_mod)
    with open(vae_file, "wb") as f:
        for _, m in weight_modules(tmp_vae.model):
            f.write(m._pin.numpy().tobytes())
    tmp_vae.hostbuf = None
    del tmp_vae

    models = {
        "encoder": LoadedModel("encoder", modules["encoder"], 1, run, hostbuf_mod),
        "diffusion": LoadedModel("diffusion", modules["diffusion"], 2, run, hostbuf_mod),
        "diffusion2": LoadedModel("diffusion2", modules["diffusion2"], 4, run, hostbuf_mod),
        "vae": LoadedModel("vae", modules["vae"], 3, run, hostbuf_mod, file_path=vae_file),
    }
    # ModelMMAP (comfy/utils.py load_torch_file with aimdo): the file mapped; its
    # first bytes equal what read_file_slice put in the pin.
    mm = mmap_mod.ModelMMAP(vae_file)
    first = weight_modules(models["vae"].model)[0][1]
    import ctypes
    checks["mmap_matches_file"] = (ctypes.string_at(mm.get(), 64) == first._pin[:64].numpy().tobytes())
    checks["mmap_bounce"] = bool(mm.bounce())

    lora = Lora(torch, dev, models["diffusion"].model, every=3, seed=7)
    hw1, hw2 = cfg["latent"]

    # ---- the reference: the same computations on plain resident weights.
    RUN.aimdo = None
    ref = {}
    try:
        for k in ("encoder", "diffusion", "diffusion2", "vae"):
            models[k].make_reference(run)
        ref["p1"] = generate(run, models, cfg, 11, hw1, models["diffusion"], {}).cpu()
        ref["p1_big"] = generate(run, models, cfg, 11, hw2, models["diffusion"], {}).cpu()
        lora.apply(models["diffusion"])
        ref["lora"] = generate(run, models, cfg, 11, hw1, models["diffusion"], {}).cpu()
        lora.remove(models["diffusion"])
        ref["d2"] = generate(run, models, cfg, 11, hw1, models["diffusion2"], {}).cpu()
        ref["p2"] = generate(run, models, cfg, 23, hw1, models["diffusion"], {}).cpu()
    finally:
        for k in models:
            models[k].drop_reference()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    RUN.aimdo = (mv, at)

    # ---- dynamic VRAM: comfy/model_patcher.py loads each model into a VBAR.
    for k in ("encoder", "diffusion", "vae"):
        models[k].load_dynamic(run, index)

    # comfy/memory_management.py fast-disk path: one VAE weight read from the
    # file straight into its faulted VBAR range (read_file_to_device).
    vae0 = weight_modules(models["vae"].model)[0][1]
    sig = mv.vbar_fault(vae0._v)
    if sig is not None:
        stream = torch.cuda.current_stream(dev).cuda_stream if dev.type == "cuda" else 0
        with open(vae_file, "rb") as f:
            hostbuf_mod.read_file_to_device(f, 0, vae0._nbytes, stream, vae0._v[1], index)
        if dev.type == "cuda":
            run.sync()
        else:   # the simulator copies on its own streams: wait for them
            aimdo_control.get_devctx(index).synchronize()
        dest = at.aimdo_to_tensor(vae0._v, dev)
        checks["read_file_to_device"] = bool(torch.equal(dest[:vae0._nbytes].cpu(), vae0._pin))
        vae0._v_weight, vae0._v_bias = vae0._views(dest)
        vae0._v_signature = sig
        mv.vbar_unpin(vae0._v)
    else:
        checks["read_file_to_device"] = "skipped: not resident"

    def record(name, img, refkey, **extra_fields):
        r = dict(name=name, **extra_fields)
        r.update(RUN_RECORD)
        if img is not None:
            r["equal"] = bool(torch.equal(img.cpu(), ref[refkey]))
            r["max_abs_diff"] = float((img.cpu() - ref[refkey]).abs().max())
            checks["equal_" + name] = r["equal"]
        r["copies"] = sum(run.copies.values())
        r["copied_MiB"] = round(run.copied_bytes / MiB, 2)
        # How much of the text encoder had to be copied again for this prompt
        # (users report encoders reloaded on every prompt).
        enc_mods = {m._name: m._nbytes for _, m in weight_modules(models["encoder"].model)}
        r["encoder_copied_MiB"] = round(sum(enc_mods[n] * c for n, c in run.copies.items()
                                            if n in enc_mods) / MiB, 2)
        r["streamed"] = run.streamed
        r["vbars_analyze_MiB"] = round(mv.vbars_analyze() / MiB, 2)
        result["runs"].append(r)
        log("%-14s total %.3fs steps %s equal=%s copies=%d streamed=%d resident=%.1fMiB" % (
            name, r.get("total_s", 0), ["%.3f" % s for s in r.get("step_s", [])],
            r.get("equal"), r["copies"], r["streamed"], r["vbars_analyze_MiB"]))

    def do(name, refkey, seed, hw, diff, before_steps=None, **fields):
        """One generation, with its counters reset; OOMs counted, not fatal."""
        global RUN_RECORD
        RUN_RECORD = {}
        run.copies, run.copied_bytes, run.streamed = {}, 0, 0
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        try:
            img = generate(run, models, cfg, seed, hw, diff, RUN_RECORD, mv, before_steps)
        except Exception as e:
            oom = "out of memory" in str(e).lower() or isinstance(e, MemoryError)
            result["ooms"] += int(oom)
            RUN_RECORD["error"] = "%s: %s" % (type(e).__name__, e)
            if not isinstance(e, InjectedError):
                result["errors"].append("%s: %s" % (name, RUN_RECORD["error"]))
            img = None
        if dev.type == "cuda":
            RUN_RECORD.setdefault("peak", {})["torch_allocated"] = torch.cuda.max_memory_allocated(dev)
        record(name, img, refkey, **fields)
        return img

    try:
        # 1. a prompt (encoder -> steps -> VAE decode), twice: the second one
        #    shows the steady state.
        do("prompt", "p1", 11, hw1, models["diffusion"])
        do("prompt_again", "p1", 11, hw1, models["diffusion"])
        # 2. larger resolution; an exception between a fault and its unpin
        #    (comfy/ops.py: the op raised after cast_bias_weight), caught as
        #    execution.py does; the same run then completes.
        run.fail_in = weight_modules(models["diffusion"].model)[5][1]._name
        do("big_failed", "p1_big", 11, hw2, models["diffusion"])
        checks["exception_raised"] = "InjectedError" in result["runs"][-1].get("error", "")
        do("big", "p1_big", 11, hw2, models["diffusion"])
        # 3. LoRA on every third linear layer of the diffusion model.
        checks["lora_applied"] = lora.apply(models["diffusion"])
        before, copies_at = set(), {}

        def snapshot():   # residency and copies just before the diffusion steps
            before.update(_resident_modules(models["diffusion"], mv))
            copies_at.update(run.copies)
        do("lora", "lora", 11, hw1, models["diffusion"], before_steps=snapshot)
        patched = set(lora.deltas)
        copied = {n for n, c in run.copies.items() if c > copies_at.get(n, 0)}
        checks["lora_patched_recopied"] = patched <= copied
        unpatched_resident = {n for n in before if n.startswith("diffusion.") and n not in patched}
        result["lora_unpatched_resident_recopied"] = sorted(unpatched_resident & copied)
        result["lora_unpatched_resident_checked"] = len(unpatched_resident)
        checks["lora_unpatched_not_recopied"] = not (unpatched_resident & copied)
        checks["lora_applied_twice_is_noop"] = not lora.apply(models["diffusion"])
        do("lora_again", "lora", 11, hw1, models["diffusion"])
        lora.remove(models["diffusion"])
        do("lora_removed", "p1", 11, hw1, models["diffusion"])
        checks["lora_removed_recopied"] = patched <= set(run.copies)
        # 4. a second diffusion model, then back to the first
        #    (comfy/model_management.py load_models_gpu with another model).
        models["diffusion2"].load_dynamic(run, index)
        do("model2", "d2", 11, hw1, models["diffusion2"])
        do("model1_back", "p1", 11, hw1, models["diffusion"])
        # 5. a new prompt: the encoder's resident weights are reused.
        enc_before = _resident_modules(models["encoder"], mv)
        do("new_prompt", "p2", 23, hw1, models["diffusion"])
        enc_copied = {n for n in run.copies if n.startswith("encoder.")}
        result["encoder_resident_before_new_prompt"] = len(enc_before)
        result["encoder_modules"] = len(weight_modules(models["encoder"].model))
        result["encoder_recopied_needlessly"] = sorted(enc_before & enc_copied)
        result["encoder_recopied"] = len(enc_copied)
        checks["encoder_not_recopied_needlessly"] = not (enc_before & enc_copied)
        # 6. the per-layer cost of the API (comfy/ops.py does fault + compare +
        #    unpin for every weight of every step): a resident layer, 2000 times.
        m = weight_modules(models["diffusion"].model)[0][1]
        sig = mv.vbar_fault(m._v)
        if sig is not None:
            mv.vbar_unpin(m._v)
            n = 2000
            t0 = time.perf_counter()
            for _ in range(n):
                s2 = mv.vbar_fault(m._v)
                mv.vbar_signature_compare(s2, sig)
                mv.vbar_unpin(m._v)
            result["fault_compare_unpin_us"] = round((time.perf_counter() - t0) / n * 1e6, 2)
            log("fault + compare + unpin of a resident layer: %.2f us"
                % result["fault_compare_unpin_us"])
    except Exception as e:
        result["errors"].append("scenario: %s\n%s" % (e, traceback.format_exc()))
    finally:
        for k in models:
            models[k].unload()
        import gc
        gc.collect()
        del mm

    checks["no_errors"] = not result["errors"]
    result["ok"] = all(v is True or (isinstance(v, str) and v.startswith("skipped"))
                       for v in checks.values())
    if out:
        with open(out, "w") as f:
            json.dump(result, f, indent=1)
    tmp.cleanup()
    return result


RUN_RECORD = {}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--size", default=None, choices=sorted(SIZES))
    p.add_argument("--implementation", default=None)
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    size = a.size or ("gpu" if a.device.startswith("cuda") else "sim")
    budget, impl = None, a.implementation
    if a.device.startswith("cuda"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    else:
        # The simulator, sized as the CI test sizes it: 256 MiB of headroom
        # (comfy_aimdo's minimum) plus a weight budget of 1.5 diffusion models.
        from vramswap import sim
        gran = 64 << 10
        budget = int(1.5 * model_sizes(size)["diffusion"]) // gran * gran
        sim.configure(reset=True, device_count=1, total_memory=(256 << 20) + budget,
                      granularity=gran, preferred_page_size=256 << 10, copy_bandwidth=0)
        impl = impl or "sim"
    r = run_scenario(a.device, size, budget=budget, out=a.out, implementation=impl)
    print(json.dumps({k: r[k] for k in ("implementation", "alloc_conf", "checks", "ooms", "errors")},
                     indent=1))
    return 0 if r["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
