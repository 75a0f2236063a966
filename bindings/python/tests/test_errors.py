"""Every vs_status maps to its exception class; C failures raise them."""

import pickle

import pytest

import vramswap
from vramswap import errors

EXPECTED = {
    "NOT_RESIDENT": vramswap.NotResidentError,
    "ERR_OUT_OF_MEMORY": vramswap.OutOfMemoryError,
    "ERR_INVALID_ARGUMENT": vramswap.InvalidArgumentError,
    # The bindings pass only handles the library gave them, so invalid means
    # closed meanwhile (issue 16); ClosedError is an InvalidHandleError.
    "ERR_INVALID_HANDLE": vramswap.ClosedError,
    "ERR_OUT_OF_RANGE": vramswap.OutOfRangeError,
    "ERR_NOT_PINNED": vramswap.NotPinnedError,
    "ERR_BUSY": vramswap.BusyError,
    "ERR_NOT_READY": vramswap.NotReadyError,
    "ERR_NOT_SUPPORTED": vramswap.NotSupportedError,
    "ERR_NO_DEVICE": vramswap.NoDeviceError,
    "ERR_BACKEND": vramswap.BackendError,
    "ERR_INTERNAL": vramswap.InternalError,
}


def test_every_status_has_a_class():
    for st in vramswap.Status:
        if st == vramswap.Status.OK:
            continue
        assert st.name in EXPECTED, "no exception class expected for %s" % st.name
        assert errors.error_class(st) is EXPECTED[st.name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_error_instances(name):
    st = vramswap.Status[name]
    e = errors.error(st, "vs_something")
    assert isinstance(e, EXPECTED[name])
    assert isinstance(e, vramswap.VramswapError)
    assert isinstance(e, RuntimeError)
    assert e.status == st
    assert e.name == "VS_" + name
    assert "vs_something" in str(e) and "VS_" + name in str(e)
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is type(e) and e2.status == e.status and str(e2) == str(e)
    with pytest.raises(EXPECTED[name]):
        errors.check(st, "vs_something")


def test_builtin_bases():
    assert issubclass(vramswap.OutOfMemoryError, MemoryError)
    assert issubclass(vramswap.InvalidArgumentError, ValueError)
    assert issubclass(vramswap.OutOfRangeError, ValueError)
    assert issubclass(vramswap.ClosedError, vramswap.InvalidHandleError)


def test_unknown_status_is_a_plain_error():
    e = errors.error(1000)
    assert type(e) is vramswap.VramswapError
    assert e.name == "VS_UNKNOWN"


def test_check_ok_is_silent():
    errors.check(vramswap.Status.OK, "x")


def test_c_failures_raise_mapped_errors(dev, page):
    with pytest.raises(vramswap.NoDeviceError):
        vramswap.Device("sim", 15)
    with pytest.raises(vramswap.NoDeviceError):
        vramswap.Device("no_such_backend")
    with pytest.raises(vramswap.BusyError):
        vramswap.Device("sim", 0)
    with dev.vbar(4 * page) as v:
        with pytest.raises(vramswap.OutOfMemoryError):
            v.alloc(8 * page)
        with pytest.raises(vramswap.OutOfRangeError):
            v.fault(3 * page, 2 * page)
        with pytest.raises(vramswap.NotPinnedError):
            v.unpin(0, page)
        with pytest.raises(vramswap.InvalidArgumentError):
            v.fault(0, 0)
        assert v.fault(0, page) is not None
        with pytest.raises(vramswap.BusyError):
            v.close()
        assert not v.closed
        v.unpin(0, page)


def test_python_side_validation_raises_invalid_argument():
    with pytest.raises(vramswap.InvalidArgumentError) as ei:
        vramswap.Device("sim", 0, no_such_key=1)
    assert "no_such_key" in str(ei.value)
    assert isinstance(ei.value, ValueError)
