import json
import subprocess
import sys

import pytest

# Reports how many bytes glibc holds in mmapped blocks while a 64 MB tensor is alive.
CHILD = """
import ctypes, ctypes.util, json, sys
import torch
from runs.process import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallInfo2
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
before = libc.mallinfo2().hblkhd
block = torch.empty(1 << 24)
print(json.dumps({"applied": applied, "mapped": libc.mallinfo2().hblkhd - before}))
"""


def _run(mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_large_blocks_come_from_the_heap_that_keeps_freed_memory():
    default, kept = _run("default"), _run("keep")
    # By default a 64 MB block is its own mapping, returned to the kernel when freed (and
    # its pages faulted in again at the next allocation); kept, it comes from the heap.
    assert not default["applied"] and default["mapped"] >= 64 << 20
    assert kept["applied"] and kept["mapped"] == 0
