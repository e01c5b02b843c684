"""The wire format between the trusted grader and the sandboxed harness.

A frame is an 8-byte big-endian length followed by a ``torch.save`` payload. Every payload is
read back with ``torch.load(weights_only=True)``: a hostile sandbox can send tensors and plain
data (lists, dicts, strings, numbers), never an object whose unpickling runs code.

A message is a dict with string keys and an ``"op"``. Arguments and results travel as
*trees* made by :func:`encode`: ``None``, booleans, numbers and strings as themselves, and
everything else as a list whose first item names its kind (``["tensor", t, device,
requires_grad]``, ``["tuple", items]``, ...). :func:`decode` checks every node and raises
:class:`ProtocolError` on anything else.

Both sides run this file: the grader imports it as ``vislearn.grader.protocol`` and the
sandbox gets a copy beside ``harness.py``, so it imports nothing from the course.
"""

from __future__ import annotations

import io
import struct

import torch

MAX_FRAME = 64 << 20  # bytes: larger frames are a protocol error, not a memory bomb
HEADER = struct.Struct(">Q")
_PRIMITIVES = (type(None), bool, int, float, str)


class ProtocolError(Exception):
    """A frame or tree that does not follow this protocol."""


class TooLarge(ProtocolError):
    """A message larger than a frame may be."""


def tensors_in(tree: object) -> list[torch.Tensor]:
    """The tensors in nested tuples, lists and dicts, in the order :func:`encode` meets them."""
    if isinstance(tree, torch.Tensor):
        return [tree]
    if isinstance(tree, (tuple, list)):
        return [t for item in tree for t in tensors_in(item)]
    if isinstance(tree, dict):
        return [t for item in tree.values() for t in tensors_in(item)]
    return []


def encode(value: object) -> object:
    """A tree of ``value`` that :func:`decode` rebuilds; unknown objects become ``opaque``."""
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, torch.Tensor):
        try:
            if value.layout != torch.strided:
                raise TypeError(value.layout)
            data = value.detach().to("cpu").as_subclass(torch.Tensor).contiguous().clone()
        except Exception:  # a tensor subclass or layout that cannot be copied
            return ["opaque", type(value).__name__, UNSENDABLE_TENSOR]
        return ["tensor", data, str(value.device), bool(value.requires_grad)]
    if isinstance(value, (tuple, list)):
        kind = "list" if isinstance(value, list) else "tuple"
        return [kind, [encode(item) for item in value]]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return ["dict", [[key, encode(item)] for key, item in value.items()]]
    if isinstance(value, torch.dtype):
        return ["dtype", str(value).removeprefix("torch.")]
    if isinstance(value, torch.device):
        return ["device", str(value)]
    return ["opaque", type(value).__name__]


UNSENDABLE_TENSOR = "a tensor that cannot be sent back (a subclass, or a sparse layout)"


class Opaque:
    """Stands for a value the sandbox could not send (e.g. a NumPy array); its class is named
    after the original type, so ``assert_close`` says "expected a tensor, got ndarray".
    ``reason`` says why, when the value was a tensor."""

    reason: str | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} returned by the student's code>"


def unsendable(tree: object) -> str | None:
    """Why a decoded value holds a tensor that could not be sent, or None."""
    if isinstance(tree, Opaque):
        return tree.reason
    items = tree.values() if isinstance(tree, dict) else tree
    if isinstance(tree, (tuple, list, dict)):
        return next((r for item in items if (r := unsendable(item)) is not None), None)
    return None


def _device(name: object) -> torch.device:
    if not isinstance(name, str):
        raise ProtocolError("device name is not a string")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as error:
        raise ProtocolError(f"bad device {name!r}") from error
    usable = device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_available())
    if not usable:
        raise ProtocolError(f"device {name!r} does not exist here")
    return device


def decode(tree: object, grad: bool = False) -> object:
    """Rebuild a value from a tree, checking every node; raises :class:`ProtocolError`.

    With ``grad``, tensors sent as requiring grad are rebuilt as leaves that require grad
    (arguments, in the sandbox); otherwise every tensor comes back plain (results).
    """
    if isinstance(tree, _PRIMITIVES):
        return tree
    if not isinstance(tree, list) or not tree or not isinstance(tree[0], str):
        raise ProtocolError(f"unexpected {type(tree).__name__} in a message")
    kind, rest = tree[0], tree[1:]
    if kind == "tensor" and len(rest) == 3:
        data, device, requires_grad = rest
        if type(data) is not torch.Tensor or data.layout != torch.strided:
            raise ProtocolError("tensor payload is not a plain tensor")
        tensor = data.to(_device(device))
        if grad and requires_grad is True and (tensor.is_floating_point() or tensor.is_complex()):
            tensor.requires_grad_(True)
        return tensor
    if kind in ("tuple", "list") and len(rest) == 1 and isinstance(rest[0], list):
        items = [decode(item, grad) for item in rest[0]]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict" and len(rest) == 1 and isinstance(rest[0], list):
        pairs = rest[0]
        if not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in pairs):
            raise ProtocolError("malformed dict")
        return {key: decode(item, grad) for key, item in pairs}
    if kind == "dtype" and len(rest) == 1 and isinstance(rest[0], str):
        dtype = getattr(torch, rest[0], None)
        if not isinstance(dtype, torch.dtype):
            raise ProtocolError(f"unknown dtype {rest[0]!r}")
        return dtype
    if kind == "device" and len(rest) == 1:
        return _device(rest[0])
    if kind == "opaque" and 1 <= len(rest) <= 2 and all(isinstance(r, str) for r in rest):
        name = rest[0] if rest[0].isidentifier() else "object"
        reason = UNSENDABLE_TENSOR if rest[1:] == [UNSENDABLE_TENSOR] else None
        return type(name, (Opaque,), {"reason": reason})()
    raise ProtocolError(f"unknown node {kind!r}")


def pack(message: dict) -> bytes:
    """One frame holding ``message`` (a dict of primitives, lists and encoded trees)."""
    buffer = io.BytesIO()
    torch.save(message, buffer)
    payload = buffer.getvalue()
    if len(payload) > MAX_FRAME:
        raise TooLarge(
            f"a result too large to send back ({len(payload) / 2**20:.0f} MiB; at most "
            f"{MAX_FRAME >> 20} MiB)"
        )
    return HEADER.pack(len(payload)) + payload


def frame_length(header: bytes) -> int:
    """The payload length announced by a frame header."""
    (length,) = HEADER.unpack(header)
    if length > MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes exceeds {MAX_FRAME}")
    return length


def unpack(payload: bytes) -> dict:
    """The message in a frame's payload, loaded with ``weights_only=True``."""
    try:
        message = torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
    except Exception as error:
        raise ProtocolError(f"unreadable frame ({type(error).__name__})") from error
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise ProtocolError("a frame must hold a dict with an 'op'")
    return message


def _read_exactly(stream, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def read_frame(stream) -> dict | None:
    """The next message on a blocking binary stream; ``None`` at end of file."""
    header = _read_exactly(stream, HEADER.size)
    payload = None if header is None else _read_exactly(stream, frame_length(header))
    return None if payload is None else unpack(payload)


def write_frame(stream, message: dict) -> None:
    """Send one message on a blocking binary stream."""
    stream.write(pack(message))
    stream.flush()
