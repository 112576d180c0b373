"""Real series to calibrate against, from data sets that packages ship (nothing downloaded).

* :func:`sp500_returns`: daily log returns of the S&P 500 index, from the ``arch`` package's
  bundled data set (``arch.data.sp500``: daily prices from 1999 to the end of 2018, 5031
  trading days), behind the optional ``data`` extra (``pip install 'minidiff[data]'``).
  ``minidiff calibrate --model cont --data sp500`` calibrates Cont's model to the last T of
  them (T = ``--timesteps``).
* :func:`write_csv`: a series as a CSV file that ``minidiff calibrate --data FILE.csv`` reads
  back exactly (one row per time step, a header line), for a series from anywhere else.

The return on day t is r_t = log P_t − log P_{t−1} of the adjusted close P (a fraction, not a
percentage: a 1% move is 0.01), so the first day of the data set has no return.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import minidiff as md
from minidiff.core import shape_of

__all__ = ["sp500_returns", "write_csv", "SP500"]

SP500 = "sp500"
"""The name ``minidiff calibrate --data`` gives the bundled S&P 500 series."""


def sp500_returns(n_days: int | None = None) -> Any:
    """The last ``n_days`` daily log returns of the S&P 500 (all 5030 with None), shape
    (n_days,), as a backend array; oldest first.

    Raises ImportError naming the ``data`` extra when ``arch`` is not installed, and
    ValueError when more days are asked for than the data set holds."""
    try:
        from arch.data import sp500
    except ImportError as exc:
        raise ImportError("sp500_returns: the S&P 500 series comes from the arch package's "
                          "bundled data; install it with pip install 'minidiff[data]' (or "
                          "pip install arch)") from exc
    prices = md.asarray(sp500.load()["Adj Close"].to_numpy(dtype=float))
    returns = md.subtract(md.log(md.getitem(prices, slice(1, None))),
                          md.log(md.getitem(prices, slice(None, -1))))
    available = shape_of(returns)[0]
    if n_days is None:
        return returns
    if isinstance(n_days, bool) or not isinstance(n_days, int) or not 2 <= n_days <= available:
        raise ValueError(f"sp500_returns: n_days must be an integer from 2 to {available} "
                         f"(the daily returns in arch's data set), got {n_days!r}")
    return md.getitem(returns, slice(available - n_days, None))


def write_csv(path: str | Path, series: Any, header: str | list[str] = "value") -> Path:
    """Write a series of shape (T,) or (T, k) as CSV: a header line, then one row per time
    step; the numbers as Python's shortest round-tripping repr, so reading back is exact."""
    values = md.get_backend().to_host(md.stop_gradient(md.asarray(series))).tolist()
    rows = [[v] if not isinstance(v, list) else v for v in values]
    names = [header] if isinstance(header, str) else list(header)
    if rows and len(names) != len(rows[0]):
        raise ValueError(f"write_csv: {len(names)} header names for {len(rows[0])} columns")
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        writer.writerows([[repr(float(v)) for v in row] for row in rows])
    return path
