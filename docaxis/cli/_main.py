"""Root command group and shared helpers."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from docaxis import __version__

#: Exit codes shared by every command.
EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2

stdout = Console(highlight=False, soft_wrap=True)
if not stdout.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
    # piped or captured: tables need not fit an 80-column guess (COLUMNS still rules)
    stdout = Console(highlight=False, soft_wrap=True, width=160)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class InputError(click.ClickException):
    """A file could not be read or written (exit code 2, like a usage error)."""

    exit_code = EXIT_USAGE

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"cannot use {name!r}: {reason}")


def read_input(name: str, max_bytes: int | None = None) -> bytes:
    """Bytes of a file, or of standard input for ``-``.

    Raises
    ------
    InputError
        When the file cannot be read (exit code 2).
    """
    try:
        if name == "-":
            return sys.stdin.buffer.read(max_bytes + 1 if max_bytes else -1)
        path = Path(name)
        if max_bytes is not None and path.stat().st_size > max_bytes:
            return path.open("rb").read(max_bytes + 1)
        return path.read_bytes()
    except OSError as exc:
        raise InputError(name, exc.strerror or str(exc)) from None


#: the largest package a command reads unless ``--max-bytes`` says otherwise: a file
#: larger than ``ParseLimits.stream_above`` is read by streaming, so memory holds its
#: structure, not its attachments
DEFAULT_MAX_BYTES = 512 * 1024 * 1024


def max_bytes_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--max-bytes``: the largest package the command reads (checked on a file's size
    before it is read)."""
    return click.option(
        "--max-bytes", type=click.IntRange(min=1), default=DEFAULT_MAX_BYTES,
        show_default=True,
        help="Refuse a package larger than this many bytes (judged on the file's size, "
             "before reading it).")(command)


@contextlib.contextmanager
def package_file(name: str, max_bytes: int) -> Iterator[Path]:
    """The package file ``name``; for ``-``, standard input copied in chunks to a
    temporary file (at most ``max_bytes`` + 1 bytes, so a larger one is refused by size).

    Raises
    ------
    InputError
        When the file does not exist or standard input cannot be read.
    """
    if name != "-":
        path = Path(name)
        if not path.is_file():
            raise InputError(name, "no such file")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="docaxis-stdin-") as folder:
        path = Path(folder) / "package.edxml"
        left = max_bytes + 1
        try:
            with path.open("wb") as spool:
                while left and (block := sys.stdin.buffer.read(min(left, 1 << 20))):
                    spool.write(block)
                    left -= len(block)
        except OSError as exc:
            raise InputError(name, exc.strerror or str(exc)) from None
        yield path


def expand_inputs(names: tuple[str, ...]) -> list[str]:
    """Files as given; a directory stands for its ``*.edxml`` and ``*.xml`` files."""
    files: list[str] = []
    for name in names:
        path = Path(name)
        if name != "-" and path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in (".edxml", ".xml"))
            files += [str(p) for p in found]
        else:
            files.append(name)
    return files


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="docaxis")
def cli() -> None:
    """docaxis — the inter-agency electronic document exchange axis (edXML, QCVN 102:2016).

    Validate, inspect, build, sign and verify edXML packages; manage a dev PKI;
    run nodes (serve, demo) and trace documents.
    """


def main() -> None:
    """Console-script entry point."""
    from docaxis.cli import _dsig, _edxml, _evidence, _keys, _relay  # noqa: F401  (register)

    cli(prog_name="docaxis")
