"""Build hook: compile the Cython sources in ext/ into the `worker` package when present."""

from __future__ import annotations

from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent


def extensions() -> list[object]:
    sources = sorted((HERE / "ext").glob("*.pyx"))
    if not sources:
        return []
    from Cython.Build import cythonize
    from setuptools import Extension

    # Each ext/NAME.pyx becomes worker._NAME; the pure-Python twin stays importable
    # when the extension is absent (uvicorn's auto-choice habit).
    modules = [
        Extension(
            f"worker._{src.stem}",
            [str(src.relative_to(HERE))],
            include_dirs=["ext"],  # the C headers the sources include (structural.h)
            depends=[str(h.relative_to(HERE)) for h in sorted((HERE / "ext").glob("*.h"))],
            extra_compile_args=["-O3"],
        )
        for src in sources
    ]
    return list(cythonize(modules, language_level=3, quiet=True))


setup(ext_modules=extensions())
