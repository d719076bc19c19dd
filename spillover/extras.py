"""Which install extra provides each optional third-party package, for errors that say what to
install. The controller image installs `spillover[controller]` only (see the Dockerfile)."""

from __future__ import annotations

EXTRA_OF_MODULE = {
    "numpy": "model",
    "onnx": "model",
    "onnxruntime": "model",
    "pytriton": "local",
    "tritonclient": "local",
    "google": "local",
    "flask": "local",
    "aiohttp": "local",
    "hdrh": "local",
    "matplotlib": "plot",
}
"""Top-level import name -> the extra of pyproject.toml that installs it."""


def missing_module(error: ModuleNotFoundError) -> tuple[str, str] | None:
    """The optional package `error` misses and the extra that installs it; None when the module
    is not an optional one (a bug or a broken install, whose traceback should show)."""
    module = (error.name or "").partition(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    return None if extra is None else (module, extra)


def advice(command: str, needs: str | None, error: ModuleNotFoundError) -> str | None:
    """What to tell a user whose `spillover <command>` (of an area needing the extra `needs`)
    stopped at `error`; None when `error` is not about an optional package."""
    missing = missing_module(error)
    if missing is None:
        return None
    module, extra = missing
    extras = sorted({extra} | ({needs} if needs else set()))
    return (
        f"`spillover {command}` needs {module}, from the `{extra}` extra, which this install "
        f"lacks: pip install 'spillover[{','.join(extras)}]' (or `make setup` for everything)"
    )
