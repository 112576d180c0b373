"""The ``minidiff`` command: one module per subcommand, dispatched here.

* ``minidiff calibrate`` (:mod:`minidiff.cli.calibrate`): calibrate an agent-based model by
  generalised variational inference: a table of the posterior, a plot, checkpoints, Dask.
* ``minidiff trace --example NAME`` (:mod:`minidiff.cli.trace`): the Wengert list of one of the
  tutorial's examples, once per sweep, and which mode of AD is cheaper for it and why.
* ``minidiff memory --agents N --steps 10,100,1000`` (:mod:`minidiff.cli.memory`): peak memory
  and time of the primal, forward mode, reverse mode and checkpointed reverse mode of a long
  simulation as T grows, and what the growth shows.

Each subcommand module has a ``DESCRIPTION``, ``configure_parser(parser)`` and
``command(args, parser, emit)``; this module only builds the parser and hands over.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from . import calibrate, memory, trace

__all__ = ["main", "build_parser"]

SUBCOMMANDS = {
    "calibrate": (calibrate, "fit a posterior over a model's parameters (GVI), with plots"),
    "trace": (trace, "print a tutorial example's Wengert list with both sweeps"),
    "memory": (memory, "how each mode's memory grows with the number of time steps"),
}


def _emit(text: str) -> None:
    """Print, replacing characters (ẋ, ȳ, ², ...) that the terminal's encoding lacks."""
    try:
        print(text)
    except UnicodeEncodeError:
        encoding = getattr(sys.stdout, "encoding", None) or "ascii"
        print(text.encode(encoding, errors="replace").decode(encoding))


def build_parser() -> argparse.ArgumentParser:
    """The ``minidiff`` parser, with one subparser per subcommand."""
    parser = argparse.ArgumentParser(
        prog="minidiff",
        description="minidiff: automatic differentiation from scratch, in forward and reverse "
                    "mode.")
    parser.add_argument("--version", action="version", version=f"minidiff {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, summary) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=summary, description=module.DESCRIPTION,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        module.configure_parser(sub)
        sub.set_defaults(module=module, subparser=sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``minidiff`` command with ``argv`` (default: the process's arguments)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 1
    return args.module.command(args, args.subparser, emit=_emit)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
