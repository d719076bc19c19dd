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


def missing_extra(error: ModuleNotFoundError) -> str | None:
    """What to install for `error`, or None when the missing module is not an optional one
    (then it is a bug or a broken install, and its traceback should show)."""
    module = (error.name or "").partition(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    return f"{module} is not installed: it comes with the `{extra}` extra " + (
        f"(pip install 'spillover[{extra}]', or `make setup` for everything)"
    )
