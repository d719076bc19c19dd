"""Run the `tritonserver` binary that ships in the nvidia-pytriton wheel on CPU.

The wheel carries a real Triton build with the Python backend. Three things make
it run outside PyTriton: its bundled libraries on LD_LIBRARY_PATH, the Python
backend stub built for the running interpreter placed in the backend directory,
and the interpreter's own libpython first on the library path so the stub embeds
the same Python (and so the same virtualenv packages) the CLI runs on.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import sys
import sysconfig
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from spillover.drivers.processes import log_tail
from spillover.errors import PermanentError
from spillover.model.contract import CAPACITY_VARIABLE, MODEL_NAME

STUB_NAME = "triton_python_backend_stub"
ERROR_LINE = re.compile(r"^(E\d{4} |error: )")
"""Triton's error log lines (glog's E<mmdd> prefix) and its final fatal message."""
CPU_ONLY_NOISE = "CudaDriverHelper has not been initialized"
"""Triton logs this as an error on every start without a GPU."""
PYTHON_BACKEND_MODEL = Path(__file__).parents[1] / "serving" / "triton_python_model.py"
"""Runs inside Triton's Python backend stub, so it is copied, never imported here."""


class TritonNotInstalledError(PermanentError):
    """The tritonserver binary or a piece it needs is missing: reinstall, don't retry."""


@dataclass(frozen=True)
class TritonInstall:
    """Where the pieces of the wheel's Triton build live."""

    binary: Path
    """The tritonserver executable."""
    library_dir: Path
    """nvidia_pytriton.libs: the shared libraries the binary was linked against."""
    python_backend_dir: Path
    """libtriton_python.so and triton_python_backend_utils.py."""
    stub: Path
    """The Python backend stub built for this interpreter's major.minor version."""


@dataclass(frozen=True)
class ReplicaPorts:
    """The loopback ports one Triton replica listens on."""

    http: int
    grpc: int
    metrics: int


def find_triton() -> TritonInstall:
    """Locate tritonserver and its Python backend in the installed nvidia-pytriton wheel."""
    try:
        import pytriton
    except ImportError as error:
        raise TritonNotInstalledError(
            "nvidia-pytriton is not installed: it comes with the `local` extra; run `make setup` "
            "(or pip install -e '.[local]')"
        ) from error
    package_dir = Path(pytriton.__file__).parent
    server_dir = package_dir / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    install = TritonInstall(
        binary=server_dir / "bin" / "tritonserver",
        library_dir=package_dir.parent / "nvidia_pytriton.libs",
        python_backend_dir=server_dir / "backends" / "python",
        stub=server_dir / "python_backend_stubs" / version / STUB_NAME,
    )
    for field_name, path in vars(install).items():
        if not path.exists():
            raise TritonNotInstalledError(
                f"nvidia-pytriton is missing its {field_name} at {path} "
                f"(Python {version} needs a matching backend stub)"
            )
    return install


def prepare_backend_dir(install: TritonInstall, backends_dir: Path) -> Path:
    """Assemble `<backends_dir>/python` with the backend library and this Python's stub.

    A file that differs from the installed one (another Python, a newer wheel) is
    replaced by rename, so replicas running the old copy keep their open file.
    """
    python_dir = backends_dir / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    sources = [install.stub, *sorted(install.python_backend_dir.glob("*.so"))]
    sources += sorted(install.python_backend_dir.glob("*.py"))
    for source in sources:
        target = python_dir / source.name
        if not _same_file_contents(source, target):
            staged = target.with_name(target.name + ".new")
            shutil.copy2(source, staged)
            os.replace(staged, target)
    return backends_dir


def _same_file_contents(source: Path, target: Path) -> bool:
    """Cheap identity: copy2 keeps the modification time, so size + mtime tell."""
    if not target.exists():
        return False
    a, b = source.stat(), target.stat()
    return (a.st_size, a.st_mtime_ns) == (b.st_size, b.st_mtime_ns)


def prepare_model_repository(
    repository: Path, model_onnx: Path, model_instances: int, model_threads: int
) -> None:
    """A Python-backend repository in `repository` that serves the built ONNX file.

    model_instances and model_threads: Triton model instances per replica and ONNX
    Runtime threads per instance.
    """
    # onnx and tritonclient (the `local` extra) only when a replica is prepared: the
    # controller image imports this driver without them.
    from spillover.model.triton_config import render_python_backend_config

    model_dir = repository / MODEL_NAME
    version_dir = model_dir / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.pbtxt").write_text(
        render_python_backend_config(
            sys.prefix, intra_op_threads=model_threads, instances=model_instances
        )
    )
    shutil.copyfile(PYTHON_BACKEND_MODEL, version_dir / "model.py")
    link = version_dir / "model.onnx"
    link.unlink(missing_ok=True)
    link.symlink_to(model_onnx.resolve())


def server_environment(install: TritonInstall, capacity_rps: float | None = None) -> dict[str, str]:
    """The environment a replica runs in: this interpreter's libpython first, then the
    wheel's; and the capacity its model.py holds it to (none: as fast as it goes).

    The capacity travels in the environment, not config.pbtxt, because one model
    repository serves every pool of a stack.
    """
    python_lib_dir = sysconfig.get_config_var("LIBDIR") or ""
    paths = [python_lib_dir, str(install.library_dir), os.environ.get("LD_LIBRARY_PATH", "")]
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = ":".join(path for path in paths if path)
    env.pop(CAPACITY_VARIABLE, None)  # the pool decides, never the caller's shell
    if capacity_rps is not None:
        env[CAPACITY_VARIABLE] = repr(float(capacity_rps))
    return env


def shm_prefix(replica_name: str, run_dir: Path) -> str:
    """The Python backend's shared-memory name prefix for one replica of one run directory.

    Unique per run directory, so cleaning up after one stack never touches another's.
    """
    run_id = hashlib.sha1(str(run_dir).encode()).hexdigest()[:10]
    return f"spillover_{run_id}_{replica_name}_"


def server_command(
    install: TritonInstall,
    model_repository: Path,
    backends_dir: Path,
    ports: ReplicaPorts,
    replica_name: str,
    run_dir: Path,
    host: str = "127.0.0.1",
) -> list[str]:
    """The tritonserver command line for one replica bound to loopback."""
    return [
        str(install.binary),
        f"--model-repository={model_repository}",
        # Load the repository once and never change it: no polling, and the model control
        # API (load/unload through /v2/repository) is refused, even past the gateway.
        "--model-control-mode=none",
        f"--backend-directory={backends_dir}",
        f"--http-address={host}",
        f"--http-port={ports.http}",
        f"--grpc-address={host}",
        f"--grpc-port={ports.grpc}",
        f"--metrics-address={host}",
        f"--metrics-port={ports.metrics}",
        # Queue-time quantiles (nv_inference_queue_summary_us): the controller's p99 signal.
        "--metrics-config=summary_latencies=true",
        "--allow-gpu-metrics=false",
        "--strict-readiness=true",
        # A replica being stopped has already been drained by the gateway.
        "--exit-timeout-secs=5",
        f"--backend-config=python,shm-region-prefix-name={shm_prefix(replica_name, run_dir)}",
    ]


def remove_shared_memory(
    replica_name: str, run_dir: Path, shm_dir: Path = Path("/dev/shm")
) -> None:
    """Delete the shm regions a replica leaves behind when it is SIGKILLed."""
    for region in shm_dir.glob(shm_prefix(replica_name, run_dir) + "*"):
        region.unlink(missing_ok=True)


def startup_errors(log: Path, lines: int = 12) -> str:
    """Why a replica failed to start: Triton's error lines, else the log's tail.

    Triton ends a failed start with its settings table, so a plain tail hides the cause.
    """
    tail = log_tail(log, lines=400).splitlines()
    errors = [line for line in tail if ERROR_LINE.match(line) and CPU_ONLY_NOISE not in line]
    return "\n".join((errors or tail)[-lines:])


def is_ready(port: int, timeout: float = 0.5) -> bool:
    """Triton's own readiness on 127.0.0.1:`port`: server up and every model loaded.

    Anything but an HTTP 200 is not ready, a garbled answer too: with nothing listening
    on a port in the ephemeral range, the probe's socket can be given that very port
    and connect to itself (TCP simultaneous open), and then reads its own request back.
    """
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/v2/health/ready", timeout=timeout
        ) as response:
            return response.status == 200
    except (OSError, http.client.HTTPException):  # URLError is an OSError
        return False
