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
