"""One way to spread file work (decoding, hashing) over threads."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable


def parallel(fn: Callable, values: Iterable) -> list:
    """``[fn(v) for v in values]`` on threads: OpenCV decoding releases the GIL."""
    values = list(values)
    workers = min(8, os.cpu_count() or 1, max(len(values), 1))
    if workers == 1:
        return [fn(v) for v in values]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, values))
