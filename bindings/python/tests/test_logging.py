"""The C log is routed into logging.getLogger("vramswap")."""

import logging
import threading

import pytest

import vramswap
from vramswap import _lib, _log

from conftest import open_sim, run_python


@pytest.fixture(autouse=True)
def _restore_log_state():
    level = _lib.LIB.vs_get_log_level()
    explicit = _log._explicit
    yield
    _lib.LIB.vs_set_log_level(level)
    _log._explicit = explicit
    _log.install()


def test_messages_reach_the_logger(caplog):
    caplog.set_level(logging.INFO, logger="vramswap")
    with open_sim():
        pass
    opened = [r for r in caplog.records if r.name == "vramswap" and "opened sim:0" in r.message]
    assert opened and opened[0].levelno == logging.INFO


def test_errors_are_logged_as_errors(caplog, dev):
    caplog.set_level(logging.WARNING, logger="vramswap")
    with pytest.raises(vramswap.BusyError):
        open_sim()
    errs = [r for r in caplog.records if r.name == "vramswap" and r.levelno == logging.ERROR]
    assert any("already open" in r.message for r in errs)


def test_c_level_follows_the_logger_at_open(caplog):
    caplog.set_level(logging.DEBUG, logger="vramswap")
    with open_sim() as d:
        assert vramswap.get_log_level() == vramswap.LogLevel.DEBUG
        with d.vbar(1 << 20):
            pass
    assert any(r.levelno == logging.DEBUG for r in caplog.records if r.name == "vramswap")
    caplog.set_level(logging.WARNING, logger="vramswap")
    caplog.clear()
    with open_sim():
        assert vramswap.get_log_level() == vramswap.LogLevel.WARN
    assert not [r for r in caplog.records if r.name == "vramswap" and r.levelno < logging.WARNING]


def test_level_mapping():
    c = vramswap.LogLevel
    assert _log.c_level_for(logging.DEBUG) == c.DEBUG
    assert _log.c_level_for(logging.INFO) == c.INFO
    assert _log.c_level_for(logging.WARNING) == c.WARN
    assert _log.c_level_for(logging.ERROR) == c.ERROR
    assert _log.c_level_for(logging.CRITICAL) == c.OFF
    assert _log.c_level_for(_log.TRACE) == c.TRACE
    assert _log.c_level_for(logging.NOTSET) == c.TRACE


def test_explicit_level_wins(caplog):
    caplog.set_level(logging.WARNING, logger="vramswap")
    vramswap.set_log_level("debug")
    with open_sim():
        assert vramswap.get_log_level() == vramswap.LogLevel.DEBUG
    with open_sim(log="info"):
        assert vramswap.get_log_level() == vramswap.LogLevel.INFO
    _log.follow_logger()
    assert vramswap.get_log_level() == vramswap.LogLevel.WARN
    with pytest.raises(vramswap.InvalidArgumentError):
        vramswap.set_log_level("loud")


def test_environment_level_wins(monkeypatch, caplog):
    caplog.set_level(logging.DEBUG, logger="vramswap")
    _lib.LIB.vs_set_log_level(vramswap.LogLevel.ERROR)
    monkeypatch.setenv("VRAMSWAP_LOG", "error")
    with open_sim():
        assert vramswap.get_log_level() == vramswap.LogLevel.ERROR
    monkeypatch.delenv("VRAMSWAP_LOG")
    monkeypatch.setenv("VRAMSWAP_CONF", "log:error")
    with open_sim():
        assert vramswap.get_log_level() == vramswap.LogLevel.ERROR


def test_callback_from_other_threads_and_trace_level(caplog):
    caplog.set_level(_log.TRACE, logger="vramswap")
    trace = int(vramswap.LogLevel.TRACE)

    def emit():
        _log._CALLBACK(trace, b"from a C thread", None)

    t = threading.Thread(target=emit)
    t.start()
    t.join()
    _log._CALLBACK(trace, b"\xff not utf-8", None)
    msgs = [(r.levelno, r.message) for r in caplog.records if r.name == "vramswap"]
    assert (_log.TRACE, "from a C thread") in msgs
    assert any(m.endswith("not utf-8") for _, m in msgs)


def test_package_adds_only_a_null_handler():
    r = run_python("import logging, vramswap\n"
                   "assert logging.getLogger().handlers == []\n"
                   "hs = logging.getLogger('vramswap').handlers\n"
                   "assert len(hs) == 1 and isinstance(hs[0], logging.NullHandler)\n")
    assert r.returncode == 0, r.stderr


def test_warnings_are_silent_without_logging_configuration():
    # NullHandler: no "No handlers could be found" and no lastResort output.
    r = run_python("import vramswap\n"
                   "d = vramswap.Device('sim', 0, headroom=0)\n"
                   "try:\n"
                   "    vramswap.Device('sim', 0)\n"
                   "except vramswap.BusyError:\n"
                   "    pass\n"
                   "d.close()\n")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
