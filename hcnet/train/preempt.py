"""Preemption: SIGTERM and SIGUSR1 stop a run at a step boundary, with a checkpoint.

SLURM and Kubernetes send SIGTERM some time before they kill a job (SLURM's
``--signal=USR1@120`` sends SIGUSR1 instead, so that SIGTERM can keep its meaning). While a
run trains, :class:`StopSignals` turns both into a request: the current step finishes, the
ranks agree on the step to stop at (one small allreduce per step under Horovod), rank 0
writes ``last.ckpt`` at that position (epoch, step within the epoch, the epoch's running
loss) and the run ends with :data:`EXIT_PREEMPTED` (75, ``EX_TEMPFAIL``: "try again"). A
request that arrives during validation or a checkpoint write is served once that is done.
``resume=auto`` then continues at the same step with the same data order: on CPU (float32)
it ends with exactly the parameters of an uninterrupted run.

A second signal of either kind while a request is pending restores the default action and
kills the process (for a user who does not want to wait for the step to end).
"""
import signal
import threading

__all__ = ['EXIT_PREEMPTED', 'SIGNALS', 'Preempted', 'StopSignals']

#: exit code of a run stopped by SIGTERM / SIGUSR1 after writing its checkpoint
EXIT_PREEMPTED = 75
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Preempted(Exception):
    """The run stopped at a signal's request, after writing a checkpoint (the message says
    where); ``hcnet train`` exits with :data:`EXIT_PREEMPTED`."""


class StopSignals:
    """While active (a context manager), SIGTERM and SIGUSR1 set :attr:`received` (the
    signal's name) instead of killing the process; the previous handlers are restored on
    exit. Outside the main thread (where Python cannot install handlers) it does nothing."""

    def __init__(self, signals=SIGNALS):
        self.signals, self.received, self._previous = signals, None, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
        return False

    def _handle(self, signum, frame):   # pylint: disable=unused-argument
        if self.received is not None:   # asked twice: do what the signal normally does
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        self.received = signal.Signals(signum).name

    @property
    def pending(self):
        return self.received is not None
