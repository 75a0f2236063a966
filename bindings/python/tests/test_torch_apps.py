"""vramswap.torch with what applications do around a forward: generate() with a
KV cache, a diffusers-shaped pipeline, torch.nn attention and transformer
layers, the execution device, inputs on another device, misuse. On the
simulator (the CPU versions of test_torch_gpu.py)."""

import collections
import gc
import logging
import sys

import pytest

import vramswap

torch = pytest.importorskip("torch")
vtorch = pytest.importorskip("vramswap.torch")
tm = pytest.importorskip("torch_models")

nn = torch.nn


def nbytes(module):
    return sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))


def device_ranges(off):
    """Address ranges of device memory the offload's tensors may point into."""
    out = [(off.vbar.base, off.vbar.base + off.vbar.size)]
    for buf in (off.scratch, off._big_buf):
        if buf is not None:
            out.append((buf.ptr, buf.ptr + buf.size))
    return out


def on_device(off, t):
    p = t.data_ptr()
    return any(lo <= p < hi for lo, hi in device_ranges(off))


def spy_every_read(off, model):
    """A forward pre-hook (after the offload's) on every module that owns
    tensors: all tensors of its subtree that belong to its unit, and its own,
    must point into device memory when its forward starts. Returns the list
    of violations (module name, tensor name)."""
    bad = []
    unit_of = {}
    for u in off.units:
        for (m, _, name, _, _, _) in u.tensors:
            unit_of[(id(m), name)] = u

    def make(mname, module):
        def hook(mod, args):
            for tname, t in list(mod.named_parameters()) + list(mod.named_buffers()):
                if not on_device(off, t):
                    bad.append((mname, tname))
        return hook

    handles = [m.register_forward_pre_hook(make(n, m)) for n, m in model.named_modules()
               if isinstance(m, (nn.MultiheadAttention, nn.TransformerEncoderLayer,
                                 nn.TransformerDecoderLayer, nn.Linear, nn.Conv2d, nn.GroupNorm))]
    return bad, handles


# ---------------------------------------------------------------------- generate()

@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("sample", [False, True])
def test_generate_matches_the_resident_model(dev, use_cache, sample):
    model = tm.make_decoder(dim=128, layers=6)
    prompt = torch.randint(0, 256, (2, 7), generator=torch.Generator().manual_seed(3))
    want, want_logits = tm.generate(model, prompt, 12, use_cache=use_cache, sample=sample, seed=5)
    again, _ = tm.generate(model, prompt, 12, use_cache=use_cache, sample=sample, seed=5)
    assert torch.equal(want, again), "the reference itself is not deterministic"
    dev.set_limit(nbytes(model) // 2)                  # half the weights stream
    try:
        with vtorch.offload(model, dev, prefetch=2, lookahead=3) as off:
            assert model.device == off.execution_device
            got, got_logits = tm.generate(model, prompt, 12, use_cache=use_cache, sample=sample, seed=5)
            assert torch.equal(got, want), "tokens differ:\n%s\n%s" % (got, want)
            assert torch.equal(got_logits, want_logits)
            assert off.counters["streamed"] > 0
            assert off.counters["passes"] == 12
            dev.check()
    finally:
        dev.set_limit(0)


def test_model_device_is_the_execution_device_and_restored_on_close(dev):
    model = tm.make_decoder()
    cls = type(model)
    keys = list(model.state_dict())
    with vtorch.offload(model, dev) as off:
        assert type(model) is not cls and isinstance(model, cls)
        assert type(model).__name__ == cls.__name__
        assert model.device is off.execution_device     # answered by the offload, not the parameters
        assert not hasattr(model, "hf_device_map")     # only on a GPU ({"": index}: test_torch_gpu)
        assert list(model.state_dict()) == keys
        # The truth about the parameters between forwards: the pinned host copy.
        p = next(model.parameters())
        assert p.device.type == "cpu" and not on_device(off, p)
    assert type(model) is cls
    assert not hasattr(model, "hf_device_map")
    assert "_vramswap_offload" not in model.__dict__


def test_state_dict_reads_correct_data_while_offloaded(dev):
    model = tm.make_decoder(dim=128, layers=4)
    want = {k: v.clone() for k, v in model.state_dict().items()}
    dev.set_limit(nbytes(model) // 2)
    try:
        with vtorch.offload(model, dev, prefetch=2, lookahead=2):
            with torch.no_grad():
                model(torch.zeros(1, 4, dtype=torch.long))
            sd = model.state_dict()
            assert sd.keys() == want.keys()
            for k in want:
                assert torch.equal(sd[k], want[k]), k
            del sd
    finally:
        dev.set_limit(0)


def test_inputs_are_moved_to_the_execution_device():
    meta = torch.device("meta")
    Pair = collections.namedtuple("Pair", "a b")
    x = torch.ones(2)
    args = (x, [x, 3], {"k": x, "n": None}, Pair(x, "s"))
    moved = vtorch._move(args, meta)
    assert moved[0].device == meta and moved[1][0].device == meta and moved[1][1] == 3
    assert moved[2]["k"].device == meta and moved[2]["n"] is None
    assert isinstance(moved[3], Pair) and moved[3].a.device == meta and moved[3].b == "s"
    same = (torch.ones(1, device=meta), {"k": [torch.ones(1, device=meta)]})
    assert vtorch._move(same, meta) is same             # nothing to move: no new objects


# ---------------------------------------------------------------------- units

def test_multihead_attention_out_proj_is_on_the_device_when_read(dev):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.MultiheadAttention(64, 4, batch_first=True)).eval()

    class Wrap(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            h = self.m[0](x)
            return self.m[1](h, h, h, need_weights=False)[0]

    wrap = Wrap(model).eval()
    x = torch.randn(2, 5, 64)
    with torch.no_grad():
        want = wrap(x)
    with vtorch.offload(wrap, dev) as off:
        names = [u.name for u in off.units]
        assert "m.1" in names and "m.1.out_proj" not in names  # MHA is one unit with out_proj
        bad, handles = spy_every_read(off, wrap)
        with torch.no_grad():
            assert torch.equal(wrap(x), want)
        for h in handles:
            h.remove()
        assert bad == [], "read from the host copy: %s" % bad


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_transformer_layers_read_every_weight_from_the_device(dev, kind):
    torch.manual_seed(0)
    if kind == "encoder":
        layer = nn.TransformerEncoderLayer(256, 4, 512, dropout=0.0, batch_first=True)
        model = nn.TransformerEncoder(layer, 3, enable_nested_tensor=False).eval()
        run = lambda m, x, mem: m(x)  # noqa: E731
    else:
        layer = nn.TransformerDecoderLayer(256, 4, 512, dropout=0.0, batch_first=True)
        model = nn.TransformerDecoder(layer, 3).eval()
        run = lambda m, x, mem: m(x, mem)  # noqa: E731
    x, mem = torch.randn(2, 6, 256), torch.randn(2, 4, 256)
    with torch.no_grad():
        want = run(model, x, mem)
    dev.set_limit(nbytes(model) // 2)
    try:
        with vtorch.offload(model, dev, prefetch=2, lookahead=2) as off:
            assert [u.name for u in off.units] == ["layers.0", "layers.1", "layers.2"]
            bad, handles = spy_every_read(off, model)
            with torch.no_grad():
                for _ in range(2):
                    assert torch.equal(run(model, x, mem), want)
            for h in handles:
                h.remove()
            assert bad == [], "read from the host copy: %s" % bad
            assert off.counters["streamed"] > 0
    finally:
        dev.set_limit(0)


class ReadsChild(nn.Module):
    """A parent that reads its child's weight directly (the child's forward never runs)."""

    def __init__(self):
        super().__init__()
        self.gate = nn.Parameter(torch.ones(32))
        self.proj = nn.Linear(32, 32)

    def forward(self, x):
        return torch.nn.functional.linear(x, self.proj.weight, self.proj.bias) * self.gate


def test_units_argument_groups_a_parent_that_reads_its_child(dev, caplog):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 32), ReadsChild()).eval()
    x = torch.randn(3, 32)
    with torch.no_grad():
        want = model(x)
    with caplog.at_level(logging.WARNING, logger="vramswap"):
        with vtorch.offload(model, dev) as off:
            assert "1.proj" in [u.name for u in off.units]   # not grouped by shape: child is larger
            with torch.no_grad():
                model(x)
    assert any("never ran their own forward" in r.getMessage() and "1.proj" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]
    for units in (["1"], [ReadsChild]):
        with vtorch.offload(model, dev, units=units) as off:
            assert [u.name for u in off.units] == ["0", "1"]
            bad, handles = spy_every_read(off, model)
            with torch.no_grad():
                assert torch.equal(model(x), want)
            for h in handles:
                h.remove()
            assert bad == []
    with pytest.raises(vramswap.InvalidArgumentError, match="no submodule"):
        vtorch.offload(model, dev, units=["nope"])
    with pytest.raises(vramswap.InvalidArgumentError, match="classes or qualified names"):
        vtorch.offload(model, dev, units=[3])


# ---------------------------------------------------------------------- pipelines

@pytest.mark.parametrize("share", [2, 3])
def test_pipeline_offload_matches_the_resident_pipeline(dev, share):
    """share 3: so little room that the models' streaming rings contend; an
    idle model gives its ring back (Note [Rings of idle models])."""
    pipe = tm.make_pipeline(dim=128, ch=64)
    prompt = torch.randint(0, 128, (1, 6), generator=torch.Generator().manual_seed(2))
    want = pipe(prompt)
    assert torch.equal(pipe(prompt), want), "the reference itself is not deterministic"
    total = sum(nbytes(m) for m in pipe.components.values())
    dev.set_limit(total // share)
    try:
        with vtorch.offload_pipeline(pipe, dev, prefetch=2, lookahead=3) as po:
            assert sorted(po.offloads) == ["text_encoder", "unet", "vae"]
            assert pipe.device == po.execution_device
            for _ in range(2):
                got = pipe(prompt)
                assert torch.equal(got, want), float((got - want).abs().max())
            c = po.counters
            assert c["passes"] == 2 * (1 + 3 + 1) and c["streamed"] > 0
            if share == 3:
                assert c.get("rings_dropped", 0) > 0, c
            if share == 2:  # room for it: the unet keeps some of the memory (the VAE ran last)
                assert po.offloads["unet"].vbar.loaded_size > 0
            dev.check()
        assert dev.children() == []
    finally:
        dev.set_limit(0)


def test_pipeline_of_a_dict_or_list_and_nested_modules(dev):
    a, b = nn.Linear(8, 8), nn.Linear(8, 8)
    outer = nn.Sequential(a)
    with vtorch.offload_pipeline({"outer": outer, "a": a, "b": b}, dev) as po:
        assert sorted(po.offloads) == ["b", "outer"]     # a is offloaded with its parent
    with vtorch.offload_pipeline([a, b], dev) as po:
        assert sorted(po.offloads) == ["0", "1"]
    with pytest.raises(vramswap.InvalidArgumentError, match="no torch.nn.Module"):
        vtorch.offload_pipeline(object(), dev)


# ---------------------------------------------------------------------- misuse, lifetime, options

def test_a_second_offload_is_refused(dev):
    model = tm.make_decoder()
    with vtorch.offload(model, dev) as off:
        with pytest.raises(vramswap.InvalidArgumentError, match="offloaded already"):
            vtorch.offload(model, dev)
        with pytest.raises(vramswap.InvalidArgumentError, match="submodule"):
            vtorch.offload(nn.Sequential(model), dev)
        with pytest.raises(vramswap.InvalidArgumentError, match="offloaded already"):
            vtorch.offload(model.blocks[0], dev)     # part of an offloaded model
        assert off.counters["passes"] == 0
    with vtorch.offload(model, dev):                 # closed: may be offloaded again
        pass
    with pytest.raises(vramswap.InvalidArgumentError, match="not a torch.nn.Module"):
        vtorch.offload(object(), dev)


def test_busy_error_says_what_holds_the_host_copy():
    d = vramswap.init(backend="sim", headroom=0)
    model = tm.make_decoder()
    off = vtorch.offload(model, d)
    sd = model.state_dict()
    off.close()
    with pytest.raises(vramswap.BusyError, match="state_dict"):
        vramswap.shutdown()
    del sd
    gc.collect()
    vramswap.shutdown()


def test_stream_argument_is_used_or_refused(dev):
    model = tm.make_decoder()
    x = torch.zeros(1, 3, dtype=torch.long)
    with torch.no_grad():
        want = model(x)
    with dev.stream() as s:
        with vtorch.offload(model, dev, stream=s) as off:
            assert off._sync.copy_handle == s.handle
            with torch.no_grad():
                assert torch.equal(model(x), want)
        assert not s.closed                          # the caller's stream stays open
    with pytest.raises(vramswap.InvalidArgumentError, match="stream"):
        vtorch.offload(model, dev, stream=7)
    assert "_vramswap_offload" not in model.__dict__  # the refused offload left nothing behind


def test_progress_without_tqdm_logs(dev, caplog, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)   # import tqdm raises ImportError
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    model = tm.make_decoder()
    with caplog.at_level(logging.INFO, logger="vramswap"):
        with vtorch.offload(model, dev, progress=True):
            pass
    msgs = [r.getMessage() for r in caplog.records if "vramswap.torch.offload(Decoder)" in r.getMessage()]
    assert any("100%" in m for m in msgs), msgs
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="vramswap"):
        with vtorch.offload(model, dev):             # small: quiet by default
            pass
    assert not [r for r in caplog.records if "%" in r.getMessage()]


def test_compile_hooks_are_marked_for_dynamo():
    """torch 1.x has no Dynamo: hooks are plain functions; on torch 2 eager
    calls go straight to the hook and traced ones through
    torch.compiler.disable (test_torch_gpu checks compile itself)."""
    calls = []

    def f(x):
        calls.append(x)
        return x + 1
    g = vtorch._no_trace(f)
    assert g(1) == 2 and calls == [1]
    has_dynamo = hasattr(torch, "compiler") or hasattr(torch, "_dynamo")
    assert (g is not f) == has_dynamo
