"""transformers' own common tests, from the source distribution of the installed transformers version.

transformers holds every model to one contract, written as test mixins in its repository: `ModelTesterMixin`
(tests/test_modeling_common.py), `ConfigTester` (tests/test_configuration_common.py) and `ProcessorTesterMixin`
(tests/test_processing_common.py). They are third-party code, so they are not copied into this repository: the first
test run fetches the sdist of the installed version from the package index (`pip download --no-binary :all:`,
about 10 MB), unpacks those three files into a cache folder, adds our stand-ins for the helpers the sdist lacks
(`tests/transformers_standins/`) and imports them from there as the package `transformers_common_tests`.

Cache folder: `$TSGV_TRANSFORMERS_TESTS_CACHE`, else `~/.cache/tsgv/transformers-<version>-tests`. Offline, point
`$TSGV_TRANSFORMERS_SDIST` at a downloaded `transformers-<version>.tar.gz`.
"""

import importlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import transformers

PACKAGE = "transformers_common_tests"
COMMON_FILES = ("test_modeling_common.py", "test_configuration_common.py", "test_processing_common.py")
STANDINS = Path(__file__).resolve().parent / "transformers_standins"


class ContractUnavailable(RuntimeError):
    """The sdist could not be had (no package index and no `$TSGV_TRANSFORMERS_SDIST`)."""


def cache_folder() -> Path:
    """Where the unpacked common tests of the installed transformers version live."""
    default = Path.home() / ".cache" / "tsgv" / f"transformers-{transformers.__version__}-tests"
    return Path(os.environ.get("TSGV_TRANSFORMERS_TESTS_CACHE", default))


def fetch_sdist(into: Path) -> Path:
    """The path of `transformers-<installed version>.tar.gz`: `$TSGV_TRANSFORMERS_SDIST`, or downloaded into `into`."""
    given = os.environ.get("TSGV_TRANSFORMERS_SDIST")
    if given:
        return Path(given)
    version = transformers.__version__
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
    done = subprocess.run([*command, f"transformers=={version}", "-d", str(into)], capture_output=True, text=True)
    found = sorted(into.glob(f"transformers-{version}.tar.gz"))
    if done.returncode != 0 or not found:
        raise ContractUnavailable(
            f"could not download the transformers {version} sdist for its common tests "
            f"(pip said: {done.stderr.strip()[-300:] or done.returncode}); set TSGV_TRANSFORMERS_SDIST to the file"
        )
    return found[0]


def unpack(sdist: Path, folder: Path) -> None:
    """The three common test files of `sdist`, with our stand-ins beside them, as the package `folder/PACKAGE`."""
    package = folder / PACKAGE
    package.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist) as archive:
        for name in COMMON_FILES:
            member = archive.getmember(f"{sdist.name.removesuffix('.tar.gz')}/tests/{name}")
            (package / name).write_bytes(archive.extractfile(member).read())
    (package / "__init__.py").write_text("")
    for relative in ("exporters/test_export.py", "generation/test_utils.py", "utils/test_configuration_utils.py"):
        target = package / relative
        target.parent.mkdir(exist_ok=True)
        (target.parent / "__init__.py").write_text("")
        shutil.copy(STANDINS / relative, target)
    # test_processing_common.py puts `<its folder>/../utils` on sys.path for this helper
    (folder / "utils").mkdir(exist_ok=True)
    shutil.copy(STANDINS / "fetch_hub_objects_for_ci.py", folder / "utils" / "fetch_hub_objects_for_ci.py")


def common_tests():
    """The modules (test_modeling_common, test_configuration_common, test_processing_common), fetched once."""
    folder = cache_folder()
    marker = folder / "complete"
    if not marker.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as download:
            unpack(fetch_sdist(Path(download)), folder)
        marker.write_text(transformers.__version__)
    else:  # our stand-ins may have changed since the cache was filled
        unpack_standins_only(folder)
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return tuple(importlib.import_module(f"{PACKAGE}.{name.removesuffix('.py')}") for name in COMMON_FILES)


def unpack_standins_only(folder: Path) -> None:
    """Refresh the stand-ins in an already filled cache folder."""
    package = folder / PACKAGE
    for relative in ("exporters/test_export.py", "generation/test_utils.py", "utils/test_configuration_utils.py"):
        shutil.copy(STANDINS / relative, package / relative)
    shutil.copy(STANDINS / "fetch_hub_objects_for_ci.py", folder / "utils" / "fetch_hub_objects_for_ci.py")
