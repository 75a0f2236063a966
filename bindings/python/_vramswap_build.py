"""In-tree PEP 517 build backend of the vramswap Python package.

Note [Offline pip]
~~~~~~~~~~~~~~~~~~
``pip install bindings/python`` must work without a network, in a plain venv and
in a ``--system-site-packages`` one. With setuptools as the backend it did not:
build isolation downloads ``setuptools``, and a plain venv without the ``wheel``
package fails with ``invalid command 'bdist_wheel'``. The package is pure Python
(ctypes), so building its wheel needs no tool at all: this backend, named in
pyproject.toml with ``backend-path = ["."]`` and ``requires = []``, writes the
wheel with the standard library alone (zipfile, hashlib), so pip's isolated
build environment needs nothing installed.

It offers the PEP 517 hooks (build_wheel, build_sdist) and PEP 660's
build_editable (a .pth file pointing at this directory).

VRAMSWAP_BUNDLE_LIBRARY=<path to a built libvramswap.so> copies the library into
the wheel as vramswap/libvramswap.so.<major> (the first place _lib.py looks
after VRAMSWAP_LIBRARY) and tags the wheel for this platform. A relative path is
taken from the directory pip was started in (pip runs this backend from the
package directory): the shell's $PWD, then the current directory, then the
repository root.
"""

import base64
import hashlib
import io
import os
import re
import sysconfig
import tarfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ABI_MAJOR = 0  # keep in step with vramswap/_lib.py ABI_MAJOR
PACKAGE_FILES = re.compile(r".*\.py$|^py\.typed$")


def _project():
    """name, version, description, requires-python and packages from pyproject.toml."""
    with open(os.path.join(HERE, "pyproject.toml"), "rb") as f:
        raw = f.read()
    try:
        import tomllib
        data = tomllib.loads(raw.decode())
        proj = data["project"]
        packages = data.get("tool", {}).get("vramswap", {}).get("packages", ["vramswap"])
        return (proj["name"], proj["version"], proj.get("description", ""),
                proj.get("requires-python", ""), packages)
    except ImportError:  # Python < 3.11: the few keys we need, by pattern
        text = raw.decode()

        def key(k):
            m = re.search(r'^%s\s*=\s*"([^"]*)"' % re.escape(k), text, re.M)
            return m.group(1) if m else ""
        return key("name"), key("version"), key("description"), key("requires-python"), ["vramswap"]


def _bundle():
    path = os.environ.get("VRAMSWAP_BUNDLE_LIBRARY")
    if not path:
        return None
    if os.path.isabs(path):
        tries = [path]
    else:
        bases = [os.environ.get("PWD"), os.getcwd(), os.path.dirname(os.path.dirname(HERE))]
        tries = [os.path.join(b, path) for b in bases if b]
    for p in tries:
        if os.path.isfile(p):
            return os.path.realpath(p)
    raise SystemExit("VRAMSWAP_BUNDLE_LIBRARY=%s: no such file (tried %s)" % (path, ", ".join(tries)))


def _metadata(name, version, description, requires_python):
    lines = ["Metadata-Version: 2.1", "Name: %s" % name, "Version: %s" % version,
             "Summary: %s" % description]
    if requires_python:
        lines.append("Requires-Python: %s" % requires_python)
    lines += ["Classifier: Programming Language :: Python :: 3",
              "Classifier: Operating System :: POSIX :: Linux"]
    readme = os.path.join(HERE, "README.md")
    body = ""
    if os.path.isfile(readme):
        lines.append("Description-Content-Type: text/markdown")
        with open(readme, encoding="utf-8") as f:
            body = f.read()
    return "\n".join(lines) + "\n\n" + body


def _hash(data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "sha256=%s" % digest


class _Wheel:
    def __init__(self, directory, name, version, tag, purelib):
        self.dist = "%s-%s" % (name.replace("-", "_"), version)
        self.filename = "%s-%s.whl" % (self.dist, tag)
        self.path = os.path.join(directory, self.filename)
        self.tag = tag
        self.purelib = purelib
        self.records = []
        self.zip = zipfile.ZipFile(self.path, "w", zipfile.ZIP_DEFLATED)

    def add(self, arcname, data, mode=0o644):
        info = zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = (0o100000 | mode) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        self.zip.writestr(info, data)
        self.records.append("%s,%s,%d" % (arcname, _hash(data), len(data)))

    def finish(self, metadata):
        info = self.dist + ".dist-info/"
        self.add(info + "METADATA", metadata.encode())
        self.add(info + "WHEEL", ("Wheel-Version: 1.0\nGenerator: vramswap _vramswap_build\n"
                                  "Root-Is-Purelib: %s\nTag: %s\n"
                                  % ("true" if self.purelib else "false", self.tag)).encode())
        record = "\n".join(self.records + [info + "RECORD,,"]) + "\n"
        self.zip.writestr(zipfile.ZipInfo(info + "RECORD", date_time=(2020, 1, 1, 0, 0, 0)), record)
        self.zip.close()
        return self.filename


def _package_files(packages):
    for pkg in packages:
        root = os.path.join(HERE, *pkg.split("."))
        for name in sorted(os.listdir(root)):
            if PACKAGE_FILES.match(name) and os.path.isfile(os.path.join(root, name)):
                yield "%s/%s" % (pkg.replace(".", "/"), name), os.path.join(root, name)


# ---------------------------------------------------------------- PEP 517 / 660 hooks

def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name, version, description, requires_python, packages = _project()
    lib = _bundle()
    if lib:
        plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
        tag = "py3-none-%s" % plat
    else:
        tag = "py3-none-any"
    w = _Wheel(wheel_directory, name, version, tag, purelib=not lib)
    for arcname, path in _package_files(packages):
        with open(path, "rb") as f:
            w.add(arcname, f.read())
    if lib:
        with open(lib, "rb") as f:
            w.add("vramswap/libvramswap.so.%d" % ABI_MAJOR, f.read(), mode=0o755)
    return w.finish(_metadata(name, version, description, requires_python))


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    name, version, description, requires_python, _ = _project()
    w = _Wheel(wheel_directory, name, version, "py3-none-any", purelib=True)
    w.add("__editable__.%s.pth" % name, (HERE + "\n").encode())
    return w.finish(_metadata(name, version, description, requires_python))


def build_sdist(sdist_directory, config_settings=None):
    name, version, _, _, packages = _project()
    base = "%s-%s" % (name, version)
    filename = base + ".tar.gz"
    files = ["pyproject.toml", "README.md", "_vramswap_build.py"]
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for rel in files:
            if os.path.isfile(os.path.join(HERE, rel)):
                tar.add(os.path.join(HERE, rel), arcname="%s/%s" % (base, rel))
        for arcname, path in _package_files(packages):
            tar.add(path, arcname="%s/%s" % (base, arcname))
        pkg_info = ("Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version)).encode()
        ti = tarfile.TarInfo("%s/PKG-INFO" % base)
        ti.size = len(pkg_info)
        tar.addfile(ti, io.BytesIO(pkg_info))
    return filename
