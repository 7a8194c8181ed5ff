"""Exit codes and the exceptions that map onto them.

Every command exits with one of these codes; user mistakes raise UsageError
and are printed as one line, never as a traceback.

May import: nothing.
"""

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_VIOLATION = 3
EXIT_ABORTED = 4
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class SmpemuError(Exception):
    exit_code = EXIT_INTERNAL


class UsageError(SmpemuError):
    """Bad input from the user: one clear line, exit 2."""

    exit_code = EXIT_USAGE


class AbortError(SmpemuError):
    """A vCPU died or stopped answering: the run is aborted, exit 4."""

    exit_code = EXIT_ABORTED


class AckTimeout(AbortError):
    """A bounded wait ran out (flush ack, lock, barrier)."""


def read_json_object(path: str, what: str) -> dict:
    """The JSON object in file ``path`` (a script, a scenario, a replay file);
    an unreadable file, bad JSON or another JSON value is one UsageError line
    naming ``what``."""
    import json

    try:
        with open(path) as f:
            doc = json.load(f)
    except OSError as e:
        raise UsageError(f"{what} {path}: {e.strerror}") from None
    except ValueError as e:
        raise UsageError(f"{what} {path}: not JSON ({e})") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{what} {path}: expected a JSON object")
    return doc


def check_number(name: str, value, lo: float | None = None, hi: float | None = None, *,
                 lo_open: bool = False, finite: bool = True, where: str = "") -> float:
    """``value`` as a number between ``lo`` and ``hi`` (``lo_open``: > lo), or
    one UsageError line naming the option (``--ack-timeout``) or the file and
    key (``where="script s.json: "``, ``name="timeout"``).  NaN, infinities
    (unless ``finite=False``), booleans and strings are refused here, before
    they reach a semaphore's timeout or a C int."""
    import math

    what = f"{where}{name}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{what} must be a number (got {value!r})")
    if math.isnan(value) or (finite and math.isinf(value)):
        raise UsageError(f"{what} must be a finite number (got {value})")
    if lo is not None and (value <= lo if lo_open else value < lo):
        if hi is not None and not lo_open:
            raise UsageError(f"{what} must be between {lo:g} and {hi:g} (got {value:g})")
        raise UsageError(f"{what} must be {'>' if lo_open else '>='} {lo:g}"
                         + (f" and <= {hi:g}" if hi is not None else "") + f" (got {value:g})")
    if hi is not None and value > hi:
        if lo is not None and not lo_open:
            raise UsageError(f"{what} must be between {lo:g} and {hi:g} (got {value:g})")
        raise UsageError(f"{what} must be <= {hi:g} (got {value:g})")
    return value
