"""The sandboxed half of grading: runs one student's notebook code, then calls the student's
functions on the grader's inputs and sends their outputs back as data.

:mod:`vislearn.grader.sandbox` starts it (inside bubblewrap unless the instructor opted
out) as ``python -I harness.py LIMITS_JSON``, with a copy of :mod:`protocol`, :mod:`guard`
and the allowed ``vislearn`` modules beside it. That process is a *zygote*: it imports
torch once, runs no student code, and forks one sandbox per submission on the grader's
request (:func:`serve`). Each fork (:func:`isolate`) gets namespaces of its own (user,
mount, PID, IPC, network, UTS), every mount read-only but fresh tmpfs ``/tmp``,
``/sandbox`` and ``/dev/shm``, no capabilities, and runs as PID 2 under an init of its own;
the zygote and its forks are not dumpable, so the student's process can neither signal nor
read the zygote or that init. The fork never sees a test, a reference output, the course
folder, the gradebook or the grading seed (it is seeded with a value derived from it one
way). In order, it

1. limits itself (CPU time, memory, file size, threads) and installs a seccomp filter that
   makes ``fork``, ``vfork`` and ``clone`` of a new process fail (threads still work), and
   refuses namespaces, mounts and ``ptrace``;
2. reads the ``setup`` message (the cells to run, the forbidden names, its seed);
3. installs the :mod:`guard`: forbidden names, modules and torch operators are refused
   while the student's code runs (and while its results are packed);
4. moves stdin to ``/dev/null`` and stdout and stderr to a capped log, keeping private
   copies of the protocol's pipes, and says ``hello``;
5. runs the cells (errors are recorded, not fatal) and says ``ready``;
6. answers messages until end of input (the grader kills it): ``call`` (a function of the
   notebook or a module built before, once; with ``keep``, its autograd graph is kept for
   ``vjp``, the gradients of that very call), ``new`` (build an ``nn.Module`` of a class the
   notebook defines and keep it under a handle) and ``method`` (one of
   :data:`MODULE_METHODS` on a handle). Every answer carries what the guard refused since
   the last one.

A fork whose first message is ``self-test`` checks the sandbox instead (:func:`self_test`):
process creation, the network, namespaces, mounts, the other processes and an earlier
sandbox's files must be out of reach, and no given path may exist.
"""

from __future__ import annotations

import ctypes
import errno
import io
import itertools
import json
import os
import platform
import re
import resource
import select
import signal
import socket
import struct
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))


# --- limits ---------------------------------------------------------------------------------


def _seccomp_program() -> bytes:
    """A classic-BPF seccomp filter: creating a process fails with EPERM, threads are fine.

    ``clone`` is allowed only with ``CLONE_THREAD``; ``clone3`` answers ENOSYS so that the C
    library falls back to ``clone``; ``fork`` and ``vfork`` are refused, and so are the calls
    that would leave or rebuild the sandbox (namespaces, both mount APIs) or reach into
    another process or the kernel's shared state (``ptrace``, ``process_vm_*``,
    ``pidfd_getfd``, ``kcmp``, keyrings, BPF, perf events, ``userfaultfd``, io_uring); any
    other architecture than the one this filter was written for is killed.
    """
    # The calls both tables number alike (the new mount API, io_uring, pidfd_getfd).
    common = {
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
        "open_tree": 428,
        "move_mount": 429,
        "fsopen": 430,
        "fsconfig": 431,
        "fsmount": 432,
        "fspick": 433,
        "pidfd_getfd": 438,
        "mount_setattr": 442,
    }
    tables = {
        "x86_64": (0xC000003E, {"clone": 56, "fork": 57, "vfork": 58, "unshare": 272,
                                "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155,
                                "ptrace": 101, "process_vm_readv": 310,
                                "process_vm_writev": 311, "kcmp": 312, "add_key": 248,
                                "request_key": 249, "keyctl": 250, "bpf": 321,
                                "perf_event_open": 298, "userfaultfd": 323, **common}),
        "aarch64": (0xC00000B7, {"clone": 220, "unshare": 97, "setns": 268, "mount": 40,
                                 "umount2": 39, "pivot_root": 41, "ptrace": 117,
                                 "process_vm_readv": 270, "process_vm_writev": 271,
                                 "kcmp": 272, "add_key": 217, "request_key": 218,
                                 "keyctl": 219, "bpf": 280, "perf_event_open": 241,
                                 "userfaultfd": 282, **common}),
    }  # fmt: skip
    if platform.machine() not in tables:
        raise OSError(f"no seccomp filter for the {platform.machine()} architecture")
    audit_arch, numbers = tables[platform.machine()]
    load, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    returns = {
        "allow": 0x7FFF0000,
        "deny": 0x00050000 | errno.EPERM,
        "nosys": 0x00050000 | errno.ENOSYS,
        "kill": 0x80000000,
    }
    refused = [name for name in numbers if name != "clone"]
    # (opcode, constant, label if true, label if false); no label: the next instruction
    program = [
        (load, 4, None, None),  # seccomp_data.arch
        (jeq, audit_arch, None, "kill"),
        (load, 0, None, None),  # seccomp_data.nr
        (jge, 0x40000000, "deny", None),  # x32 system calls
        (jeq, 435, "nosys", None),  # clone3
        *[(jeq, numbers[name], "deny", None) for name in refused if name in numbers],
        (jeq, numbers["clone"], None, "allow"),
        (load, 16, None, None),  # low half of clone's flags (little-endian)
        (jset, 0x10000, "allow", "deny"),  # CLONE_THREAD
    ]
    labels = {name: len(program) + i for i, name in enumerate(returns)}
    program += [(ret, value, None, None) for value in returns.values()]

    def offset(i: int, label: str | None) -> int:
        return 0 if label is None else labels[label] - i - 1

    return b"".join(
        struct.pack("HBBI", code, offset(i, true), offset(i, false), k)
        for i, (code, k, true, false) in enumerate(program)
    )


def block_process_creation() -> None:
    """Install :func:`_seccomp_program` for this process and everything it starts."""
    program = _seccomp_program()

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong,
                           ctypes.c_ulong]  # fmt: skip
    pr_set_no_new_privs, pr_set_seccomp, seccomp_mode_filter = 38, 22, 2
    if libc.prctl(pr_set_no_new_privs, 1, None, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if libc.prctl(pr_set_seccomp, seccomp_mode_filter, ctypes.addressof(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")


def apply_limits(limits: dict) -> None:
    """Resource limits that the student's code cannot raise again."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    cpu = int(limits["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    if limits.get("memory_bytes"):
        memory = int(limits["memory_bytes"])
        resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    size = int(limits["output_bytes"]) + (64 << 10)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large write fails instead of killing
    if limits.get("threads"):
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["threads"], limits["threads"]))
    block_process_creation()


def limit_call_cpu(seconds: float) -> None:
    """Lower the soft CPU limit to ``seconds`` from now (SIGXCPU ends the process)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used + seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard < 0 else min(soft, hard), hard))


# --- one sandbox per submission -------------------------------------------------------------

_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]  # fmt: skip
_LIBC.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]  # fmt: skip
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_CAP_AMBIENT = 1, 4, 24, 47
# user, mount, PID, IPC, network and UTS namespaces
NAMESPACES = 0x10000000 | 0x00020000 | 0x20000000 | 0x08000000 | 0x40000000 | 0x04000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = (
    0x1, 0x2, 0x4, 0x20, 0x1000, 0x4000, 0x40000)  # fmt: skip
# Mount options a read-only remount must keep (the kernel locks them on inherited mounts).
KEPT_OPTIONS = {"nosuid": 0x2, "nodev": 0x4, "noexec": 0x8, "noatime": 0x400,
                "nodiratime": 0x800, "relatime": 0x200000, "strictatime": 0x1000000}  # fmt: skip
# Where the student may write: fresh and private to each sandbox (/dev/shm as bubblewrap's
# own /dev had it, for libraries that expect it).
PRIVATE_FOLDERS = ("/tmp", "/sandbox", "/dev/shm")


def _checked(result: int, what: str) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")


def mounts() -> dict[str, tuple[str, str]]:
    """Each mount point this process sees: the options and file system type of the mount
    on top there."""
    found = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:  # parents come before the mounts on top of them
            fields, _, rest = line.partition(" - ")
            point, options = fields.split()[4:6]
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), point)
            found[point] = (options, rest.split()[0])
    return found


def _read_only_everywhere() -> None:
    """Remount read-only every folder mount the sandbox's bubblewrap left writable (the
    emptied site-packages folders, /dev): the zygote's forks share them."""
    for point, (options, kind) in mounts().items():
        if "rw" not in options.split(",") or kind in ("proc", "sysfs", "devpts"):
            continue
        if not os.path.isdir(point) or point in PRIVATE_FOLDERS:
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        flags |= sum(KEPT_OPTIONS.get(option, 0) for option in options.split(","))
        _checked(_LIBC.mount(None, point.encode(), None, flags, None),
                 f"remounting {point} read-only")  # fmt: skip


def _drop_capabilities() -> None:
    """No capability in any set, the bounding set included (nothing can be regained)."""
    cap = 0
    while _LIBC.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1
    _checked(_LIBC.prctl(PR_CAP_AMBIENT, 4, 0, 0, 0), "clearing the ambient capabilities")

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    empty = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable; two words each
    _checked(_LIBC.capset(ctypes.byref(Header(0x20080522, 0)), empty), "capset")


def _exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128 + the signal's number."""
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def isolate(tmpfs_bytes: int) -> None:
    """Give this freshly forked, single-threaded process a sandbox of its own, inside the
    zygote's: new namespaces (the user's ID mapped to itself), every mount read-only but
    fresh tmpfs on :data:`PRIVATE_FOLDERS`, no capabilities. Returns in the student's process,
    PID 2 of its namespace, whose init (PID 1) waits for it and exits as it did; the process
    the zygote forked waits for that init in turn, so the zygote sees how the student's
    process ended."""
    uid, gid = os.getuid(), os.getgid()
    if _LIBC.unshare(NAMESPACES) != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"unshare: {os.strerror(number)} (nested user namespaces are "
                      "needed: the sandbox's own is made inside the zygote's)")  # fmt: skip
    for name, text in [("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                       ("gid_map", f"{gid} {gid} 1")]:  # fmt: skip
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    _checked(_LIBC.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "making / private")
    # What bubblewrap bound inside /tmp (a Python environment that lives there) is bound
    # again inside the fresh tmpfs, from a descriptor opened before the tmpfs hides it.
    # (Recursively: a mount with locked children cannot be bound alone.)
    inside = [point for point in mounts()
              if any(point.startswith(folder + "/") for folder in PRIVATE_FOLDERS)]  # fmt: skip
    tops = [point for point in inside if not any(point.startswith(p + "/") for p in inside)]
    kept = {point: os.open(point, os.O_PATH) for point in tops}
    for folder in filter(os.path.isdir, PRIVATE_FOLDERS):
        options = f"size={tmpfs_bytes},mode=0755".encode()
        _checked(_LIBC.mount(b"tmpfs", folder.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options),
                 f"mounting a tmpfs on {folder}")  # fmt: skip
    for point, fd in kept.items():
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(point, exist_ok=True)
        elif not os.path.exists(point):
            os.makedirs(os.path.dirname(point), exist_ok=True)
            open(point, "x").close()
        _checked(_LIBC.mount(f"/proc/self/fd/{fd}".encode(), point.encode(), None,
                             MS_BIND | MS_REC, None), f"binding {point} again")  # fmt: skip
        os.close(fd)
    _read_only_everywhere()
    _drop_capabilities()
    os.chdir("/sandbox")
    for _ in ("init", "student"):  # the first fork is PID 1 of the new PID namespace
        child = os.fork()
        if child:
            while True:
                pid, status = os.wait()
                if pid == child:
                    os._exit(_exit_code(status))
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _send(control: socket.socket, message: dict) -> None:
    control.send(json.dumps(message).encode())


def can_isolate(tmpfs_bytes: int) -> bool:
    """Can a fork make a sandbox of its own here (:func:`isolate`)? Not where a security
    module lets bubblewrap create a user namespace but not the processes inside it."""
    pid = os.fork()
    if pid == 0:
        try:
            isolate(tmpfs_bytes)
        except BaseException:
            os._exit(1)
        os._exit(0)
    return _exit_code(os.waitpid(pid, 0)[1]) == 0


def serve(control: socket.socket, sandboxed: bool, tmpfs_bytes: int) -> bool:
    """The zygote: fork a sandbox whenever the grader asks (``spawn``, with the sandbox's
    stdin, stdout and stderr as file descriptors; the answer numbers it), kill one (``kill``
    by its number: its whole process group), and say when one ended (``ended``, with its
    exit code). Each fork of a sandboxed zygote is isolated (:func:`isolate`) where it can
    be; where it cannot, the zygote's own bubblewrap container is the sandbox, and it forks
    one only (``hello`` says ``"sandboxes": "one"``: the grader starts a zygote for each).
    Returns only in a fork, with the sandbox's pipes as its fds 0, 1 and 2, and whether it
    is isolated; the zygote itself exits when the grader closes ``control``."""
    zygote = os.getpid()
    children: dict[int, tuple[int, int]] = {}  # pidfd -> (the sandbox's number, its pid)
    numbers = itertools.count(1)
    isolating = sandboxed and can_isolate(tmpfs_bytes)
    one_only = sandboxed and not isolating
    _send(control, {"op": "hello", "sandboxes": "one" if one_only else "many"})
    while True:
        ready, _, _ = select.select([control, *children], [], [])
        for pidfd in [fd for fd in ready if fd in children]:
            number, pid = children.pop(pidfd)
            os.close(pidfd)
            _, status = os.waitpid(pid, 0)
            _send(control, {"op": "ended", "sandbox": number, "code": _exit_code(status)})
        if control not in ready:
            continue
        data, fds, _, _ = socket.recv_fds(control, 1 << 16, 3)
        if not data:
            return os._exit(0)  # the grader is gone; every sandbox dies with this process
        request = json.loads(data)
        if request["op"] == "kill":
            for number, pid in children.values():
                if number == request["sandbox"]:
                    os.killpg(pid, signal.SIGKILL)
            continue
        number = next(numbers)
        if one_only and number > 1:
            _send(control, {"op": "refused", "why": "this zygote forks one sandbox only"})
            continue
        pid = os.fork()
        if pid == 0:
            control.detach()  # its fd is closed below; the object must not close another
            os.setpgid(0, 0)
            _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != zygote:
                os._exit(1)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            os.closerange(3, os.sysconf("SC_OPEN_MAX"))
            if isolating:
                isolate(tmpfs_bytes)
            elif not sandboxed:
                os.chdir(request["workdir"])
                os.environ["HOME"] = request["workdir"]
            return isolating
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass  # it did so itself, or it already ended
        for fd in fds:
            os.close(fd)
        children[os.pidfd_open(pid)] = (number, pid)
        _send(control, {"op": "spawned", "sandbox": number})


# --- output ---------------------------------------------------------------------------------


class CappedOutput(io.TextIOBase):
    """A text stream that writes to a file descriptor until a shared byte budget is spent,
    then drops the rest silently (prints never fail and never reach the protocol)."""

    def __init__(self, fd: int, budget: list[int]):
        self.fd, self.budget = fd, budget

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.budget[0] > 0:
            data = str(text).encode("utf-8", "replace")[: self.budget[0]]
            self.budget[0] -= len(data)
            try:
                os.write(self.fd, data)
            except OSError:
                self.budget[0] = 0
        return len(text)


def take_protocol_channel() -> tuple:
    """Private copies of stdin and stdout for the protocol's frames."""
    return os.fdopen(os.dup(0), "rb", buffering=0), os.fdopen(os.dup(1), "wb")


def redirect_output(output_bytes: int) -> None:
    """fd 0 reads /dev/null; fds 1 and 2 and ``print`` go to a log capped at ``output_bytes``."""
    log = os.open("output.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    budget = [output_bytes]
    sys.stdout = sys.__stdout__ = CappedOutput(1, budget)
    sys.stderr = sys.__stderr__ = CappedOutput(2, budget)
    sys.stdin = sys.__stdin__ = io.StringIO("")


# --- the student's code ---------------------------------------------------------------------


def _describe(error: BaseException) -> str:
    try:
        detail = str(error)
    except BaseException:
        detail = ""
    return (f"{type(error).__name__}: {detail}" if detail else type(error).__name__)[:1000]


def student_namespace(builtin_names: dict) -> dict:
    """The notebook's globals, with ``builtin_names`` as its builtins (see
    :func:`guard.student_builtins`) and the few IPython names notebooks use as harmless
    stubs."""
    namespace: dict = {"__name__": "__main__", "__builtins__": builtin_names}
    shell = types.SimpleNamespace(
        run_line_magic=lambda *a, **k: None,
        run_cell_magic=lambda *a, **k: None,
        system=lambda *a, **k: None,
        getoutput=lambda *a, **k: "",
        input_transformers_cleanup=[],
        input_transformers_post=[],
        user_ns=namespace,
    )
    namespace["get_ipython"] = lambda: shell
    namespace["display"] = lambda *objects, **kwargs: print(*objects)
    return namespace


def run_cells(cells: list, namespace: dict) -> list[list[str]]:
    """Run each ``[label, source]`` in order; ``[label, error]`` of those that raised."""
    errors = []
    for label, source in cells:
        try:
            exec(compile(source, f"<cell {label}>", "exec"), namespace)
        except BaseException as error:  # SystemExit and KeyboardInterrupt too
            errors.append([label, _describe(error)])
    return errors


def _load_state_dict(module, state) -> None:
    module.load_state_dict(state, strict=True)  # missing or unexpected keys raise


def _train(module, mode: bool = True) -> None:
    module.train(mode)


def _to(module, *args, **kwargs) -> None:
    module.to(*args, **kwargs)


# The methods of a student's module that the grader may call, by name: each takes decoded
# arguments and returns plain data (tensors, dicts of tensors, booleans, None).
MODULE_METHODS = {
    "load_state_dict": _load_state_dict,
    "state_dict": lambda module: dict(module.state_dict()),
    "named_parameters": lambda module: dict(module.named_parameters()),
    "train": _train,
    "training": lambda module: bool(module.training),
    "to": _to,
}


class Handles:
    """The modules the grader asked the sandbox to build, by handle (an int)."""

    def __init__(self, torch):
        self.torch = torch
        self.modules: dict[int, object] = {}

    def new(self, cls, args, kwargs) -> int:
        if not (isinstance(cls, type) and issubclass(cls, self.torch.nn.Module)):
            raise TypeError(f"{cls.__name__} is not a subclass of torch.nn.Module")
        module = cls(*args, **kwargs)
        if not isinstance(module, self.torch.nn.Module):
            raise TypeError(f"{cls.__name__}(...) did not return an nn.Module")
        handle = len(self.modules)
        self.modules[handle] = module
        return handle

    def get(self, handle):
        if not isinstance(handle, int) or handle not in self.modules:
            raise RuntimeError(f"no module with handle {handle!r}")
        return self.modules[handle]


class Graphs:
    """The autograd graphs of the last :data:`KEPT` calls whose outputs require grad, by
    number. The grader's backward pass asks for the gradients of the very outputs a call
    returned: a function or module runs once per call, never again for its gradients."""

    KEPT = 8

    def __init__(self):
        self.graphs: dict[int, tuple] = {}
        self.calls = 0

    def keep(self, outputs: list, inputs: list, target) -> int | None:
        """Keep a call's outputs, input tensors and (for a module) parameters; its number,
        or None when no output depends on anything through autograd."""
        if not any(o.requires_grad for o in outputs):
            return None
        self.calls += 1
        named = getattr(target, "named_parameters", None)
        parameters = dict(named()) if callable(named) and not isinstance(target, type) else {}
        self.graphs[self.calls] = (outputs, inputs, parameters)
        for old in [n for n in self.graphs if n <= self.calls - self.KEPT]:
            del self.graphs[old]
        return self.calls

    def gradients(self, torch, number, wrt: list, params: list, grads: list) -> list:
        """The gradients of call ``number``'s outputs, weighted by ``grads``, wrt its input
        tensors numbered ``wrt``, then wrt the parameters named ``params``."""
        if number not in self.graphs:
            raise RuntimeError("the grader asked for the gradients of a call it did not keep")
        outputs, tensors, parameters = self.graphs[number]
        inputs = [tensors[i] for i in wrt]  # decoded as leaves that require grad
        if not all(x.requires_grad and x.is_leaf for x in inputs):
            raise RuntimeError("the grader asked for the gradient wrt a non-differentiable input")
        missing = [n for n in params if n not in parameters]
        if missing:
            raise RuntimeError(f"the module had no parameter {missing[0]!r} when it was called")
        inputs += [parameters[n] for n in params]
        pairs = [(o, g) for o, g in zip(outputs, grads, strict=False) if o.requires_grad]
        found = torch.autograd.grad([o for o, _ in pairs], inputs, [g for _, g in pairs],
                                    allow_unused=True, retain_graph=True)  # fmt: skip
        return [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, found, strict=True)]


def call(protocol, torch, namespace: dict, handles: Handles, graphs: Graphs, message: dict):
    """Answer one request with the student's result, or the error it raised."""
    op, name = message["op"], message.get("name")
    defined = isinstance(name, str) and callable(namespace.get(name))
    if op != "vjp" and "handle" not in message and not defined:
        return {"op": "result", "ok": False, "kind": "missing", "error": f"{name} is not defined"}
    try:  # a request is about a module built before (its handle) or a name of the notebook
        limit_call_cpu(float(message.get("cpu_seconds", 60)))
        if op == "vjp":
            grads = protocol.decode(message["grads"])
            value = graphs.gradients(torch, message["graph"], message["wrt"],
                                     message["params"], grads)  # fmt: skip
            return {"op": "result", "ok": True, "value": protocol.encode(value)}
        target = handles.get(message["handle"]) if "handle" in message else namespace[name]
        args = protocol.decode(message["args"], grad=True)
        kwargs = protocol.decode(message["kwargs"], grad=True)
        graph = None
        if op == "call":
            with torch.set_grad_enabled(bool(message.get("grad", True))):
                value = target(*args, **kwargs)
            if message.get("keep"):
                inputs = protocol.tensors_in((args, kwargs))
                graph = graphs.keep(protocol.tensors_in(value), inputs, target)
        elif op == "new":
            value = handles.new(target, args, kwargs)
        elif op == "method" and message.get("method") in MODULE_METHODS:
            value = MODULE_METHODS[message["method"]](target, *args, **kwargs)
        else:
            raise RuntimeError(f"unknown request {op!r}")
        return {"op": "result", "ok": True, "value": protocol.encode(value), "graph": graph}
    except BaseException as error:
        return {"op": "result", "ok": False, "kind": "raised", "error": _describe(error)}


def answer(protocol, refused: list[str], reply: dict) -> bytes:
    """The frame of ``reply``, with what the guard refused since the last answer (taken from
    ``refused``); a result too large for a frame is answered as such, in words."""
    reply["refused"] = refused[:]
    refused.clear()
    try:
        return protocol.pack(reply)
    except protocol.TooLarge as error:
        reply = {"op": "result", "ok": False, "kind": "too large", "error": str(error),
                 "refused": reply["refused"]}  # fmt: skip
    except Exception as error:
        reply = {"op": "result", "ok": False, "kind": "raised", "error": _describe(error),
                 "refused": reply["refused"]}  # fmt: skip
    return protocol.pack(reply)


# --- entry points ---------------------------------------------------------------------------


def _environment(pid: str) -> set[bytes]:
    """The environment of process ``pid`` (empty if this process may not read it)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return set(f.read().split(b"\0")) - {b""}
    except OSError:
        return set()


def self_test(paths: list[str], isolated: bool) -> dict:
    """What the sandbox lets through: each check is False when the sandbox is sound. Only an
    isolated fork (:func:`isolate`) shares its zygote's container with other sandboxes, so
    only there is a writable mount beyond its own folders a leak."""
    report = {}
    try:
        pid = os.fork()
    except OSError:
        report["fork"] = False
    else:
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        report["fork"] = True
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=2).close()
        report["network"] = True
    except OSError:
        report["network"] = False
    report["shares the PID namespace"] = os.getpid() > 8  # its init is 1, the student 2
    report["creates a user namespace"] = _LIBC.unshare(0x10000000) == 0
    report["unmounts /tmp"] = _LIBC.umount2(b"/tmp", 2) == 0
    me = os.readlink("/proc/self")
    others = [p for p in os.listdir("/proc") if p.isdigit() and p != me]
    report["reads another environment"] = any(_environment(p) - _environment(me) for p in others)
    for point, (_, kind) in mounts().items():  # the grader runs two self-tests in a row
        if kind in ("proc", "sysfs", "devpts") or not os.path.isdir(point):
            continue
        marker = os.path.join(point, ".vislearn-self-test")
        if point in PRIVATE_FOLDERS:
            report[f"sees an earlier sandbox's {point}"] = os.path.exists(marker)
        try:
            open(marker, "w").close()
        except OSError:
            continue
        report[f"writes to {point}"] = isolated and point not in PRIVATE_FOLDERS
    for path in paths:
        report[f"sees {path}"] = os.path.exists(path)
    return report


def main() -> None:
    limits = json.loads(sys.argv[1])
    sys.path[:0] = [HERE, os.path.join(HERE, "lib")]
    sys.path += limits.get("path") or []
    import guard
    import protocol
    import torch

    sys.path.remove(HERE)  # the harness's own modules are not the student's to import
    guard.prepare()
    _LIBC.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # no sandbox may read or trace the zygote
    isolated = serve(socket.socket(fileno=os.dup(0)), limits["sandboxed"], limits["tmpfs_bytes"])
    if "numpy" in sys.modules:  # not the zygote's random state, shared by every fork
        sys.modules["numpy"].random.seed()
    apply_limits(limits)
    proto_in, proto_out = take_protocol_channel()
    setup = protocol.read_frame(proto_in)
    if setup is not None and setup["op"] == "self-test":
        report = self_test(setup["paths"], isolated)
        protocol.write_frame(proto_out, {"op": "self-test", "report": report})
        return
    if setup is None or setup["op"] != "setup":
        raise SystemExit("harness: no setup message")
    torch.set_num_threads(int(setup["threads"]))
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if setup.get("gpu_fraction") and torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(float(setup["gpu_fraction"]))
    torch.manual_seed(int(setup["seed"]))  # the grader's seed for the sandbox, not its own
    vislearn_dir = os.path.join(HERE, "lib", "vislearn")
    vislearn_modules = {f[:-3] for f in os.listdir(vislearn_dir) if f.endswith(".py")}
    guard.install(list(setup["forbidden"]), vislearn_modules - {"__init__"})
    redirect_output(int(limits["output_bytes"]))
    protocol.write_frame(proto_out, {"op": "hello", "torch": str(torch.__version__)})
    namespace = student_namespace(guard.student_builtins())
    with guard.active():
        errors = run_cells(setup["cells"], namespace)
    proto_out.write(answer(protocol, guard.REFUSED, {"op": "ready", "errors": errors}))
    proto_out.flush()
    handles, graphs = Handles(torch), Graphs()
    while (message := protocol.read_frame(proto_in)) is not None:  # the grader kills it
        with guard.active():
            reply = call(protocol, torch, namespace, handles, graphs, message)
        proto_out.write(answer(protocol, guard.REFUSED, reply))
        proto_out.flush()


if __name__ == "__main__":
    main()
