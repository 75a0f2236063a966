#!/usr/bin/env python3
"""The comfy_aimdo calls of the ComfyUI scenario that need no GPU tensors --
VBARs, fault/unpin/signatures, nested pins, eviction and priorities, host
buffers with file reads to device memory, VRAM buffers -- on one backend, for
CI against the driver emulators (tests/emulators):

  VRAMSWAP_LIBHIP=build/emulators/hip/libamdhip64.so.5 \\
      python3 tests/comfyui/emulator_smoke.py rocm

`implementation` is comfy-aimdo's name ("cuda", "rocm", "xpu") or vramswap's.
Device contents are checked with vramswap copies (device -> host), since a CPU
PyTorch cannot make tensors over emulated device memory. Prints one JSON line;
exit status 0 when every check passed.
"""

import ctypes
import json
import os
import sys
import tempfile

MiB = 1 << 20


def main(implementation):
    import comfy_aimdo.control as control
    checks = {}
    checks["init"] = control.init(implementation=implementation)
    if not checks["init"]:
        print(json.dumps({"implementation": implementation, "checks": checks}))
        return 1
    checks["init_devices"] = control.init_devices(((0, 0) for _ in range(1)))
    import comfy_aimdo.host_buffer as host_buffer
    import comfy_aimdo.model_vbar as mv
    import comfy_aimdo.vram_buffer as vram_buffer
    dev = control.get_devctx(0)
    backend = dev.backend
    page = dev.page_size

    def device_bytes(addr, n):
        out = bytearray(n)
        dev.memcpy(out, addr, n, kind="d2h")
        dev.synchronize()
        return bytes(out)

    enc = mv.ModelVBAR(64 * MiB, 0)
    unet = mv.ModelVBAR(64 * MiB, 0)
    layers = [unet.alloc(n) for n in (3 * page // 2, 1000, page)]
    span = (unet, layers[0][1], layers[2][1] + layers[2][2] - layers[0][1])
    s0 = mv.vbar_fault(layers[0])
    checks["fault_signature"] = s0 is not None and len(s0) == 2
    s_span = mv.vbar_fault(span)
    checks["nested_fault"] = s_span is not None
    mv.vbar_unpin(span)
    checks["nested_pin_kept"] = bool(unet.get_residency()[0] & mv.PINNED)
    mv.vbar_unpin(layers[0])
    mv.vbar_unpin(layers[0])                   # not pinned: no error
    mv.vbar_unpin(None)
    checks["unpinned"] = all(f & mv.PINNED == 0 for f in unet.get_residency())
    s1 = mv.vbar_fault(layers[0])
    checks["signature_stable"] = mv.vbar_signature_compare(s0, s1)
    mv.vbar_unpin(layers[0])

    # Host buffer: file -> pinned host -> faulted VBAR range.
    data = os.urandom(2 * page)
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        hb = host_buffer.HostBuffer(0, max_grow_size=4 * page)
        hb.extend(page)
        dst = layers[0]
        checks["fault_for_copy"] = mv.vbar_fault(dst) is not None
        hb.read_file_slice(f, 123, dst[2], offset=0, stream=0, device_ptr=dst[1], device=0)
        dev.synchronize()
        checks["read_file_slice_to_device"] = device_bytes(dst[1], dst[2]) == data[123:123 + dst[2]]
        host_buffer.read_file_to_device(f, 7, dst[2], 0, dst[1], 0)
        dev.synchronize()
        checks["read_file_to_device"] = device_bytes(dst[1], dst[2]) == data[7:7 + dst[2]]
        mv.vbar_unpin(dst)
        hb.truncate(0)
        hb.close()
    host_buffer.cleanup_file_reader()

    # Priorities and eviction: the encoder (older, deprioritized) goes first.
    e = enc.alloc(page)
    checks["encoder_fault"] = mv.vbar_fault(e) is not None
    mv.vbar_unpin(e)
    enc.deprioritize()
    dev.free_memory(page)
    checks["evicts_least_important"] = enc.loaded_size() == 0 and unet.loaded_size() > 0
    unet.free_memory(64 * MiB)
    unet.prioritize()
    s2 = mv.vbar_fault(layers[0])
    checks["remapped_signature_differs"] = s2 is not None and not mv.vbar_signature_compare(s0, s2)
    mv.vbar_unpin(layers[0])
    checks["vbars_analyze"] = mv.vbars_analyze() == unet.loaded_size() + enc.loaded_size()
    mv.vbars_reset_watermark_limits()

    vb = vram_buffer.VRAMBuffer(8 * MiB, 0)
    _, addr, n = vb.get(4096, offset=page)
    checks["vram_buffer"] = addr == vb.base_addr + page and vb.size() >= page + 4096
    vb.close()

    pinned_at_del = mv.vbar_fault(layers[1]) is not None
    del enc, unet, layers, span, e, dst
    import gc
    gc.collect()
    left = dev.children()
    checks["del_with_pins"] = pinned_at_del and left == []
    if left:
        print("still open after the VBARs were dropped: %r" % left, file=sys.stderr)
    control.deinit()
    ok = all(v is True for v in checks.values())
    print(json.dumps({"implementation": implementation, "backend": backend, "ok": ok,
                      "checks": checks}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "cuda"))
