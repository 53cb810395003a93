"""The exceptions a user can act on, and how a command-line program reports them.

Why: a researcher who passes a wrong dataset name or a missing file should see one readable line
that says what to do, not a traceback through torch internals. The CLI, ``sslmem plan`` and the
notebook runner print ``str(err)`` for an :class:`SSLMemError` and stop.

Three kinds of trouble with a file are told apart, because they call for opposite actions:
  * absent: compute it;
  * unreadable (permissions, I/O errors): stop with a message and touch nothing —
    another user's or a failing disk's file is not ours to replace (:func:`unreadable`);
  * proven corrupt (its bytes fail their hash or cannot be parsed): only such a file may be
    rebuilt (:class:`CorruptFile`).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import warnings


class SSLMemError(Exception):
    """A failure with a message meant for the user (what went wrong and how to fix it)."""


class CorruptFile(SSLMemError):
    """A file whose bytes were read but are proven wrong (failed hash, unparsable): rebuildable."""


class Stopped(BaseException):
    """SIGTERM (or SIGHUP) arrived: unwind like Ctrl-C so that every ``finally`` runs.

    Not a ``KeyboardInterrupt``, so code that handles Ctrl-C does not mistake it for one; the
    command-line entry points report it and exit with 128 + the signal number.
    """

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def unknown_choice(kind: str, value: object, choices) -> SSLMemError:
    """Error for a value outside a fixed set: names the kind and lists the valid choices."""
    listed = ", ".join(sorted(str(c) for c in choices))
    return SSLMemError(f"unknown {kind} {value!r}; choose one of: {listed}")


def unreadable(err: BaseException) -> bool:
    """True for an operating-system refusal (permissions, I/O, a folder where a file should be),
    as opposed to bytes that were read and found wrong."""
    return isinstance(err, OSError) and err.errno is not None


def read_error(path, err: OSError) -> SSLMemError:
    """The one-line message for a file that exists but cannot be read (nothing is touched)."""
    return SSLMemError(f"cannot read {path} ({type(err).__name__}: {err.strerror or err}); fix "
                       "its permissions or the disk, or point the setting that chose it "
                       "elsewhere — nothing was changed")


def one_line(err: BaseException) -> str:
    """``str(err)`` on a single line (a message a terminal or a log shows whole)."""
    return " ".join(str(err).split())


@contextlib.contextmanager
def command_line(prog: str, resume, error_code: int = 2):
    """Run a command-line program's body: one line for an error, a signal or a warning.

    Inside the block Ctrl-C raises ``KeyboardInterrupt`` (even where the shell ignored SIGINT),
    SIGTERM and SIGHUP raise :class:`Stopped` (so temporary files are removed and locks
    released as for Ctrl-C), and warnings print as ``prog: warning: ...``. The block sets
    ``status.code``; an :class:`SSLMemError` prints ``prog: error: ...`` and sets
    ``error_code``, Ctrl-C sets 130 and a signal 128 + its number, each after one line that
    ends with ``resume`` (a string, or a function called then).
    """
    status = _Status()
    handlers = {}
    wanted = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: _raise_stopped,
              signal.SIGHUP: _raise_stopped}
    for signum, handler in wanted.items():
        with contextlib.suppress(ValueError):  # not in the main thread: leave signals alone
            handlers[signum] = signal.signal(signum, handler)
    shown = warnings.showwarning
    warnings.showwarning = lambda message, *_a, **_k: print(
        f"{prog}: warning: {one_line(message)}", file=sys.stderr, flush=True)
    try:
        yield status
    except SSLMemError as err:
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr, flush=True)
        status.code = error_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted (Ctrl-C); {_text(resume)}", file=sys.stderr, flush=True)
        status.code = 130
    except Stopped as stop:
        name = signal.Signals(stop.signum).name
        print(f"{prog}: stopped by {name}; {_text(resume)}", file=sys.stderr, flush=True)
        status.code = 128 + stop.signum
    finally:
        warnings.showwarning = shown
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


class _Status:
    code = 0


def _text(resume) -> str:
    return resume() if callable(resume) else resume


def _raise_stopped(signum, _frame):
    raise Stopped(signum)


@contextlib.contextmanager
def signals_deferred(signums=(signal.SIGINT, signal.SIGTERM, signal.SIGHUP)):
    """Hold Ctrl-C and SIGTERM/SIGHUP until the block ends, then act on them as usual.

    Why: a ``KeyboardInterrupt`` raised inside ``torch.save`` unwinds through its zip writer,
    whose cleanup then fails with an unrelated ``RuntimeError`` that hides the interruption
    (a traceback instead of the one-line "interrupted; rerun to resume"). Writing a checkpoint
    takes well under a second, so the signal waits for it and the checkpoint is kept.
    Outside the main thread (where handlers cannot be set) the block runs unchanged.
    """
    caught, previous = [], {}
    for signum in signums:
        with contextlib.suppress(ValueError):
            previous[signum] = signal.signal(signum, lambda s, _f: caught.append(s))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(caught):
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)
