"""The one command-line front end of every script and trainer.

Every entry point ends with ``if __name__ == "__main__": run(main, Config, __doc__)``. A wrong path, a
missing model folder, a value of the wrong type or an unknown key ends the program with one line
``error: ...`` on stderr naming the argument and the fix, exit code 2, and no traceback. ``main``
checks its inputs before it writes anything, so a failed start leaves no partial output.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from biotalk.config import ConfigError, load_config
from biotalk.data.errors import InputError
from biotalk.ec import InvalidEC

T = TypeVar("T")


class UsageError(ValueError):
    """A bad command-line argument found by ``main`` (a missing model folder, an empty query, ...).

    The message names the argument and how to fix it.
    """


USER_ERRORS = (UsageError, ConfigError, FileNotFoundError, InputError, InvalidEC)


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage plus a message over two lines."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (usage: {self.prog} [--config FILE] [key=value ...])")


def parse_args(config_cls: type[T], argv: Sequence[str] | None = None, description: str | None = None) -> T:
    """``--config FILE key=value ...`` -> a type-checked ``config_cls``; raises ``UsageError``/``ConfigError``."""
    parser = _Parser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=None, help="YAML config file")
    parser.add_argument("overrides", nargs="*", help="key=value overrides (dots for nested keys)")
    args = parser.parse_args(argv)
    return load_config(config_cls, args.config, args.overrides)


def run(main: Callable[[T], Any], config_cls: type[T], description: str | None = None,
        argv: Sequence[str] | None = None) -> None:
    """Parse the command line into ``config_cls``, call ``main(cfg)``; user errors exit 2 with one line."""
    try:
        main(parse_args(config_cls, argv, description))
    except USER_ERRORS as err:
        message = " ".join(str(err).split())  # one line, whatever the message holds
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None
