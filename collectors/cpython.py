"""A CPython interpreter's threads and Python stacks, read from outside the process, as py-spy reads them.

py-spy costs a launch and an attach per window, and writes its samples
only when the window ends (PYSPY.md); reading the interpreter's structures
ourselves costs a read per structure (collectors.procmem), from the
sampler's thread, with nothing to start. The structures' layouts are
per minor version and are read from CPython's own headers (offsetof on the
3.11, 3.12 and 3.13 release headers; the same for every patch release on
64-bit Linux). A Python whose layout we do not know (3.10 and older, 3.14,
a free-threaded or debug build) is sampled with py-spy, as before.

The target runs on while it is read, so a read can be torn: every code
object is checked to be one (its type is PyCode_Type) before it is
believed, a stack is cut at the first frame that does not check out, and
its depth is bounded.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from gradetop.collectors.elf import NotElf, mapped_files, symbol_addresses
from gradetop.collectors.procmem import ReadFailed, RemoteMemory

MAX_DEPTH = 4096
MAX_THREADS = 4096
CHUNK_READ_LIMIT = 512 * 1024
"""The most of a thread's frame stack read at once (a 1000-deep recursion is about 100 kB)."""
SYMBOLS = ("_PyRuntime", "Py_Version", "PyCode_Type", "PyUnicode_Type")


class Unsupported(Exception):
    """This process's interpreter cannot be read here (not CPython, or a version we have no layout for)."""


class NotReady(Exception):
    """The interpreter has not started (or has ended): no thread state to read yet."""


@dataclass(frozen=True)
class Layout:
    """Byte offsets into one CPython minor version's structures (64-bit)."""

    runtime_interpreters_head: int
    interp_threads_head: int
    tstate_next: int
    tstate_frame: int
    """Where a thread state points to its current frame: to the frame itself (3.13), or to a _PyCFrame
    that holds it at `cframe_current_frame` (3.11, 3.12)."""
    cframe_current_frame: int | None
    tstate_native_thread_id: int
    tstate_datastack_chunk: int
    tstate_datastack_top: int
    chunk_data: int
    frame_code: int
    """f_code (3.11, 3.12), f_executable (3.13)."""
    frame_previous: int
    frame_prev_instr: int
    """prev_instr (3.11, 3.12), instr_ptr (3.13): the instruction whose line CPython reports."""
    frame_owner: int
    code_firstlineno: int
    code_filename: int
    code_qualname: int
    """The name py-spy shows (Class.method), as co_qualname."""
    code_linetable: int
    code_firsttraceable: int
    code_adaptive: int
    """Where the bytecode starts (co_code_adaptive): an instruction's offset is counted from here."""
    ob_type: int = 8
    var_size: int = 16
    bytes_data: int = 32
    str_length: int = 16
    str_state: int = 32
    ascii_data: int = 48
    compact_data: int = 72


# From offsetof and sizeof on each release's own headers (3.11.7, 3.12.1, 3.13.0), compiled with Py_BUILD_CORE.
# Taken as the same for every patch release of a minor version, as py-spy takes them; where one differs, the
# current frames' code objects do not check out at `Interpreter.open`, and py-spy samples it.
LAYOUTS = {
    (3, 11): Layout(runtime_interpreters_head=40, interp_threads_head=16, tstate_next=8, tstate_frame=56,
                    cframe_current_frame=8, tstate_native_thread_id=160, tstate_datastack_chunk=296,
                    tstate_datastack_top=304, chunk_data=24, frame_code=32, frame_previous=48, frame_prev_instr=56,
                    frame_owner=69, code_firstlineno=72, code_filename=112, code_qualname=128, code_linetable=136,
                    code_firsttraceable=168, code_adaptive=184),
    (3, 12): Layout(runtime_interpreters_head=40, interp_threads_head=72, tstate_next=8, tstate_frame=56,
                    cframe_current_frame=0, tstate_native_thread_id=144, tstate_datastack_chunk=232,
                    tstate_datastack_top=240, chunk_data=24, frame_code=0, frame_previous=8, frame_prev_instr=56,
                    frame_owner=70, code_firstlineno=68, code_filename=112, code_qualname=128, code_linetable=136,
                    code_firsttraceable=176, code_adaptive=192, ascii_data=40, compact_data=56),
    (3, 13): Layout(runtime_interpreters_head=632, interp_threads_head=7344, tstate_next=8, tstate_frame=72,
                    cframe_current_frame=None, tstate_native_thread_id=160, tstate_datastack_chunk=232,
                    tstate_datastack_top=240, chunk_data=24, frame_code=0, frame_previous=8, frame_prev_instr=56,
                    frame_owner=70, code_firstlineno=68, code_filename=112, code_qualname=128, code_linetable=136,
                    code_firsttraceable=184, code_adaptive=200, ascii_data=40, compact_data=56),
}
FRAME_OWNED_BY_GENERATOR = 1
FRAME_OWNED_BY_CSTACK = 3
"""3.12+: the frame each eval loop puts under the frames it runs (a shim, not the program's): not shown."""


@dataclass
class _Code:
    """A code object we read: what names it, and the lines of the offsets asked so far."""

    key: int
    """Unique per code object read: a frame is (key, offset), and a code object later put at the same
    address gets a new key."""
    header: bytes
    """Its pointers to name, file and line table: read again to tell it is still the same object."""
    name: str
    file: str
    first_line: int
    first_traceable: int
    linetable: bytes
    lines: dict[int, int]


def _u64(data: bytes, at: int) -> int:
    return int.from_bytes(data[at:at + 8], "little")


class Interpreter:
    """The main interpreter of CPython process `pid`. Used by one thread at a time."""

    def __init__(self, pid: int, memory: RemoteMemory, layout: Layout, addresses: dict[str, int],
                 version: tuple[int, int]) -> None:
        self.pid = pid
        self.version = version
        self._memory = memory
        self._layout = layout
        self._runtime = addresses["_PyRuntime"]
        self._code_type = addresses["PyCode_Type"]
        self._str_type = addresses["PyUnicode_Type"]
        self._codes: dict[int, _Code] = {}
        """By address: the code object last read there."""
        self._by_key: dict[int, _Code] = {}
        self._interp = 0
        self._checked: set[int] = set()
        self._keys = 0
        L = layout
        self._frame_span = L.frame_owner + 1 - L.frame_code
        # f_code, previous, prev_instr and owner in one unpack, from f_code on
        self._frame_fields = struct.Struct(
            f"<Q{L.frame_previous - L.frame_code - 8}xQ{L.frame_prev_instr - L.frame_previous - 8}xQ"
            f"{L.frame_owner - L.frame_prev_instr - 8}xB")
        self._tstate_span = max(L.tstate_frame, L.tstate_native_thread_id, L.tstate_datastack_top) + 8

    @classmethod
    def open(cls, pid: int) -> "Interpreter":
        """Find the interpreter of process `pid`; raises Unsupported, NotReady or procmem's errors."""
        try:
            files = mapped_files(pid)
            exe = os.readlink(f"/proc/{pid}/exe")
        except FileNotFoundError as exc:
            raise Unsupported(f"process {pid} has exited") from exc
        except PermissionError as exc:
            raise Unsupported(f"cannot read the memory map of process {pid}") from exc
        # libpython where the interpreter is a shared library (most builds but Debian's), else the program
        candidates = sorted((path for path in files if os.path.basename(path).startswith("libpython3")), reverse=True)
        candidates += [exe] if exe in files else []
        memory = RemoteMemory(pid)
        try:
            for path in candidates:
                try:
                    addresses = symbol_addresses(pid, path, files[path], SYMBOLS)
                except (OSError, NotElf, ValueError):
                    continue
                if "_PyRuntime" not in addresses:
                    continue
                if "Py_Version" not in addresses:  # before 3.11
                    raise Unsupported("Python older than 3.11")
                hexversion = int.from_bytes(memory.read(addresses["Py_Version"], 4), "little")
                version = (hexversion >> 24, (hexversion >> 16) & 0xFF)
                layout = LAYOUTS.get(version)
                if layout is None or not {"PyCode_Type", "PyUnicode_Type"} <= addresses.keys():
                    raise Unsupported(f"Python {version[0]}.{version[1]}")
                interpreter = cls(pid, memory, layout, addresses, version)
                interpreter._check()
                return interpreter
            raise Unsupported("no CPython interpreter found in its memory")
        except BaseException:
            memory.close()
            raise

    def close(self) -> None:
        """Let go of the process's memory (what `open` opened)."""
        self._memory.close()

    def _check(self, tries: int = 3) -> None:
        """Raise NotReady while the interpreter starts, Unsupported where our layout does not read it (a debug
        build's objects are larger, say): the code object of a thread's current frame must check out, in
        one of `tries` reads (a frame can return between two reads)."""
        for _ in range(tries):
            self.new_round()
            tops = []
            for _, state in self.threads():
                frame = self._current_frame(state)
                if frame:
                    tops.append(self._program_code(frame))
            if all(self._code(code) is not None for code in tops if code):
                return
        raise Unsupported(f"Python {self.version[0]}.{self.version[1]} of a layout gradetop does not know")

    def _current_frame(self, tstate: bytes) -> int:
        """The address of a thread's current frame (0: none), from its thread state as read."""
        L = self._layout
        at = _u64(tstate, L.tstate_frame)
        return self._pointer(at + L.cframe_current_frame) if at and L.cframe_current_frame is not None else at

    def _program_code(self, frame: int) -> int:
        """The code object address of the newest of the program's frames from `frame` down (0: none)."""
        for _ in range(8):
            code_at, previous, _, owner = self._frame_fields.unpack(self._memory.read(frame + self._layout.frame_code,
                                                                                      self._frame_span))
            if owner != FRAME_OWNED_BY_CSTACK:
                return code_at
            if not previous:
                break
            frame = previous
        return 0

    def _pointer(self, address: int) -> int:
        return _u64(self._memory.read(address, 8), 0)

    def threads(self) -> list[tuple[int, bytes]]:
        """(native thread id, its thread state as read) of each thread of the main interpreter: give the
        state to `stack` for its stack (only a thread that ran needs it)."""
        L = self._layout
        read = self._memory.read
        if not self._interp:  # the main interpreter stays where it is for the process's life
            self._interp = self._pointer(self._runtime + L.runtime_interpreters_head)
            if not self._interp:
                raise NotReady(f"process {self.pid} has no interpreter yet")
        state = self._pointer(self._interp + L.interp_threads_head)
        found = []
        while state and len(found) < MAX_THREADS:
            raw = read(state, self._tstate_span)
            found.append((_u64(raw, L.tstate_native_thread_id), raw))
            state = _u64(raw, L.tstate_next)
        return found

    def stack(self, tstate: bytes) -> list[tuple[int, int]]:
        """The stack of a thread (its state from `threads`), leaf first: see `walk`."""
        try:
            frame = self._current_frame(tstate)
        except ReadFailed:
            return []
        return self.walk(frame, self._chunk(tstate)) if frame else []

    def _chunk(self, tstate: bytes) -> tuple[int, bytes]:
        """(address, contents) of the used part of a thread's newest frame-stack chunk, where most of its
        frames are: one read for them all. (0, b"") where there is none or it does not read."""
        L = self._layout
        chunk, top = _u64(tstate, L.tstate_datastack_chunk), _u64(tstate, L.tstate_datastack_top)
        low = chunk + L.chunk_data
        if not chunk or not 0 < top - low <= CHUNK_READ_LIMIT:
            return 0, b""
        try:
            return low, self._memory.read(low, top - low)
        except ReadFailed:
            return 0, b""

    def new_round(self) -> None:
        """A new sampling tick: code objects are checked again once each (one may be freed and another
        put at its address between two ticks; within one, a frame running it holds it)."""
        self._checked.clear()

    def walk(self, frame: int, chunk: tuple[int, bytes] = (0, b"")) -> list[tuple[int, int]]:
        """The stack from `frame` down, leaf first: (code key, byte offset of its current instruction).
        Frames inside `chunk` are read from it, others one read each. Cut at the first frame that does
        not read as one (a torn read)."""
        L = self._layout
        read, unpack, code_of = self._memory.read, self._frame_fields.unpack_from, self._code
        low, data = chunk
        high = low + len(data)
        span = self._frame_span
        code_start = L.code_adaptive
        found: list[tuple[int, int]] = []
        steps = 0
        while frame and steps < MAX_DEPTH:
            steps += 1
            at = frame + L.frame_code
            try:
                if low <= at and at + span <= high:
                    code_at, previous, instr, owner = unpack(data, at - low)
                else:
                    code_at, previous, instr, owner = unpack(read(at, span))
            except ReadFailed:
                break
            if owner == FRAME_OWNED_BY_CSTACK:  # its f_executable need not be code (3.13: None)
                frame = previous
                continue
            code = code_of(code_at)
            if code is None:
                break
            offset = instr - (code_at + code_start)
            # A frame being set up has not reached its first traceable instruction: not shown (as CPython).
            if owner == FRAME_OWNED_BY_GENERATOR or offset >= 2 * code.first_traceable:
                found.append((code.key, max(offset, 0)))
            frame = previous
        return found

    def describe(self, key_offset: tuple[int, int]) -> tuple[str, str, int]:
        """(function, file, line) of a frame that `walk` gave."""
        key, offset = key_offset
        code = self._by_key[key]
        line = code.lines.get(offset)
        if line is None:
            line = code.lines[offset] = line_of(code.linetable, code.first_line, offset)
        return code.name, code.file, line

    def _code(self, address: int) -> _Code | None:
        known = self._codes.get(address)
        if known is not None and address in self._checked:
            return known
        L = self._layout
        try:
            raw = self._memory.read(address + L.ob_type, L.code_adaptive - L.ob_type)
        except ReadFailed:
            return None
        if _u64(raw, 0) != self._code_type:
            return None
        header = raw[L.code_firstlineno - L.ob_type:]
        self._checked.add(address)
        if known is not None and known.header == header:
            return known
        base = L.code_firstlineno
        try:
            name = self._string(_u64(header, L.code_qualname - base))
            file = self._string(_u64(header, L.code_filename - base))
            linetable_at = _u64(header, L.code_linetable - base)
            size = _u64(self._memory.read(linetable_at + L.var_size, 8), 0)
            linetable = self._memory.read(linetable_at + L.bytes_data, size) if 0 < size < 1 << 20 else b""
        except (ReadFailed, UnicodeDecodeError, ValueError):
            return None
        first_line = int.from_bytes(header[0:4], "little", signed=True)
        first_traceable = int.from_bytes(header[L.code_firsttraceable - base:L.code_firsttraceable - base + 4],
                                         "little", signed=True)
        self._keys += 1
        code = self._codes[address] = self._by_key[self._keys] = _Code(self._keys, header, name, file, first_line,
                                                                       first_traceable, linetable, {})
        return code

    def _string(self, address: int) -> str:
        """A str object's text (compact strings: every name and file name CPython makes)."""
        L = self._layout
        raw = self._memory.read(address, L.compact_data)
        if _u64(raw, L.ob_type) != self._str_type:
            raise ValueError("not a str")
        length = _u64(raw, L.str_length)
        state = int.from_bytes(raw[L.str_state:L.str_state + 4], "little")
        kind, compact, ascii = (state >> 2) & 7, (state >> 5) & 1, (state >> 6) & 1
        if not compact or kind not in (1, 2, 4) or length > 1 << 16:
            raise ValueError("not a compact str")
        if not length:
            return ""
        data = self._memory.read(address + (L.ascii_data if ascii else L.compact_data), length * kind)
        return data.decode({1: "latin-1", 2: "utf-16-le", 4: "utf-32-le"}[kind])


def line_of(linetable: bytes, first_line: int, offset: int) -> int:
    """The source line of the instruction at byte `offset`, from a 3.11 location table (co_linetable,
    Objects/locations.md): entries of (code units, line delta) with varints after their first byte."""
    line, end, i, n = first_line, 0, 0, len(linetable)
    while i < n:
        first = linetable[i]
        code = (first >> 3) & 15
        end += ((first & 7) + 1) * 2
        i += 1
        if code in (13, 14):  # no columns, long form: a signed varint line delta
            value, shift = 0, 0
            while i < n:
                byte = linetable[i]
                i += 1
                value |= (byte & 63) << shift
                shift += 6
                if not byte & 64:
                    break
            line += -(value >> 1) if value & 1 else value >> 1
        elif code in (11, 12):
            line += code - 10
        while i < n and not linetable[i] & 128:  # the rest of this entry
            i += 1
        if end > offset:  # (an entry with no line, code 15, keeps the last line: nearest there is)
            return line
    return line
