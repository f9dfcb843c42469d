"""The execute step of `./course grade` on an existing Dask distributed cluster (`--scheduler ADDRESS`).

The coordinator (graders/engine/classgrade.py) still sanitizes and saves; only the execution of each sanitized
notebook goes to the cluster. A job carries the notebook's JSON and the small files beside it and returns the
executed notebook's JSON (classgrade.job_payload, classgrade.execute_job), so a worker needs no shared file
system: only this course installed (the same commit), whose source/ the hidden checks read. A worker runs the
jobs in the same fence as a local worker, with the warm launcher started once per worker (WarmLauncher).
"""
from __future__ import annotations

from distributed import Client, WorkerPlugin


class WarmLauncher(WorkerPlugin):
    """Starts the sandbox's warm launcher once per Dask worker, as the local pool's initializer does."""

    name = "nnfs-warm-launcher"

    def setup(self, worker) -> None:
        """worker: the distributed.Worker this plugin is registered on (unused: the launcher is per process)."""
        from .classgrade import _init_worker
        _init_worker()


class DaskPool:
    """The part of concurrent.futures.Executor the coordinator uses, over a Dask cluster.

    address: the scheduler's address, e.g. "tcp://10.0.0.5:8786"; or client: a distributed.Client already
    connected (then the caller closes it)."""

    def __init__(self, address: str | None = None, *, client: Client | None = None):
        self._own_client = client is None
        try:
            self.client = client or Client(address, set_as_default=False, timeout="20s")
        except OSError as exc:  # distributed raises OSError (TimeoutError among them) when no scheduler answers
            raise ConnectionError(f"no Dask scheduler answers at {address} ({exc}); start one (see the README, "
                                  "\"Grading on a Dask cluster\") or leave --scheduler out to grade here") from exc
        self.client.register_plugin(WarmLauncher())
        # pure=False: two identical submissions (a class handing in the same notebook) are two jobs
        self._executor = self.client.get_executor(pure=False)

    @property
    def workers(self) -> int:
        """int, the threads of every worker of the cluster: how many jobs can run at once."""
        return sum(self.client.nthreads().values()) or 1

    def submit(self, fn, *args):
        """fn(*args) on a worker; returns a concurrent.futures.Future of its result."""
        return self._executor.submit(fn, *args)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Stop sending jobs (cancelling the queued ones when cancel_futures) and disconnect from the cluster."""
        self._executor.shutdown(wait=wait and not cancel_futures)
        if self._own_client:
            self.client.close()
