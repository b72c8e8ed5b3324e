"""The client lease: while this process lives, a daemon thread renews the Lease
``<c>-client`` every ``duration / 3`` seconds; when the process dies (SIGKILL included) the
renewals stop and the operator deletes the cluster once ``renewTime + duration`` passed.

The decision of when to renew next and how late the lease is are pure functions
(:func:`next_renewal`, :func:`lease_state`); :class:`LeaseKeeper` only calls them and the
``renew`` callable it is given.

Not here: building the Lease (``spec.lease_manifest``), the API calls (``api.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("shoal.kube")

#: Longest pause between attempts after a failed renewal.
RETRY_MAX = 5.0


def next_renewal(last_success: float, duration: float, failures: int, now: float) -> float:
    """Seconds to wait before the next renewal attempt.

    After a success: ``duration / 3`` from it. After ``failures`` failed attempts in a
    row: retry after 1, 2, 4 ... seconds (at most :data:`RETRY_MAX`), so a short API
    outage costs no more than a few seconds of the lease.
    """
    if failures <= 0:
        return max(0.0, last_success + duration / 3 - now)
    return min(float(2 ** (failures - 1)), RETRY_MAX)


def lease_state(last_success: float, duration: float, now: float) -> str:
    """``fresh`` (renewed within a third of the duration, plus slack), ``late`` (a renewal
    was missed: the operator deletes the cluster if it stays so) or ``expired`` (the
    operator may already have deleted it)."""
    age = now - last_success
    if age >= duration:
        return "expired"
    if age > duration * 2 / 3:
        return "late"
    return "fresh"


class LeaseKeeper:
    """Calls ``renew()`` every ``duration / 3`` seconds from a daemon thread until
    :meth:`stop`. ``renew`` raises on failure; failures are retried and logged, with a
    warning once the lease is late."""

    def __init__(self, renew: Callable[[], None], duration: float, name: str, clock=time.monotonic) -> None:
        self._renew = renew
        self._duration = float(duration)
        self._name = name
        self._clock = clock
        self._stop = threading.Event()
        self.last_success = clock()
        self.failures = 0
        self.last_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"shoal-lease-{name}", daemon=True)

    def start(self) -> LeaseKeeper:
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def state(self) -> str:
        return lease_state(self.last_success, self._duration, self._clock())

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        warned = False
        while not self._stop.wait(next_renewal(self.last_success, self._duration, self.failures, self._clock())):
            try:
                self._renew()
            except Exception as e:  # noqa: BLE001 - any failure is retried; the thread must live
                self.failures += 1
                self.last_error = e
                state = self.state()
                level = logging.WARNING if state != "fresh" else logging.DEBUG
                if state != "fresh" and not warned:
                    warned = True
                    log.warning(
                        "shoal: cannot renew the client lease of cluster %s (%s attempts): %s; the operator "
                        "deletes the cluster once the lease is %.0f s old (it is %s)",
                        self._name, self.failures, e, self._duration, state,
                    )
                else:
                    log.log(level, "shoal: lease renewal of %s failed: %s", self._name, e)
                continue
            if warned:
                log.warning("shoal: the client lease of cluster %s is renewed again", self._name)
            warned = False
            self.failures = 0
            self.last_error = None
            self.last_success = self._clock()
