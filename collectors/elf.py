"""Where a named symbol of a program or shared library lies in a running process.

A 64-bit little-endian ELF file's symbol tables (.symtab, else .dynsym) give
a symbol's offset in the file's image; the process's memory map gives where
the image was loaded. Reads the file through /proc/PID/root, so a process
in a container is read from its own files. Tables are read once per file
(workers of one job share their interpreter's binary).
"""

from __future__ import annotations

import functools
import os
import struct

SHT_SYMTAB, SHT_DYNSYM = 2, 11
PT_LOAD = 1


class NotElf(ValueError):
    pass


def mapped_files(pid: int) -> dict[str, int]:
    """Path -> lowest address it is mapped at in process `pid`, of every file mapped from its start."""
    found: dict[str, int] = {}
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) < 6 or not fields[5].startswith("/") or int(fields[2], 16) != 0:
                continue
            path, start = fields[5].rstrip("\n"), int(fields[0].split("-")[0], 16)
            if path not in found or start < found[path]:
                found[path] = start
    return found


def symbol_addresses(pid: int, path: str, mapped_at: int, names: tuple[str, ...]) -> dict[str, int]:
    """The addresses in process `pid` of those `names` that file `path` (mapped from `mapped_at`) defines."""
    real = f"/proc/{pid}/root{path}"
    try:
        st = os.stat(real)
    except OSError:
        real, st = path, os.stat(path)
    first_load, symbols = _symbols(real, st.st_ino, st.st_mtime_ns, names)
    return {name: mapped_at - first_load + value for name, value in symbols.items()}


@functools.lru_cache(maxsize=32)
def _symbols(path: str, inode: int, mtime_ns: int, names: tuple[str, ...]) -> tuple[int, dict[str, int]]:
    """(the page-aligned address of the first loadable segment, name -> value) of the ELF file at `path`."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise NotElf(f"{path} is not a 64-bit little-endian ELF file")
    phoff, shoff = struct.unpack_from("<QQ", data, 0x20)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 0x36)
    loads = [struct.unpack_from("<IIQQ", data, phoff + i * phentsize) for i in range(phnum)]
    first = min(((offset, vaddr) for kind, _, offset, vaddr in loads if kind == PT_LOAD), default=(0, 0))
    first_load = (first[1] - first[0]) & ~0xFFF
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    wanted = {name.encode(): name for name in names}
    found: dict[str, int] = {}
    for kind in (SHT_SYMTAB, SHT_DYNSYM):  # .symtab, where not stripped, names more
        for _, sh_type, _, _, offset, size, link, _, _, entsize in sections:
            if sh_type != kind or not entsize:
                continue
            strings = sections[link][4]
            for at in range(offset, offset + size, entsize):
                name_at, _, _, shndx, value, _ = struct.unpack_from("<IBBHQQ", data, at)
                if not name_at or not shndx:
                    continue
                end = data.index(b"\0", strings + name_at)
                name = wanted.get(data[strings + name_at:end])
                if name is not None:
                    found.setdefault(name, value)
        if len(found) == len(wanted):
            break
    return first_load, found
