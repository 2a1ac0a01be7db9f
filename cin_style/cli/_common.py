"""Helpers shared by the command-line tools."""

import logging
import os
import sys


def fail(message):
    """Ends a command-line tool with a one-line error on stderr and exit status 1."""
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "cin_style"
    print(f"{program}: error: {message}", file=sys.stderr)
    raise SystemExit(1)


def reject_extra_args(argv):
    """absl passes leftover positional words in `argv`; the tools take none."""
    if len(argv) > 1:
        fail(f"Unexpected arguments: {' '.join(argv[1:])}")


def setup_logging():
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)
