"""Build hook: bundle a built libvramswap into the package when asked.

Everything else is declared in pyproject.toml. With VRAMSWAP_BUNDLE_LIBRARY set
to the path of a built libvramswap.so, the library is copied into the built
package as vramswap/libvramswap.so.<major> (the first place vramswap/_lib.py
looks after VRAMSWAP_LIBRARY) and the wheel is tagged for this platform.
Nothing is copied into the source tree.
"""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

ABI_MAJOR = 0  # keep in step with vramswap/_lib.py ABI_MAJOR


def _bundled():
    path = os.environ.get("VRAMSWAP_BUNDLE_LIBRARY")
    if path and not os.path.isfile(path):
        raise SystemExit("VRAMSWAP_BUNDLE_LIBRARY=%s: no such file" % path)
    return path


class BuildPy(build_py):
    def run(self):
        super().run()
        lib = _bundled()
        if lib:
            dest = os.path.join(self.build_lib, "vramswap", "libvramswap.so.%d" % ABI_MAJOR)
            shutil.copyfile(os.path.realpath(lib), dest)
            os.chmod(dest, 0o755)


class MaybeBinaryDistribution(Distribution):
    def has_ext_modules(self):
        # A bundled shared library makes the wheel platform-specific.
        return bool(_bundled())


setup(cmdclass={"build_py": BuildPy}, distclass=MaybeBinaryDistribution)
