"""The command line's consoles and its one way to print an error (one line, never wrapped)."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
# Messages on stderr are lines people grep and tests match: never wrapped at the terminal width
# (a long path would otherwise be split mid-message), and no highlighting inside them.
err = Console(stderr=True, soft_wrap=True, highlight=False)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `error: message` on stderr as one line (markup in the message shown as-is) and exit."""
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)
