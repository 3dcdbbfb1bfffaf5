"""Peak memory of one block of work, measured the same way by every benchmark worker (one fresh process each).

CPU: the peak RSS (`VmHWM`) after resetting the high-water mark through `/proc/self/clear_refs`, minus the RSS then;
CUDA: `max_memory_allocated` minus `memory_allocated` after resetting the peak statistics.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path


def _rss_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


@contextmanager
def peak_memory(on_cuda: bool):
    """`with peak_memory(on_cuda) as measured: ...` leaves `measured["peak_memory_mb"]` set after the block."""
    import torch

    measured: dict[str, float] = {}
    if on_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS high-water mark (VmHWM)
        baseline = _rss_bytes("VmRSS")
    yield measured
    peak = (torch.cuda.max_memory_allocated() if on_cuda else _rss_bytes("VmHWM")) - baseline
    measured["peak_memory_mb"] = peak / 2**20
