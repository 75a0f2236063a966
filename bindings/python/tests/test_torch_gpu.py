"""vramswap.torch on a real GPU: transformers generate(), a diffusers-shaped
pipeline, torch.nn attention/transformer layers, torch.compile. The simulator
versions are in test_torch_apps.py.

    VRAMSWAP_LIBRARY=$PWD/build/core/libvramswap.so PYTHONPATH=bindings/python \\
        python3 -m pytest -v -s -m gpu bindings/python/tests/test_torch_gpu.py

Each test writes what it measured as JSON to $VS_OUT (default: a temporary
directory, printed) and prints it, so a failure shows the numbers. Every test
offloads its model under a vramswap limit of about half the model, so part of
it streams on every pass. Needs transformers for the Llama tests (no download:
the model is built from a LlamaConfig with random weights).
"""

import json
import os
import tempfile
import time

import pytest

import vramswap

torch = pytest.importorskip("torch")
vtorch = pytest.importorskip("vramswap.torch")
tm = pytest.importorskip("torch_models")

pytestmark = pytest.mark.gpu
nn = torch.nn
CUDA = torch.device("cuda", 0)
OUT = os.environ.get("VS_OUT") or tempfile.mkdtemp(prefix="vs_gpu_")


def report(name, data):
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "torch_gpu_%s.json" % name)
    with open(path, "w") as f:
        json.dump(data, f, indent=1, default=str)
    print("RESULT %s %s  (%s)" % (name, json.dumps(data, default=str), path))


def nbytes(module):
    return sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))


def open_device(weight_budget, act_bytes):
    """A CUDA device whose budget leaves `weight_budget` bytes for weights
    beside what the process holds now and `act_bytes` (the activation peak of
    the resident run) + 8 MiB. Whatever the activations do not use goes to
    weights too, so keep weight_budget + act_bytes below the model's size.
    2 MiB pages, so that these small models span many pages (the default on
    an H200 is 32 MiB). No interception: torch's own growth is seen through
    the driver's free-memory figure."""
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info()
    limit = (total - free) + weight_budget + act_bytes + (8 << 20)
    print("vramswap limit %.1f MiB: weights %.1f MiB + activations %.1f MiB + 8 MiB beside %.1f MiB in use"
          % (limit / 2**20, weight_budget / 2**20, act_bytes / 2**20, (total - free) / 2**20))
    return vramswap.Device("cuda", 0, headroom=0, limit=limit, page_size="2M")


class Peak:
    """Activation peak of what runs inside (bytes above what was allocated
    before); `reserved`: the same for what the caching allocator reserved (its
    block rounding makes that larger for models with many mid-sized tensors)."""

    def __enter__(self):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        self.base = torch.cuda.memory_allocated()
        self.base_reserved = torch.cuda.memory_reserved()
        return self

    def __exit__(self, *exc):
        torch.cuda.synchronize()
        self.bytes = torch.cuda.max_memory_allocated() - self.base
        self.reserved = torch.cuda.max_memory_reserved() - self.base_reserved


def diff(a, b):
    return float((a.float() - b.float()).abs().max()) if a.numel() else 0.0


def llama(layers=6, hidden=1024, seed=0):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(hidden_size=hidden, intermediate_size=hidden * 11 // 4,
                                   num_hidden_layers=layers, num_attention_heads=hidden // 128,
                                   num_key_value_heads=hidden // 128, vocab_size=32000,
                                   max_position_embeddings=2048, tie_word_embeddings=False)
    torch.manual_seed(seed)
    m = transformers.LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    return m, transformers.__version__


def gen(model, ids, n, **kw):
    """generate() with the per-step logits (transformers >= 4.38)."""
    out = model.generate(ids, max_new_tokens=n, min_new_tokens=n, return_dict_in_generate=True,
                         output_logits=True, pad_token_id=0, **kw)
    return out.sequences, torch.stack([x.float() for x in out.logits], 1)


def sample_kw(seed):
    torch.manual_seed(seed)
    return dict(do_sample=True, top_k=50, temperature=0.9)


def test_gpu_generate_llama_matches_resident():
    model, tv = llama()
    ids = torch.randint(0, 32000, (1, 24), generator=torch.Generator().manual_seed(1)).to(CUDA)
    modes = {"greedy_cache": dict(use_cache=True, do_sample=False),
             "greedy_nocache": dict(use_cache=False, do_sample=False),
             "sample_cache": "sample"}
    ref, deterministic = {}, {}
    model.to(CUDA)
    with torch.inference_mode(), Peak() as peak:
        fwd_ref = model(ids).logits.float()
        for name, kw in modes.items():
            runs = []
            for _ in range(2):  # the reference twice: is the resident model deterministic?
                kw2 = sample_kw(7) if kw == "sample" else kw
                runs.append(gen(model, ids, 16, **kw2))
            ref[name] = runs[0]
            deterministic[name] = torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    model.to("cpu")
    fwd_ref = fwd_ref.cpu()
    ref = {k: (a.cpu(), b.cpu()) for k, (a, b) in ref.items()}
    data = {"transformers": tv, "torch": torch.__version__, "model_mib": nbytes(model) >> 20,
            "reference_deterministic": deterministic, "modes": {}}
    dev = open_device(nbytes(model) // 2, peak.bytes)
    off = None
    try:
        off = vtorch.offload(model, dev)
        data["model_device"] = str(model.device)
        data["hf_device_map"] = getattr(model, "hf_device_map", None)
        assert model.device == CUDA, "model.device is %s" % model.device
        assert data["hf_device_map"] == {"": 0}
        with torch.inference_mode():
            got_fwd = model(ids.cpu()).logits  # input on the CPU: moved to the GPU at the root
            data["forward_cpu_input_on"] = str(got_fwd.device)
            data["forward_max_diff"] = diff(got_fwd.cpu(), fwd_ref)
            ok = True
            for name, kw in modes.items():
                t0 = time.perf_counter()
                seq, logits = gen(model, ids, 16, **(sample_kw(7) if kw == "sample" else kw))
                torch.cuda.synchronize()
                rseq, rlog = ref[name]
                seq, logits = seq.cpu(), logits.cpu()
                row = {"seconds": round(time.perf_counter() - t0, 3), "tokens_equal": torch.equal(seq, rseq),
                       "logits_max_diff": diff(logits, rlog)}
                # Exact when the reference is deterministic (same kernels, same
                # shapes); otherwise the logits within bf16 tolerance.
                row["ok"] = (row["tokens_equal"] and row["logits_max_diff"] == 0.0) if deterministic[name] \
                    else row["logits_max_diff"] <= 0.05 * max(1.0, float(rlog.abs().max()))
                ok &= row["ok"]
                data["modes"][name] = row
        data["counters"] = dict(off.counters)
    finally:
        report("generate_llama", data)
        if off is not None:
            off.close()
        dev.close()
    assert data["forward_cpu_input_on"].startswith("cuda")
    assert data["forward_max_diff"] == 0.0
    assert data["counters"]["streamed"] > 0, "nothing streamed: the limit did not bite"
    assert ok, data["modes"]


def test_gpu_pipeline_matches_resident():
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        pipe = tm.make_pipeline(dim=768, ch=256)
        prompt = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(2))
        for m in pipe.components.values():
            m.to(CUDA)
        with Peak() as peak:
            want = pipe(prompt, steps=4, size=32)
        again = pipe(prompt, steps=4, size=32)
        data = {"reference_deterministic": torch.equal(want, again)}
        for m in pipe.components.values():
            m.to("cpu")
        total = sum(nbytes(m) for m in pipe.components.values())
        data["pipeline_mib"] = total >> 20
        # Activations are a larger share here, and the caching allocator's
        # reserve (not the allocated peak) is what the budget must leave them:
        # with the allocated peak the streaming ring found no room (H200,
        # 2026-12-04: OutOfMemoryError for an 18.9 MiB slot).
        data["activations_mib"] = peak.bytes >> 20
        data["activations_reserved_mib"] = peak.reserved >> 20
        dev = open_device(total // 2, max(peak.bytes, peak.reserved))
        try:
            with vtorch.offload_pipeline(pipe, dev) as po:
                data["pipe_device"] = str(pipe.device)
                outs = [pipe(prompt, steps=4, size=32) for _ in range(2)]
                data["max_diff"] = max(diff(o, want) for o in outs)
                data["exact"] = all(torch.equal(o, want) for o in outs)
                data["counters"] = po.counters
        finally:
            report("pipeline", data)
            dev.close()
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
    assert data["pipe_device"].startswith("cuda")
    assert data["counters"]["streamed"] > 0
    if data["reference_deterministic"]:
        assert data["exact"], data
    else:
        assert data["max_diff"] < 1e-3, data


@pytest.mark.parametrize("kind", ["mha", "encoder", "decoder"])
def test_gpu_torch_nn_attention_reads_on_device(kind):
    torch.manual_seed(0)
    d = 1024
    if kind == "mha":
        model = nn.ModuleList([nn.MultiheadAttention(d, 8, batch_first=True) for _ in range(4)]).eval()

        def run(m, x, mem):
            for a in m:
                x = a(x, x, x, need_weights=False)[0]
            return x
    elif kind == "encoder":
        model = nn.TransformerEncoder(nn.TransformerEncoderLayer(d, 8, 4 * d, dropout=0.0, batch_first=True),
                                      4, enable_nested_tensor=False).eval()
        run = lambda m, x, mem: m(x)  # noqa: E731
    else:
        model = nn.TransformerDecoder(nn.TransformerDecoderLayer(d, 8, 4 * d, dropout=0.0, batch_first=True),
                                      4).eval()
        run = lambda m, x, mem: m(x, mem)  # noqa: E731
    x = torch.randn(2, 64, d, device=CUDA)
    mem = torch.randn(2, 32, d, device=CUDA)
    model.to(CUDA)
    with torch.inference_mode():
        with Peak() as peak:
            want = run(model, x, mem)
        again = run(model, x, mem)
    model.to("cpu")
    data = {"kind": kind, "reference_deterministic": torch.equal(want, again)}
    dev = open_device(nbytes(model) // 2, peak.bytes)
    try:
        with vtorch.offload(model, dev) as off:
            data["units"] = [u.name for u in off.units]
            with torch.inference_mode():
                outs = [run(model, x, mem) for _ in range(2)]
            data["max_diff"] = max(diff(o, want) for o in outs)
            data["counters"] = dict(off.counters)
    finally:
        report("nn_" + kind, data)
        dev.close()
    assert data["counters"]["streamed"] > 0
    assert data["max_diff"] == 0.0 if data["reference_deterministic"] else data["max_diff"] < 1e-4, data


def test_gpu_compile_offloaded_llama():
    """torch.compile on an offloaded model: runs, matches eager within bf16
    tolerance (compiled kernels differ from eager ones), no recompilation after
    warm-up; compiled vs eager at 16 new tokens."""
    from torch._dynamo.utils import counters
    model, tv = llama(layers=2, hidden=1024, seed=3)
    backend = os.environ.get("VS_COMPILE_BACKEND", "inductor")
    ids = torch.randint(0, 32000, (1, 16), generator=torch.Generator().manual_seed(4)).to(CUDA)
    data = {"transformers": tv, "torch": torch.__version__, "backend": backend}
    model.to(CUDA)
    with torch.inference_mode(), Peak() as peak:
        gen(model, ids, 16, use_cache=True, do_sample=False)
    model.to("cpu")
    dev = open_device(nbytes(model) // 2, peak.bytes)
    try:
        with vtorch.offload(model, dev) as off, torch.inference_mode():
            def timed_gen():
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                seq, logits = gen(model, ids, 16, use_cache=True, do_sample=False)
                torch.cuda.synchronize()
                return time.perf_counter() - t0, seq, logits
            timed_gen()
            eager = [timed_gen() for _ in range(3)]
            eager_seq, eager_logits = eager[0][1], eager[0][2]
            eager_fwd = model(ids).logits.float()
            torch._dynamo.reset()
            counters.clear()
            eager_forward = model.forward
            model.forward = torch.compile(eager_forward, backend=backend)
            try:
                t0 = time.perf_counter()
                for _ in range(2):  # warm-up: compiles, and recompiles for the growing KV cache
                    timed_gen()
                data["warmup_seconds"] = round(time.perf_counter() - t0, 2)
                data["warmup_unique_graphs"] = int(counters["stats"]["unique_graphs"])
                data["warmup_recompiles"] = int(sum(counters["recompiles"].values()))
                data["graph_breaks"] = int(sum(counters["graph_break"].values()))
                data["graph_break_reasons"] = [str(k)[:160] for k in list(counters["graph_break"])[:5]]
                graphs0 = int(counters["stats"]["unique_graphs"])
                rec0 = int(sum(counters["recompiles"].values()))
                comp = [timed_gen() for _ in range(3)]
                data["recompiles_after_warmup"] = int(sum(counters["recompiles"].values())) - rec0
                data["new_graphs_after_warmup"] = int(counters["stats"]["unique_graphs"]) - graphs0
                data["tokens_equal_eager"] = torch.equal(comp[0][1], eager_seq)
                data["logits_max_diff"] = diff(comp[0][2], eager_logits)
                data["logits_scale"] = float(eager_logits.abs().max())
            finally:
                del model.forward  # the class's forward again
            # torch.compile(module) as well: the OptimizedModule path.
            cm = torch.compile(model, backend=backend)
            data["module_compile_max_diff"] = diff(cm(ids).logits.float(), eager_fwd)
            data["eager_seconds_16_tokens"] = round(sorted(t for t, _, _ in eager)[1], 4)
            data["compiled_seconds_16_tokens"] = round(sorted(t for t, _, _ in comp)[1], 4)
            data["counters"] = dict(off.counters)
    finally:
        report("compile", data)
        dev.close()
    assert data["counters"]["streamed"] > 0
    assert data["recompiles_after_warmup"] == 0, data
    assert data["new_graphs_after_warmup"] == 0, data
    tol = 0.05 * max(1.0, data["logits_scale"])
    assert data["logits_max_diff"] <= tol, data
    assert data["module_compile_max_diff"] <= tol, data
