"""Host files of arrays, for run state (``minidiff.inference.run_state``): NumPy's .npz format,
never pickled. Saving refuses object arrays; loading uses ``allow_pickle=False``, so a file
that holds a pickle raises instead of running it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["host_save_npz", "host_load_npz"]


def host_save_npz(file: Any, arrays: dict[str, Any]) -> None:
    """Write the host arrays ``arrays`` (name -> array) to the open binary ``file`` as .npz."""
    host = {name: np.asarray(a) for name, a in arrays.items()}
    for name, a in host.items():
        if a.dtype.hasobject:
            raise TypeError(f"host_save_npz: {name!r} is an object array, which .npz could "
                            f"only store by pickling it")
    np.savez(file, **host)


def host_load_npz(file: Any) -> dict[str, np.ndarray]:
    """The arrays of the .npz ``file`` (a path or an open binary file), with
    ``allow_pickle=False``: a pickled object array raises ``ValueError``."""
    with np.load(file, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}
