"""Helpers shared by the command-line tools."""

import logging
import sys

from absl import app


def fail(message):
    """Ends a command-line tool with a one-line error and exit status 1."""
    raise app.UsageError(message, exitcode=1)


def setup_logging():
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s", stream=sys.stderr)
