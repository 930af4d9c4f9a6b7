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

import numpy as np

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


_SYMBOL = np.dtype([("name", "<u4"), ("info", "u1"), ("other", "u1"), ("shndx", "<u2"), ("value", "<u8"),
                    ("size", "<u8")])


@functools.lru_cache(maxsize=32)
def _symbols(path: str, inode: int, mtime_ns: int, names: tuple[str, ...]) -> tuple[int, dict[str, int]]:
    """(the page-aligned address of the first loadable segment, name -> value) of the ELF file at `path`.
    Reads its headers and symbol tables only: a libpython is 20+ MB, its tables a few hundred kB."""
    with open(path, "rb") as f:
        def read(offset: int, size: int) -> bytes:
            data = os.pread(f.fileno(), size, offset)
            if len(data) != size:
                raise NotElf(f"{path} is cut short")
            return data

        head = read(0, 64)
        if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            raise NotElf(f"{path} is not a 64-bit little-endian ELF file")
        phoff, shoff = struct.unpack_from("<QQ", head, 0x20)
        phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", head, 0x36)
        table = read(phoff, phnum * phentsize)
        loads = [struct.unpack_from("<IIQQ", table, i * phentsize) for i in range(phnum)]
        first = min(((offset, vaddr) for kind, _, offset, vaddr in loads if kind == PT_LOAD), default=(0, 0))
        first_load = (first[1] - first[0]) & ~0xFFF
        table = read(shoff, shnum * shentsize)
        sections = [struct.unpack_from("<IIQQQQIIQQ", table, i * shentsize) for i in range(shnum)]
        found: dict[str, int] = {}
        for kind in (SHT_SYMTAB, SHT_DYNSYM):  # .symtab, where not stripped, names more
            for _, sh_type, _, _, offset, size, link, _, _, entsize in sections:
                if sh_type != kind or entsize != _SYMBOL.itemsize:
                    continue
                strings = read(sections[link][4], sections[link][5])
                # Where each name starts in the string table (a name may end another one: no \0 before it)
                starts = {}
                for name in names:
                    key = name.encode() + b"\0"
                    at = strings.find(key)
                    while at >= 0:
                        starts[at] = name
                        at = strings.find(key, at + 1)
                if not starts:
                    continue
                symbols = np.frombuffer(read(offset, size - size % entsize), dtype=_SYMBOL)
                hits = symbols[np.isin(symbols["name"], list(starts)) & (symbols["shndx"] != 0)]
                for name_at, value in zip(hits["name"].tolist(), hits["value"].tolist()):
                    found.setdefault(starts[name_at], value)
            if len(found) == len(names):
                break
    return first_load, found
