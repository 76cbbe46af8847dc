"""The built wheel installs bucketcore.backends, and no top-level ``backends``."""

from __future__ import annotations

import site
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_installs_and_imports_every_backend(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("bucketcore-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [name for name in names if name.startswith("backends/")]
    backend_modules = sorted(
        name[: -len(".py")].replace("/", ".")
        for name in names
        if name.startswith("bucketcore/backends/") and name.endswith(".py")
    )
    assert "bucketcore.backends.__init__" in backend_modules
    for script in (ROOT / "backends" / "lua").glob("*.lua"):
        assert f"bucketcore/backends/lua/{script.name}" in names
    built_fast_path = any(name.startswith("bucketcore/_fastpath.") for name in names)
    assert built_fast_path or not IN_CI  # CI has a compiler: the C path must be in the wheel
    assert "bucketcore/_fastpath.pyi" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    # The backends' own dependencies come from this test's environment, read
    # after the fresh venv's site-packages (so bucketcore itself is the wheel's).
    dependencies = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    pth = dependencies / "site-packages" / "test-dependencies.pth"
    pth.write_text("\n".join(site.getsitepackages()) + "\n")
    modules = [name.removesuffix(".__init__") for name in backend_modules]
    script = (
        "import importlib, bucketcore, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "assert 'site-packages' in bucketcore.__file__ and str(sys.prefix) in bucketcore.__file__\n"
        "try:\n    import backends\nexcept ImportError:\n    pass\n"
        "else:\n    raise SystemExit('a top-level backends module is importable')\n"
        "from bucketcore.memory import fast_path_available\n"
        "print(bucketcore.__version__, fast_path_available())\n"
    )
    result = subprocess.run(
        [str(python), "-c", script], check=True, capture_output=True, text=True, cwd=tmp_path
    )
    assert result.stdout.split() == [bucketcore_version(), str(built_fast_path)]

    # Started from the checkout's root, ./bucketcore shadows the installed
    # package (as `gunicorn ... --chdir examples` does not, but `python app.py`
    # at the root does): its backends must still be found (docs/design.md §1).
    from_checkout = (
        "import importlib, bucketcore\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"assert bucketcore.__file__.startswith({str(ROOT)!r}), bucketcore.__file__\n"
        "import bucketcore.backends as b\n"
        f"assert b.__file__.startswith({str(ROOT / 'backends')!r}), b.__file__\n"
    )
    subprocess.run([str(python), "-c", from_checkout], check=True, cwd=ROOT)


def bucketcore_version() -> str:
    import bucketcore

    return bucketcore.__version__
