"""Starting the harness in a sandbox, and talking to it with deadlines.

The harness starts once per grading process, thread and setting as a *zygote* that imports
torch and forks a fresh sandbox for each submission (:class:`Zygote`; see
:func:`harness.serve` and :func:`harness.isolate` for what each fork gets of its own).

The zygote runs in a bubblewrap (``bwrap``) container: new user, PID, network, IPC and UTS
namespaces (no network at all), a read-only root holding only the system's libraries
(``/usr/lib``), the Python interpreter with its standard library, the packages a submission
may import (:data:`SANDBOX_DISTRIBUTIONS` and what they require: every other package of the
environment, and the data sets packages bundle, are not there), and ``/grader`` (the
harness, :mod:`protocol`, :mod:`guard` and a copy of the allowed ``vislearn`` modules, never
the repository); fresh size-limited tmpfs for ``/tmp`` and the working directory
``/sandbox``; GPU device files only when grading on CUDA. Each fork then limits itself and
blocks process creation, namespaces and mounts (see :mod:`harness`).

Without bubblewrap (``--no-sandbox``) each fork is a plain process in a fresh temporary
directory with the same limits and seccomp filter, but it can read whatever the instructor's
account can: use it only for trusted code.
"""

from __future__ import annotations

import glob
import importlib.metadata
import json
import os
import select
import shutil
import signal
import site
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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
# The packages a submission may import, with everything they require (on a CUDA machine,
# torch's CUDA libraries too): nothing else of the Python environment is in the sandbox.
SANDBOX_DISTRIBUTIONS = ("torch", "numpy")
STARTUP_TIMEOUT = 120.0  # seconds for Python and torch to start: longer is a grader problem
SELF_TEST_TIMEOUT = 60.0
SANDBOX_UID = 65534  # the student's code runs as "nobody" inside the sandbox
# bubblewrap's own environment. Its process is PID 1 of the container, whose environment the
# sandbox can read where a fork cannot be isolated: it holds nothing the sandbox is not given.
BWRAP_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


@dataclass(frozen=True)
class Limits:
    """Limits per submission and per call. Times are wall-clock seconds."""

    call_timeout: float = 10.0
    setup_timeout: float = 60.0
    submission_timeout: float = 600.0
    cpu_seconds: int = 601  # per sandbox process, all calls together
    memory_bytes: int | None = 4 << 30  # host memory (RLIMIT_DATA)
    output_bytes: int = 1 << 20  # printed output kept per sandbox process
    tmpfs_bytes: int = 64 << 20  # each of /tmp, /sandbox and /dev/shm
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
    for name in ("harness.py", "protocol.py", "guard.py"):
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


def requirement_closure(names: tuple[str, ...]) -> dict[str, importlib.metadata.Distribution]:
    """The installed distributions called ``names`` and everything they require, by
    canonical name."""
    found: dict[str, importlib.metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found:
            continue
        try:
            found[name] = distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an optional requirement this machine does not have
        for line in distribution.requires or ():
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return found


def sandbox_packages() -> list[tuple[str, str]]:
    """``(site folder, entry)`` of every top-level file and folder of the sandbox's
    distributions (:data:`SANDBOX_DISTRIBUTIONS` and what they require)."""
    entries: set[tuple[str, str]] = set()
    for distribution in requirement_closure(SANDBOX_DISTRIBUTIONS).values():
        base = os.path.realpath(distribution.locate_file(""))
        for file in distribution.files or ():
            parts = Path(file).parts
            if parts and parts[0] != "..":  # scripts in bin/ are not needed
                top = parts[0] if parts[0] != "__pycache__" else os.path.join(*parts[:2])
                entries.add((base, top))
    return sorted(entries)


def _site_folders(packages: list[tuple[str, str]]) -> list[str]:
    """Every site-packages folder of this Python (the environment's and the base
    interpreter's), and those the sandbox's packages are in."""
    base = sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_prefix})
    folders = [*site.getsitepackages(), base["purelib"], base["platlib"]]
    folders += [folder for folder, _ in packages]
    folders += glob.glob("/usr/lib/python3*/*-packages") + glob.glob(
        "/usr/local/lib/python3*/*-packages"
    )
    return sorted({os.path.realpath(f) for f in folders if os.path.isdir(f)})


def _interpreter() -> list[str]:
    """What the interpreter needs, besides the system's libraries: its prefixes (for a
    virtual environment only its ``pyvenv.cfg`` and ``bin``), and its executable."""
    paths = [os.path.realpath(sys.executable)]
    for prefix in sorted({os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)}):
        if os.path.isfile(os.path.join(prefix, "pyvenv.cfg")):
            paths += [os.path.join(prefix, "pyvenv.cfg"), os.path.join(prefix, "bin")]
        elif not prefix.startswith("/usr"):
            paths.append(prefix)
    return paths


def command(runtime: Path, limits: Limits, *, sandboxed: bool, gpu: bool) -> list:
    """The command line that starts the harness (inside bubblewrap when ``sandboxed``)."""
    packages = sandbox_packages()
    searched = {os.path.realpath(folder) for folder in site.getsitepackages()}
    search = sorted({folder for folder, _ in packages} - searched)
    limits_json = json.dumps({
        "cpu_seconds": limits.cpu_seconds,
        "memory_bytes": limits.memory_bytes,
        "output_bytes": limits.output_bytes,
        "threads": 64 + 4 * limits.threads if sandboxed else None,  # RLIMIT_NPROC, per userns
        "path": search,  # folders of the sandbox's packages that Python does not search itself
        "sandboxed": sandboxed,
        "tmpfs_bytes": limits.tmpfs_bytes,
    })  # fmt: skip
    python = [sys.executable, "-I", "-B"]  # the venv's own link: it finds pyvenv.cfg
    if not sandboxed:
        return [*python, str(runtime / "harness.py"), limits_json]
    # No --disable-userns: the zygote forks each sandbox into user namespaces of its own; the
    # student's process is refused new namespaces by its seccomp filter instead.
    args = [shutil.which("bwrap") or "bwrap", "--unshare-all", "--unshare-user",
            "--die-with-parent", "--new-session",
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--clearenv"]  # fmt: skip
    # The fresh /tmp first: a Python environment that lives under /tmp (a CI checkout, say)
    # is bound on top of it below, instead of being hidden by it.
    for mount in ("/tmp", "/sandbox"):
        args += ["--size", str(limits.tmpfs_bytes), "--tmpfs", mount]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for folder in ("/usr/lib", "/usr/lib32", "/usr/lib64", "/etc/ld.so.cache"):
        args += ["--ro-bind-try", folder, folder]
    libraries = os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep)
    for path in [*_interpreter(), *(p for p in libraries if os.path.isabs(p))]:
        args += ["--ro-bind-try", path, path]
    for folder in _site_folders(packages):  # emptied, then only the sandbox's packages
        args += ["--size", "4096", "--tmpfs", folder]
    for folder, entry in packages:
        path = os.path.join(folder, entry)
        args += ["--ro-bind", path, path]
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


def unseen_examples() -> list[str]:
    """Files of this environment that the sandbox must not show: one of each installed
    package outside its set (the grader's own, and those that bundle data sets)."""
    shown = requirement_closure(SANDBOX_DISTRIBUTIONS)
    examples = []
    for name in ("nbgrader", "distributed", "scikit-learn", "scikit-image", "matplotlib", "pip"):
        if name in shown:
            continue
        try:
            files = importlib.metadata.distribution(name).files or ()
        except importlib.metadata.PackageNotFoundError:
            continue
        paths = (str(f.locate()) for f in files if Path(f).parts[0] != "..")
        examples += [next((p for p in paths if os.path.isfile(p)), None)] if files else []
    return [path for path in examples if path]


def self_test(argv: list[str], course: Path) -> list[str]:
    """What the sandboxes forked by this thread's zygote for ``argv`` (a :func:`command`) let
    through that they should not: an empty list when they are sound. Two run in a row, so
    that the second can tell whether anything of the first is left."""
    package = Path(__file__).resolve().parents[1]
    paths = [str(course.resolve() / name) for name in ("solutions", "submitted", "gradebook.db")]
    paths += [str(package.parents[1] / "solutions"), str(package / "attention.py"),
              str(package / "softmax.py"), *unseen_examples()]  # fmt: skip
    leaks: set[str] = set()
    for _ in range(2):
        deadline = time.monotonic() + SELF_TEST_TIMEOUT
        sandbox = None
        try:
            sandbox = Sandbox(zygote(argv, sandboxed=True), None)
            sandbox.send({"op": "self-test", "paths": paths}, deadline)
            report = sandbox.receive(deadline)["report"]
        except (SandboxError, KeyError) as error:
            detail = sandbox.stderr_tail() if sandbox is not None else ""
            return [f"the self-test did not run: {error} {detail}".strip()]
        finally:
            if sandbox is not None:
                sandbox.kill()
        leaks |= {check for check, leaked in report.items() if leaked}
    return sorted(leaks)


class Zygote:
    """The harness started by ``argv``, having imported torch, forking sandboxes on request
    (see :func:`harness.serve`): ``spawn`` one, learn when it ended, kill it."""

    def __init__(self, argv: list[str], sandboxed: bool):
        self.argv = argv
        self._log = tempfile.TemporaryFile()
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        home = Path(tempfile.gettempdir())
        self.process = subprocess.Popen(
            argv,
            stdin=theirs,
            stdout=self._log,
            stderr=self._log,
            cwd=None if sandboxed else home,
            env=BWRAP_ENV if sandboxed else _plain_env(home),
            start_new_session=True,
        )
        theirs.close()
        self.ended: dict[int, int] = {}  # the number of each sandbox that ended -> exit code
        self.gone = False  # the zygote ended (and every sandbox it forked with it)
        self.spawned = 0
        try:
            hello = self._answer("hello", time.monotonic() + STARTUP_TIMEOUT)
        except SandboxError as error:
            detail = self.log_tail() or str(error)
            self.close()
            raise SandboxError(error.kind, f"the zygote did not start: {detail}") from None
        # Without nested user namespaces its own container is the one sandbox it forks.
        self.one_sandbox = hello.get("sandboxes") == "one"

    @property
    def alive(self) -> bool:
        return not self.gone and self.process.poll() is None

    @property
    def available(self) -> bool:
        """Can it fork another sandbox?"""
        return self.alive and not (self.one_sandbox and self.spawned)

    def log_tail(self) -> str:
        self._log.seek(0, os.SEEK_END)
        self._log.seek(max(0, self._log.tell() - 2000))
        return self._log.read().decode("utf-8", "replace").strip()

    def _next(self, deadline: float | None) -> dict:
        """The zygote's next message (an ``ended`` one is recorded on the way); with
        ``deadline`` None, a message only if one is pending, else ``{}``."""
        if self.gone:
            raise SandboxError("infrastructure", "the grader's zygote ended")
        wait = 0 if deadline is None else _remaining(deadline, "answer from the zygote")
        if not select.select([self.control], [], [], wait)[0]:
            return {}
        data = self.control.recv(1 << 16)
        if not data:
            self.gone = True
            raise SandboxError("infrastructure", "the grader's zygote ended")
        message = json.loads(data)
        if message.get("op") == "ended":
            self.ended[message["sandbox"]] = message["code"]
        return message

    def _answer(self, op: str, deadline: float) -> dict:
        """The zygote's next message other than ``ended``, which must be ``op``."""
        while (message := self._next(deadline)).get("op") in ("ended", None):
            pass
        if message["op"] != op:
            raise SandboxError("infrastructure", f"the zygote said {message!r}")
        return message

    def wait(self, number: int, timeout: float) -> int | None:
        """The exit code of sandbox ``number``, waiting ``timeout`` seconds at most (0: only
        what the zygote already said); None while it runs, or if the zygote ended."""
        deadline = time.monotonic() + timeout
        try:
            while number not in self.ended:
                if not self._next(deadline if timeout > 0 else None) and timeout <= 0:
                    break
        except SandboxError:  # the deadline passed, or the zygote ended
            pass
        return self.ended.get(number)

    def spawn(self, workdir: Path | None, stderr: int) -> tuple[int, int, int]:
        """Fork a sandbox whose stdin and stdout are new pipes and whose stderr is the file
        ``stderr``: its number, and our ends of its stdin and stdout."""
        stdin, to_sandbox = os.pipe()
        from_sandbox, stdout = os.pipe()
        try:
            request = {"op": "spawn", "workdir": None if workdir is None else str(workdir)}
            socket.send_fds(self.control, [json.dumps(request).encode()],
                            [stdin, stdout, stderr])  # fmt: skip
            reply = self._answer("spawned", time.monotonic() + STARTUP_TIMEOUT)
        except (OSError, SandboxError) as error:
            os.close(to_sandbox)
            os.close(from_sandbox)
            raise SandboxError("infrastructure", f"the zygote did not fork: {error}") from None
        finally:
            os.close(stdin)
            os.close(stdout)
        self.spawned += 1
        return reply["sandbox"], to_sandbox, from_sandbox

    def kill(self, number: int) -> None:
        """Kill sandbox ``number`` and wait until the zygote has reaped it."""
        if number in self.ended or self.gone:
            return
        try:
            self.control.send(json.dumps({"op": "kill", "sandbox": number}).encode())
        except OSError:
            self.gone = True  # its sandboxes died with it
            return
        self.wait(number, 10)

    def close(self) -> None:
        self.control.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._log.close()


_ZYGOTES = threading.local()


def zygote(argv: list[str], sandboxed: bool) -> Zygote:
    """This thread's zygote for ``argv``, started on first use and again when it cannot fork
    another sandbox (a thread of its own: bubblewrap's ``--die-with-parent`` follows the
    thread that started it)."""
    current = getattr(_ZYGOTES, "zygote", None)
    if current is not None and current.argv == argv and current.available:
        return current
    if current is not None:
        current.close()
    _ZYGOTES.zygote = Zygote(argv, sandboxed)
    return _ZYGOTES.zygote


class Sandbox:
    """One sandbox, forked by ``zygote``: send it a message, wait for its answer, kill it.
    ``workdir`` is the working directory of an unsandboxed harness (None inside bubblewrap)."""

    def __init__(self, zygote: Zygote, workdir: Path | None):
        self.zygote = zygote
        self._stderr = tempfile.TemporaryFile()
        try:
            self.number, self._in, self._out = zygote.spawn(workdir, self._stderr.fileno())
        except SandboxError:
            self._stderr.close()
            raise
        os.set_blocking(self._in, False)
        self._killed = False

    @property
    def alive(self) -> bool:
        return self.zygote.alive and self.zygote.wait(self.number, 0) is None

    def send(self, message: dict, deadline: float) -> None:
        data = memoryview(protocol.pack(message))
        while data:
            select.select([], [self._in], [], _remaining(deadline, "send"))
            try:
                data = data[os.write(self._in, data) :]
            except BlockingIOError:
                continue
            except BrokenPipeError:
                raise self._ended() from None

    def _read(self, size: int, deadline: float) -> bytes:
        data = bytearray()
        while len(data) < size:
            if not select.select([self._out], [], [], _remaining(deadline, "answer"))[0]:
                continue
            chunk = os.read(self._out, min(size - len(data), 1 << 20))
            if not chunk:
                raise self._ended()
            data += chunk
        return bytes(data)

    def receive(self, deadline: float) -> dict:
        try:
            length = protocol.frame_length(self._read(protocol.HEADER.size, deadline))
            return protocol.unpack(self._read(length, deadline))
        except protocol.ProtocolError as error:
            raise SandboxError("protocol", f"the sandbox sent malformed data ({error})") from None

    def _ended(self) -> SandboxError:
        """The error for a sandbox that closed its pipes: a crash, unless the zygote ended
        (then the grader is at fault, not the student)."""
        code = self.zygote.wait(self.number, timeout=5)
        if code is None and not self.zygote.alive:
            return SandboxError("infrastructure", "the grader's zygote ended during the call")
        return SandboxError("crash", _ending(code))

    def how_it_ended(self) -> str:
        return _ending(self.zygote.wait(self.number, timeout=5))

    def stderr_tail(self) -> str:
        if self._stderr.closed:
            return ""
        self._stderr.seek(0, os.SEEK_END)
        self._stderr.seek(max(0, self._stderr.tell() - 2000))
        return self._stderr.read().decode("utf-8", "replace").strip()

    def kill(self) -> None:
        if self._killed:
            return
        self._killed = True
        try:
            self.zygote.kill(self.number)
        finally:
            for fd in (self._in, self._out):
                os.close(fd)
            self._stderr.close()


def _ending(code: int | None) -> str:
    """How a sandbox that exited with ``code`` (None: unknown) ended, in words."""
    if code is None:
        return "the sandbox closed its connection"
    if code > 128:  # killed by a signal (reported as 128 + its number)
        number = code - 128
        name = signal.Signals(number).name if number in signal.valid_signals() else number
        hint = {"SIGXCPU": " (CPU-time limit)", "SIGKILL": " (killed: a limit was reached)"}
        return f"the sandbox process was killed by {name}{hint.get(name, '')}"
    return f"the sandbox process exited with code {code}"


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
