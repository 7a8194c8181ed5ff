"""``--ipi-route coordinator``: the coordinator as the interrupt controller.

Why it exists: KVM's requesters kick their targets themselves.  A study of
what a central interrupt router costs as vCPUs grow needs the other design
too: requesters only post a routing request, and one router (a thread in the
coordinator, started after every vCPU is forked) delivers each kick.  Each
``route_req[t][r]`` counter has one writer (requester r); the router keeps
what it delivered, so no kick is merged or lost.
"""

from __future__ import annotations

import threading

import numpy as np


def send_ipi(ctx, t: int) -> None:
    """Deliver a kick to vCPU t: directly (KVM), or through the coordinator
    acting as the interrupt controller (``--ipi-route coordinator``)."""
    if ctx.params.ipi_route == "direct":
        ctx.kick[t].release()
        return
    # route_req[t][me] has one writer (us); the router counts deliveries
    a = ctx.a_route + t * ctx.n_req + ctx.pid_index
    ctx.W[a] = ctx.W[a] + 1
    ctx.sems["router"].release()


class Router:
    def __init__(self, arena, sems, n_vcpus: int):
        self.req = arena.route_req
        self.kick = [sems[f"kick{v}"] for v in range(n_vcpus)]
        self.sem = sems["router"]
        self.done = np.zeros_like(self.req)
        self.delivered = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="smpemu-router", daemon=True)

    def start(self) -> "Router":
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sem.acquire(0.05)
            except Exception:
                pass
            self.deliver()

    def deliver(self) -> None:
        cur = self.req.copy()  # each cell written by one requester; a snapshot is enough
        for t, r in zip(*np.nonzero(cur - self.done)):
            for _ in range(int(cur[t, r] - self.done[t, r])):
                self.kick[t].release()
                self.delivered += 1
        self.done = cur

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.deliver()
