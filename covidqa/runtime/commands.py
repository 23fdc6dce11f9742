"""Running a command-line command: user errors as one line, Ctrl-C and SIGTERM as a clean stop.

:func:`run_command` runs a command (a function) and turns its outcome into an exit status: its own (0 for
``None``); one of ``user_errors`` printed as ``error: <message>`` with status 2 (no traceback: the message names the
problem and the fix); Ctrl-C or SIGTERM (:func:`stop_on_signals`: both raise ``KeyboardInterrupt``, so a training
loop saves its checkpoint first) printed as ``stopped`` with status 130.

Example::

    sys.exit(run_command(lambda: train(...), (FileNotFoundError, ValueError), 'stopped; run it again to resume'))
"""
from __future__ import annotations

import sys
from typing import Callable, Optional, Tuple, Type


def raise_keyboard_interrupt(signum, frame):
    """SIGTERM (and SIGINT, which a shell's background job ignores) stop training the way Ctrl-C does: the
    training loop saves its checkpoint before it exits."""
    raise KeyboardInterrupt(f'signal {signum}')


def stop_on_signals() -> None:
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, raise_keyboard_interrupt)


def run_command(command: Callable[[], Optional[int]], user_errors: Tuple[Type[BaseException], ...],
                stopped: str = 'stopped') -> int:
    """The exit status of ``command`` (see the module docstring)."""
    stop_on_signals()
    try:
        return command() or 0
    except user_errors as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(stopped, file=sys.stderr)
        return 130


__all__ = ['raise_keyboard_interrupt', 'run_command', 'stop_on_signals']
