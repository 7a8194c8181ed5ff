"""The primitives of herd7's ``linux-kernel.def`` (plus ``spin_unlock_wait``).

Why it exists: the C parser accepts a call only if it is in this table, and
``smpemu.litmus.program`` lowers each call by its ``kind``; one table, read
by both, says what every primitive takes and does.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Prim:
    """One primitive of linux-kernel.def: how many arguments, which is the
    location, what it does (``kind``) and whether it returns a value."""

    name: str
    kind: str
    nargs: int
    value: bool = False
    loc: int | None = 0  # index of the location argument, None: no location
    op: str | None = None  # rmw: "+" or "-"
    amount: int | None = None  # rmw: the constant (inc/dec) or None (an argument)
    result: str | None = None  # rmw: "new", "old", "zero" (== 0), "neg" (< 0), None (void)


def _primitives() -> dict[str, Prim]:
    p: dict[str, Prim] = {}

    def add(name, kind, nargs, value=False, loc=0, **kw):
        p[name] = Prim(name, kind, nargs, value, loc, **kw)

    for n in ("READ_ONCE", "rcu_dereference", "atomic_read"):
        add(n, "load", 1, True)
    for n in ("smp_load_acquire", "atomic_read_acquire"):
        add(n, "load_acquire", 1, True)
    for n in ("WRITE_ONCE", "atomic_set"):
        add(n, "store", 2)
    for n in ("smp_store_release", "atomic_set_release", "rcu_assign_pointer"):
        add(n, "store_release", 2)
    add("smp_store_mb", "store_mb", 2)
    add("smp_mb", "mb", 0, loc=None)
    add("smp_rmb", "rmb", 0, loc=None)
    add("smp_wmb", "wmb", 0, loc=None)
    add("barrier", "nop", 0, loc=None)
    for n in (
        "smp_mb__before_atomic",
        "smp_mb__after_atomic",
        "smp_mb__after_spinlock",
        "smp_mb__after_unlock_lock",
        "smp_mb__after_srcu_read_unlock",
    ):
        add(n, "mb", 0, loc=None)
    for base in ("xchg", "atomic_xchg"):
        for suffix in ("", "_relaxed", "_acquire", "_release"):
            add(base + suffix, "xchg", 2, True)
    for base in ("cmpxchg", "atomic_cmpxchg"):
        for suffix in ("", "_relaxed", "_acquire", "_release"):
            add(base + suffix, "cmpxchg", 3, True)
    for word, op in (("add", "+"), ("sub", "-"), ("inc", "+"), ("dec", "-")):
        const = word in ("inc", "dec")
        nargs, loc, amount = (1, 0, 1) if const else (2, 1, None)
        add(f"atomic_{word}", "rmw", nargs, False, loc, op=op, amount=amount)
        for suffix in ("", "_relaxed", "_acquire", "_release"):
            add(f"atomic_{word}_return{suffix}", "rmw", nargs, True, loc, op=op, amount=amount, result="new")
            add(f"atomic_fetch_{word}{suffix}", "rmw", nargs, True, loc, op=op, amount=amount, result="old")
    add("atomic_sub_and_test", "rmw", 2, True, 1, op="-", result="zero")
    add("atomic_dec_and_test", "rmw", 1, True, 0, op="-", amount=1, result="zero")
    add("atomic_inc_and_test", "rmw", 1, True, 0, op="+", amount=1, result="zero")
    add("atomic_add_negative", "rmw", 2, True, 1, op="+", result="neg")
    add("spin_lock", "lock", 1)
    add("spin_unlock", "unlock", 1)
    add("spin_trylock", "trylock", 1, True)
    add("spin_is_locked", "islocked", 1, True)
    add("spin_unlock_wait", "unlock_wait", 1)
    add("rcu_read_lock", "rcu_lock", 0, loc=None)
    add("rcu_read_unlock", "rcu_unlock", 0, loc=None)
    add("synchronize_rcu", "rcu_sync", 0, loc=None)
    add("synchronize_rcu_expedited", "rcu_sync", 0, loc=None)
    add("srcu_read_lock", "srcu_lock", 1, True)
    add("srcu_read_unlock", "srcu_unlock", 2)
    add("synchronize_srcu", "srcu_sync", 1)
    add("synchronize_srcu_expedited", "srcu_sync", 1)
    return p


PRIMITIVES = _primitives()
ATOMIC_KINDS = ("xchg", "cmpxchg", "rmw", "lock", "unlock", "trylock", "islocked", "unlock_wait")
