"""Starting the harness in a sandbox, and talking to it with deadlines.

The sandbox is a bubblewrap (``bwrap``) container: new user, PID, network, IPC and UTS
namespaces (no network at all), a read-only root holding only ``/usr``, the Python install
and its site-packages, and ``/grader`` (the harness, :mod:`protocol` and a copy of the
allowed ``vislearn`` modules, never the repository); fresh size-limited tmpfs for ``/tmp``
and the working directory ``/sandbox``; GPU device files only when grading on CUDA. The
harness then limits itself and blocks process creation (see :mod:`harness`).

Without bubblewrap (``--no-sandbox``) the harness runs as a plain process in a fresh temporary
directory with the same limits and seccomp filter, but it can read whatever the instructor's
account can: use it only for trusted code.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import select
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from vislearn.grader import protocol

# The vislearn modules a submission may import: everything else of vislearn stays outside.
SANDBOX_MODULES = ("__init__", "device", "testing")
# Names no submission may use, whatever the exercise: they would lift the GPU memory cap. The
# harness stubs them after setting the cap, and the scan reports them. (Code that loads the
# CUDA runtime itself with ctypes can still allocate beyond the cap: see the README.)
ALWAYS_FORBIDDEN = (
    "torch.cuda.set_per_process_memory_fraction",
    "torch.cuda.memory.set_per_process_memory_fraction",
    "torch._C._cuda_setMemoryFraction",
)
# Data sets that ship inside installed packages, by package: training exercises hold out part
# of them (README "Modules and training"), so the sandbox sees each folder as an empty tmpfs.
HIDDEN_DATA = {"sklearn": ("datasets/data", "datasets/images")}
STARTUP_TIMEOUT = 120.0  # seconds for Python and torch to start: longer is a grader problem
SANDBOX_UID = 65534  # the student's code runs as "nobody" inside the sandbox


@dataclass(frozen=True)
class Limits:
    """Limits per submission and per call. Times are wall-clock seconds."""

    call_timeout: float = 10.0
    setup_timeout: float = 60.0
    submission_timeout: float = 600.0
    cpu_seconds: int = 601  # per sandbox process, all calls together
    memory_bytes: int | None = 4 << 30  # host memory (RLIMIT_DATA)
    output_bytes: int = 1 << 20  # printed output kept per sandbox process
    tmpfs_bytes: int = 64 << 20  # each of /tmp and /sandbox
    max_restarts: int = 3
    threads: int = 1
    gpu_fraction: float | None = None


class SandboxError(Exception):
    """The sandbox failed a request: ``kind`` is timeout, crash, protocol or infrastructure."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def prepare_runtime(directory: Path) -> Path:
    """Fill ``directory`` with what the sandbox mounts at ``/grader``."""
    package = Path(__file__).resolve().parent
    for name in ("harness.py", "protocol.py"):
        shutil.copy(package / name, directory / name)
    (directory / "lib" / "vislearn").mkdir(parents=True)
    for module in SANDBOX_MODULES:
        shutil.copy(
            package.parent / f"{module}.py", directory / "lib" / "vislearn" / f"{module}.py"
        )
    return directory


def bwrap_problem() -> str | None:
    """Why bubblewrap cannot be used here, or ``None`` if it can."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed"
    probe = subprocess.run(
        ["bwrap", "--unshare-all", "--unshare-user", "--ro-bind", "/", "/", "true"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        return f"bwrap cannot create a sandbox here: {probe.stderr.strip()}"
    return None


def _python_roots(course: Path) -> list[str]:
    """Directories of the Python install: its prefixes and site-packages, and ``PYTHONPATH``
    entries that are neither in the course or this repository nor hold ``vislearn``. Never
    other ``sys.path`` entries: one of them is often the current directory."""
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)}
    prefixes.add(str(Path(sys.executable).resolve().parents[1]))
    private = [str(course.resolve()), str(Path(__file__).resolve().parents[3])]
    extra = [*site.getsitepackages(), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    roots: list[str] = []
    for path in [*sorted(prefixes), *(p for p in extra if p and os.path.isabs(p))]:
        path = os.path.realpath(path)
        covered = any(path == r or path.startswith(r + os.sep) for r in ["/usr", *roots])
        reveals = any(path == p or path.startswith(p + os.sep) for p in private) or (
            os.path.isdir(os.path.join(path, "vislearn"))
        )
        if os.path.isdir(path) and not covered and (path in prefixes or not reveals):
            roots.append(path)
    return roots


def hidden_data() -> list[str]:
    """The folders of :data:`HIDDEN_DATA` that this Python environment has."""
    folders = []
    for package, names in HIDDEN_DATA.items():
        spec = importlib.util.find_spec(package)
        for base in (spec.submodule_search_locations or []) if spec else []:
            folders += [f for f in (os.path.join(base, n) for n in names) if os.path.isdir(f)]
    return folders


def command(runtime: Path, limits: Limits, *, sandboxed: bool, gpu: bool, course: Path) -> list:
    """The command line that starts the harness (inside bubblewrap when ``sandboxed``)."""
    limits_json = json.dumps({
        "cpu_seconds": limits.cpu_seconds,
        "memory_bytes": limits.memory_bytes,
        "output_bytes": limits.output_bytes,
        "threads": 64 + 4 * limits.threads if sandboxed else None,  # RLIMIT_NPROC, per userns
    })  # fmt: skip
    python = [sys.executable, "-I", "-B"]  # the venv's own link: it finds pyvenv.cfg
    if not sandboxed:
        return [*python, str(runtime / "harness.py"), limits_json]
    args = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
            "--new-session", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--clearenv",
            "--ro-bind", "/usr", "/usr"]  # fmt: skip
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    args += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    # The fresh /tmp first: a Python environment that lives under /tmp (a CI checkout, say)
    # is bound on top of it below, instead of being hidden by it.
    for mount in ("/tmp", "/sandbox"):
        args += ["--size", str(limits.tmpfs_bytes), "--tmpfs", mount]
    roots = _python_roots(course)
    for root in roots:
        args += ["--ro-bind", root, root]
    for folder in hidden_data():
        args += ["--size", "4096", "--tmpfs", folder]
    installed = str(Path(__file__).resolve().parents[1])  # this vislearn, if inside a root
    if any(installed.startswith(root + os.sep) for root in roots):
        args += ["--ro-bind", str(runtime / "lib" / "vislearn"), installed]
    args += ["--ro-bind", str(runtime), "/grader", "--proc", "/proc", "--dev", "/dev"]
    if gpu:
        for device in sorted(glob.glob("/dev/nvidia*")):
            args += ["--dev-bind", device, device]
        args += ["--ro-bind-try", "/sys", "/sys"]
    args += ["--chdir", "/sandbox", "--remount-ro", "/"]
    env = {"PATH": "/usr/bin:/bin", "HOME": "/sandbox", "LANG": "C.UTF-8",
           "OMP_NUM_THREADS": str(limits.threads), "MKL_NUM_THREADS": str(limits.threads),
           "MALLOC_ARENA_MAX": "2", "PYTHONHASHSEED": "0"}  # fmt: skip
    for name in ("LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "VISLEARN_DEVICE"):
        if name in os.environ:
            env[name] = os.environ[name]
    for name, value in env.items():
        args += ["--setenv", name, value]
    return [*args, "--", *python, "/grader/harness.py", limits_json]


def self_test(argv: list[str], course: Path) -> list[str]:
    """What the sandbox started by ``argv`` (a :func:`command`) lets through that it should
    not: an empty list when it is sound."""
    argv = list(argv)
    argv[-1] = "--self-test"  # in place of the limits
    package = Path(__file__).resolve().parents[1]
    argv += [str(course.resolve() / name) for name in ("solutions", "submitted", "gradebook.db")]
    argv += [str(package.parents[1] / "solutions"), str(package / "attention.py"),
             str(package / "softmax.py")]  # fmt: skip
    argv += [str(next(Path(f).iterdir())) for f in hidden_data() if any(Path(f).iterdir())]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    try:
        report = json.loads(result.stdout)
    except ValueError:
        return [f"the self-test did not run: {result.stderr.strip()[-500:]}"]
    return [check for check, leaked in report.items() if leaked]


class Sandbox:
    """One running harness: send it a message, wait for its answer, kill it."""

    def __init__(self, argv: list[str], cwd: Path | None):
        self._stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=cwd,
            env=None if cwd is None else _plain_env(cwd),
            start_new_session=True,
        )
        self._in = self.process.stdin.fileno()
        self._out = self.process.stdout.fileno()
        os.set_blocking(self._in, False)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, message: dict, deadline: float) -> None:
        data = memoryview(protocol.pack(message))
        while data:
            select.select([], [self._in], [], _remaining(deadline, "send"))
            try:
                data = data[os.write(self._in, data) :]
            except BlockingIOError:
                continue
            except BrokenPipeError:
                raise SandboxError("crash", self.how_it_ended()) from None

    def _read(self, size: int, deadline: float) -> bytes:
        data = bytearray()
        while len(data) < size:
            if not select.select([self._out], [], [], _remaining(deadline, "answer"))[0]:
                continue
            chunk = os.read(self._out, min(size - len(data), 1 << 20))
            if not chunk:
                raise SandboxError("crash", self.how_it_ended())
            data += chunk
        return bytes(data)

    def receive(self, deadline: float) -> dict:
        try:
            length = protocol.frame_length(self._read(protocol.HEADER.size, deadline))
            return protocol.unpack(self._read(length, deadline))
        except protocol.ProtocolError as error:
            raise SandboxError("protocol", f"the sandbox sent malformed data ({error})") from None

    def how_it_ended(self) -> str:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "the sandbox closed its connection"
        if code < 0 or code > 128:  # killed by a signal (bwrap reports 128 + signal)
            number = -code if code < 0 else code - 128
            name = signal.Signals(number).name if number in signal.valid_signals() else number
            hint = {"SIGXCPU": " (CPU-time limit)", "SIGKILL": " (killed: a limit was reached)"}
            return f"the sandbox process was killed by {name}{hint.get(name, '')}"
        return f"the sandbox process exited with code {code}"

    def stderr_tail(self) -> str:
        self._stderr.seek(0, os.SEEK_END)
        self._stderr.seek(max(0, self._stderr.tell() - 2000))
        return self._stderr.read().decode("utf-8", "replace").strip()

    def kill(self) -> None:
        if self.alive:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self._stderr):
            try:
                stream.close()
            except OSError:
                pass

    def stop(self) -> None:
        """Ask the harness to end, then make sure it has."""
        if self.alive:
            try:
                self.send({"op": "stop"}, time.monotonic() + 2)
                self.process.wait(timeout=2)
            except (SandboxError, subprocess.TimeoutExpired):
                pass
        self.kill()


def _remaining(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise SandboxError("timeout", f"no {what} before the deadline")
    return left


def _plain_env(home: Path) -> dict:
    """The environment of an unsandboxed harness: nothing of the instructor's but the basics."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
           "MALLOC_ARENA_MAX": "2", "PYTHONHASHSEED": "0"}  # fmt: skip
    for name in ("LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "VISLEARN_DEVICE"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def limits_dict(limits: Limits) -> dict:
    """The limits as plain data (for records and messages)."""
    return asdict(limits)
