"""Sizes, configuration keys, VRAMSWAP_CONF, vramswap.init()."""

import pytest

import vramswap
from vramswap import _config

from conftest import SIM_MEMORY, SIM_PAGE, open_sim

K, M, G, T = 1 << 10, 1 << 20, 1 << 30, 1 << 40


@pytest.mark.parametrize("text,value", [
    ("0", 0), ("123", 123), ("64K", 64 * K), ("64k", 64 * K), ("512M", 512 * M), ("8G", 8 * G),
    ("1T", T), ("8GiB", 8 * G), ("8GB", 8 * G), ("8gib", 8 * G), ("2Mi", 2 * M),
    (" 4M ", 4 * M), (4096, 4096),
])
def test_parse_size(text, value):
    assert vramswap.parse_size(text) == value


@pytest.mark.parametrize("bad", ["", "G", "1.5G", "-1", "8X", "8 G", "8GiBB", "0x10", -1,
                                 1 << 64, 1.0, None, True, "99999999999999999999T"])
def test_parse_size_rejects(bad):
    with pytest.raises(vramswap.InvalidArgumentError):
        vramswap.parse_size(bad)


def test_parse_conf():
    c = vramswap.parse_conf("limit:8G,headroom:512M,page_size:32M,log:info,intercept:1,"
                            "mem_poll_ns:1000")
    assert c == {"limit": 8 * G, "headroom": 512 * M, "page_size": 32 * M,
                 "log": vramswap.LogLevel.INFO, "intercept": True, "mem_poll_ns": 1000}
    assert vramswap.parse_conf("") == {}
    assert vramswap.parse_conf(" limit:1M,, intercept:off") == {"limit": M, "intercept": False}
    assert vramswap.parse_conf("log:warning") == {"log": vramswap.LogLevel.WARN}
    assert vramswap.parse_conf("log:5") == {"log": vramswap.LogLevel.TRACE}


@pytest.mark.parametrize("bad", ["limit", "limit:", "limit:8Q", "nope:1", "backend:sim",
                                 "limit :8G", "limit: 8G", "log:loud", "intercept:maybe",
                                 "log:6", "log:05"])
def test_parse_conf_rejects(bad):
    with pytest.raises(vramswap.InvalidArgumentError):
        vramswap.parse_conf(bad)


def test_env_conf_is_applied(monkeypatch):
    monkeypatch.setenv("VRAMSWAP_CONF", "limit:32M,headroom:1M")
    with vramswap.Device("sim", 0, mem_poll_ns=0) as d:
        info = d.memory_info()
        assert info.total == 32 * M
        assert info.headroom == M
        assert info.budget == 31 * M


def test_kwargs_override_env(monkeypatch):
    monkeypatch.setenv("VRAMSWAP_CONF", "limit:32M,headroom:1M")
    with vramswap.Device("sim", 0, limit="16M", headroom=0) as d:
        info = d.memory_info()
        assert (info.total, info.headroom) == (16 * M, 0)


def test_bad_env_conf_is_reported_by_key(monkeypatch):
    monkeypatch.setenv("VRAMSWAP_CONF", "limit:32M,colour:blue")
    with pytest.raises(vramswap.InvalidArgumentError) as ei:
        vramswap.Device("sim", 0)
    assert "colour" in str(ei.value)


def test_page_size_key(dev):
    granularity = dev.props.granularity
    with open_sim(1, page_size=4 * granularity) as d:
        assert d.page_size == 4 * granularity
    with pytest.raises(vramswap.InvalidArgumentError):
        open_sim(1, page_size=granularity + 1)


def test_defaults():
    with vramswap.Device("sim", 0) as d:
        info = d.memory_info()
        assert info.total == SIM_MEMORY
        assert info.headroom == vramswap.constants.VS_DEFAULT_HEADROOM


@pytest.mark.parametrize("key,value", [("limit", "1.5G"), ("headroom", -1), ("page_size", "x"),
                                       ("intercept", "sometimes"), ("log", "loud"),
                                       ("mem_poll_ns", None), ("backend", 3), ("device", -1),
                                       ("colour", "blue")])
def test_init_validates_keys(key, value):
    with pytest.raises(vramswap.InvalidArgumentError):
        vramswap.init(**{key: value})
    assert not vramswap.is_initialized()


def test_init_and_default_device():
    d = vramswap.init(backend="sim", device=1, limit="8M", headroom=0)
    try:
        assert vramswap.default_device() is d
        assert vramswap.is_initialized()
        assert (d.backend, d.ordinal) == ("sim", 1)
        assert d.memory_info().total == 8 * M
        assert vramswap.init() is d              # no keys: the open device
        with pytest.raises(vramswap.BusyError):
            vramswap.init(backend="sim", device=1)
        assert vramswap.memory_stats()["memory.total"] == 8 * M
    finally:
        vramswap.shutdown()
    assert d.closed
    assert not vramswap.is_initialized()
    with pytest.raises(vramswap.NoDeviceError):
        vramswap.default_device()
    vramswap.shutdown()  # a no-op


def test_init_auto_backend_falls_back_to_sim():
    # No GPU here: "auto" picks the first available GPU backend, then the simulator.
    gpu = [b for b in vramswap.backends() if b.name != "sim" and b.available and b.device_count]
    if gpu:
        pytest.skip("a GPU backend is available")
    d = vramswap.init(headroom=0)
    assert d.backend == "sim"
    vramswap.shutdown()


def test_intercept_flag():
    with open_sim(0, intercept=True) as d:
        assert d.props.intercepting in (True, False)  # sim may or may not intercept
    cfg = _config.make_config(_config.validate({"intercept": True}))
    assert cfg.flags & vramswap.DeviceFlags.INTERCEPT
    cfg = _config.make_config(_config.validate({"intercept": "off"}))
    assert not cfg.flags & vramswap.DeviceFlags.INTERCEPT


def test_limit_scope_process_is_a_quota():
    """Note [Process quota]: memory held by others does not shrink the quota."""
    from vramswap import sim
    with open_sim(0, limit=4 * SIM_PAGE, limit_scope="process", headroom=0) as d:
        sim.set_external_usage(SIM_MEMORY // 2)
        try:
            assert d.memory_info().available == 4 * SIM_PAGE
        finally:
            sim.set_external_usage(0)
    cfg = _config.make_config(_config.validate({"limit_scope": "process"}))
    assert cfg.flags & vramswap.DeviceFlags.LIMIT_PROCESS
    with pytest.raises(vramswap.InvalidArgumentError, match="limit_scope"):
        _config.validate({"limit_scope": "all"})


@pytest.mark.parametrize("text", [
    "limit:8G,headroom:512M", "page_size:32M,mem_poll_ns:1000", "intercept:on", "intercept:0",
    " limit:1M,,headroom:0", "limit:8GiB", "limit:8gb", "limit:1.5G", "limit:", "limit",
    "nope:1", "limit: 8G", "log:warning", "log:05", "intercept:maybe", "limit:8G:1",
    "headroom:99999999999999999999T", "limit_scope:process", "limit_scope:device",
    "limit_scope:proc", "limit:1G,limit_scope:process",
])
def test_python_and_c_parsers_agree(monkeypatch, text):
    import ctypes
    from vramswap import _lib
    monkeypatch.setenv("VRAMSWAP_CONF", text)
    level = _lib.LIB.vs_get_log_level()
    cfg = _lib.vs_device_config()
    st = _lib.LIB.vs_device_config_init(ctypes.byref(cfg))
    _lib.LIB.vs_set_log_level(level)  # "log:" entries set it as a side effect
    try:
        parsed = vramswap.parse_conf(text)
    except vramswap.InvalidArgumentError:
        parsed = None
    assert (st == 0) == (parsed is not None), (text, st, parsed)
    if parsed is not None:
        for key in ("limit", "headroom", "page_size", "mem_poll_ns"):
            if key in parsed:
                assert getattr(cfg, key) == parsed[key], key
        if "intercept" in parsed:
            assert bool(cfg.flags & vramswap.DeviceFlags.INTERCEPT) == parsed["intercept"]
        if "limit_scope" in parsed:
            assert bool(cfg.flags & vramswap.DeviceFlags.LIMIT_PROCESS) == (parsed["limit_scope"] == "process")
