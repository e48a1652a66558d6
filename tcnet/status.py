"""The status words of a run, in one place: how an optimizer's minimization ended
(`tcnet.optim.Result.status`) and what the store records for a run (its `status` attribute,
docs/FORMAT.md), with the groups that the optimizers, the store, studies and commands test them
against.

`Status` is a StrEnum: a member is the str it names, so it compares equal to (and hashes like) the
word a file holds, is written to files as that word, and a status read back from a file (a plain
str) is found in the groups below. The words are part of the file format: older files hold them,
so none is renamed here.
"""
from enum import StrEnum


class Status(StrEnum):
    """Every status word a run can have."""

    # how an optimizer's minimization ended (Result.status)
    CONVERGED = "converged"
    MAX_STEPS = "max_steps"
    STOPPED = "stopped"  # the callback asked
    NO_PROGRESS = "no_progress"  # the algorithm could not decrease the loss further
    NON_FINITE = "non-finite"  # the guard stopped it at a non-finite value
    DIVERGED = "diverged"  # an iterate left the divergence bounds
    # what the store records for a run
    RUNNING = "running"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


NUMERICAL_FAILURES = (Status.NON_FINITE, Status.DIVERGED)
"""The result statuses of a run that failed numerically: stored as they are (the run has a final
network, its last finite iterate), and commands exit with status 1 on them."""
ENDED = (Status.FINISHED, *NUMERICAL_FAILURES)
"""The stored statuses of a run that ran to its end, and so has a final network."""
STORED = (Status.RUNNING, *ENDED, Status.INTERRUPTED, Status.FAILED)
"""Every status the store records (a file with another is malformed)."""
RESUMABLE = (Status.INTERRUPTED, Status.FAILED)
"""The statuses of a run that can be continued from its checkpoint."""


def ended_status(optimizer_status: str) -> Status:
    """The stored status of a run whose optimizer returned `optimizer_status`: a numerical failure
    is kept, every other result is "finished"."""
    return Status(optimizer_status) if optimizer_status in NUMERICAL_FAILURES else Status.FINISHED
