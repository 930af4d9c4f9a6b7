"""The gradetop command fixes glibc's mmap threshold, so freed columns go back to the system
(model/allocator.py; bench/bench_ingest.py measures what it saves)."""

import platform

import pytest

from gradetop.model.allocator import return_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt's mmap threshold is glibc's")
def test_the_threshold_is_fixed_on_glibc():
    assert return_freed_memory() is True
