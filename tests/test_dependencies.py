"""pylti1p3 must come from the maintained fork, never the original package."""

from importlib import metadata

import pylti1p3


def test_pylti1p3_is_the_maintained_fork():
    version = metadata.version("pylti1p3next")
    assert version.startswith("2.0.") and tuple(map(int, version.split("."))) >= (2, 0, 2)
    assert pylti1p3.__version__ == version
    files = metadata.files("pylti1p3next") or []
    assert any(str(f).startswith("pylti1p3/") for f in files)


def test_original_pylti1p3_is_not_installed():
    try:
        metadata.version("pylti1p3")
    except metadata.PackageNotFoundError:
        return
    raise AssertionError("the original pylti1p3 distribution is installed beside the fork")
