"""vramswap.torch on the simulated device (device memory is host memory, so
tensors over VBAR ranges are CPU tensors)."""

import gc

import pytest

import vramswap

torch = pytest.importorskip("torch")
vtorch = pytest.importorskip("vramswap.torch")


def make_model(layers=8, width=128, seed=0):
    torch.manual_seed(seed)
    mods = []
    for _ in range(layers):
        mods += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    return torch.nn.Sequential(*mods).eval()


def test_as_tensor_over_an_allocation(dev, page):
    with dev.vbar(2 * page) as v:
        a = v.alloc(64 * 4)
        with a.pinned():
            t = vtorch.as_tensor(a, torch.float32, (8, 8))
            assert t.device.type == "cpu" and t.shape == (8, 8)
            t.fill_(2.5)
            u = vtorch.as_tensor(a.ptr, torch.float32, device=dev, nbytes=64 * 4)
            assert u.sum().item() == 2.5 * 64
            del t, u


def test_as_tensor_over_buffers(dev, page):
    with dev.scratch(page, size=page) as s, dev.host_buffer(1 << 20, size=4096) as h:
        t = vtorch.as_tensor(s, torch.int32)
        assert t.numel() == page // 4
        t[:] = 7
        ht = vtorch.as_tensor(h, torch.uint8, (16,), offset=16)
        ht[:] = 1
        with pytest.raises(vramswap.BusyError):
            h.close()                                  # a tensor views it
        del ht
        gc.collect()
        with h.buffer() as view:
            assert bytes(view[14:34]) == b"\0\0" + b"\1" * 16 + b"\0\0"
        del t
    with pytest.raises(vramswap.InvalidArgumentError):
        vtorch.as_tensor(0x1000, torch.float32, (4,))  # an address needs device=


def test_offload_gives_identical_results(dev):
    model = make_model()
    x = torch.randn(4, 128)
    with torch.no_grad():
        want = model(x)
    with vtorch.offload(model, dev) as off:
        assert len(off.units) == 8
        with torch.no_grad():
            got = model(x)
            again = model(x)
        assert torch.equal(got, want) and torch.equal(again, want)
        assert off.counters["copies"] == 8             # first pass copies every unit
        assert off.counters["hits"] == 8               # second pass: signatures unchanged
        assert off.counters["streamed"] == 0
        assert len(off.resident_units()) == 8
        # Between forwards parameters live in the pinned host buffer.
        assert all(p.device.type == "cpu" for p in model.parameters())
        dev.check()
    with torch.no_grad():
        assert torch.equal(model(x), want)             # ordinary parameters again
    assert dev.children() == []


@pytest.mark.parametrize("placement", ["sequential", "spread"])
def test_offload_under_pressure_streams_what_does_not_fit(dev, page, placement):
    model = make_model(width=256)                      # 8 units of 257 KiB (~1 page each)
    x = torch.randn(4, 256)
    with torch.no_grad():
        want = model(x)
    dev.set_limit(6 * page)
    try:
        with vtorch.offload(model, dev, prefetch=2, lookahead=2, placement=placement) as off:
            for _ in range(4):
                with torch.no_grad():
                    assert torch.equal(model(x), want)
            assert off.counters["streamed"] > 0
            resident = off.resident_units()
            assert 0 < len(resident) < 8
            names = [u.name for u in off.units]
            idx = sorted(names.index(n) for n in resident)
            if placement == "sequential":
                # The most important (first) layers are the resident ones.
                assert idx == list(range(len(idx)))
            else:
                # Spread over the execution order, so copies overlap resident compute.
                assert idx != list(range(len(idx)))
                assert off.counters["relayouts"] == 1
            dev.check()
    finally:
        dev.set_limit(0)


def test_offload_spread_keeps_outsized_units_resident(dev, page):
    """An embedding-like unit far larger than the others stays resident, so the
    ring's slots are sized for the typical unit; if pressure evicts it anyway it
    streams through the oversize slot and results stay exact."""
    torch.manual_seed(0)

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.big = torch.nn.Linear(64, 4096, bias=False)    # 1 MiB
            self.mid = torch.nn.ModuleList(torch.nn.Linear(256, 256, bias=False) for _ in range(24))
            self.proj = torch.nn.Linear(4096, 64, bias=False)   # 1 MiB
            self.inp = torch.nn.Linear(64, 256, bias=False)

        def forward(self, x):
            h = self.inp(self.proj(self.big(x)))
            for m in self.mid:
                h = m(h)
            return h

    model = M().eval()
    x = torch.randn(3, 64)
    with torch.no_grad():
        want = model(x)
    total = sum(p.numel() * 4 for p in model.parameters())
    dev.set_limit(total * 3 // 4)
    try:
        with vtorch.offload(model, dev, prefetch=2, lookahead=3) as off:
            with torch.inference_mode():
                for _ in range(3):
                    assert torch.equal(model(x), want)
            names = off.resident_units()
            assert "big" in names and "proj" in names   # the outliers stay resident
            assert off.slot_size < 1 << 20              # slots sized for the 256 KiB units
            assert 0 < len(names) < len(off.units)
            assert off.counters["streamed"] > 0
            off.vbar.free_memory(off.vbar.size)         # pressure takes everything
            with torch.inference_mode():
                assert torch.equal(model(x), want)       # "big" streams through the oversize slot
            assert off._big is not None
            dev.check()
    finally:
        dev.set_limit(0)


def test_offload_resident_passes_when_everything_fits(dev):
    model = make_model()
    x = torch.randn(4, 128)
    with torch.no_grad():
        want = model(x)
    with vtorch.offload(model, dev) as off:
        with torch.inference_mode():
            for _ in range(4):
                assert torch.equal(model(x), want)
        # pass 1 learns, pass 2 finds all resident, passes 3-4 pin the VBAR once each
        assert off.counters["resident_passes"] == 2
        faults = off.counters["faults"]
        with torch.inference_mode():
            assert torch.equal(model(x), want)
        assert off.counters["faults"] == faults        # no per-unit work
        assert all(p.device.type == "cpu" for p in model.parameters())
        assert not any(r & 2 for r in off.vbar.residency())  # nothing left pinned
        off.vbar.free_memory(off.vbar.size)            # pressure: back to the pipeline
        off.vbar.prioritize()
        with torch.inference_mode():
            assert torch.equal(model(x), want)
        assert off.counters["resident_passes"] == 3 and off.counters["faults"] > faults
        dev.check()


def test_offload_learns_the_execution_order(dev):
    class Reversed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(64, 64)
            self.b = torch.nn.Linear(64, 64)
            self.c = torch.nn.Linear(64, 64)

        def forward(self, x):
            return self.a(self.b(self.c(x)))

    model = Reversed().eval()
    x = torch.randn(3, 64)
    with torch.no_grad():
        want = model(x)
    with vtorch.offload(model, dev) as off:
        with torch.no_grad():
            assert torch.equal(model(x), want)
            assert torch.equal(model(x), want)
        by_offset = [u.name for u in sorted(off.units, key=lambda u: u.off)]
        assert by_offset == ["c", "b", "a"]
        assert off.counters["relayouts"] == 1


def test_offload_refuses_training(dev):
    model = make_model(layers=1).train()
    with vtorch.offload(model, dev):
        with pytest.raises(RuntimeError, match="inference"):
            model(torch.randn(2, 128))


def test_offload_keeps_state_dict_and_buffers(dev):
    model = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.BatchNorm1d(32)).eval()
    model[1].running_mean.normal_()
    x = torch.randn(5, 32)
    with torch.no_grad():
        want = model(x)
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    with vtorch.offload(model, dev) as off:
        assert len(off.units) == 2
        with torch.inference_mode():
            assert torch.equal(model(x), want)
        got = model.state_dict()
        assert all(torch.equal(got[k], sd[k]) for k in sd)
    # A state_dict taken while offloaded stays valid after close ...
    assert all(torch.equal(got[k], sd[k]) for k in sd)
    assert dev.children() != []                        # ... its host buffer waits for it
    del got
    vtorch._close_deferred()
    assert dev.children() == []


def test_offload_refaults_after_eviction(dev):
    model = make_model(layers=2)
    x = torch.randn(2, 128)
    with torch.no_grad():
        want = model(x)
    with vtorch.offload(model, dev) as off:
        with torch.no_grad():
            model(x)
        off.vbar.free_memory(off.vbar.size)            # evict everything
        off.vbar.prioritize()                          # clear the watermark
        with torch.no_grad():
            assert torch.equal(model(x), want)
        assert off.counters["copies"] == 4             # copied again after eviction


def test_offload_close_after_a_failing_forward(dev):
    model = make_model(layers=2)
    off = vtorch.offload(model, dev)
    with pytest.raises(RuntimeError):
        with torch.no_grad():
            model(torch.randn(2, 3))                   # wrong width: the forward raises
    off.close()
    assert dev.children() == []
    with torch.no_grad():
        assert model(torch.randn(2, 128)).shape == (2, 128)


def test_offload_uses_the_default_device():
    vramswap.init(backend="sim", headroom=0)
    try:
        model = make_model(layers=1)
        with vtorch.offload(model) as off:
            assert off.device is vramswap.default_device()
    finally:
        vramswap.shutdown()


@pytest.mark.gpu
def test_offload_on_a_gpu():
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    d = vramswap.Device("cuda", 0)
    try:
        model = make_model().cuda()
        x = torch.randn(4, 128, device="cuda")
        with torch.no_grad():
            want = model(x)
        with vtorch.offload(model, d):
            with torch.no_grad():
                assert torch.allclose(model(x), want)
    finally:
        d.close()
