"""The emulated kernel: KVM's shadow MMU, flush requests and IPIs, as in the seed.

What lives here is the part the 2009 review is about, written over the
shared arena: ``layout`` (which words are sptes, rmaps, requests, modes),
``spte`` and ``tlb`` (encodings, a vCPU's private TLB), ``mmu`` (faults,
invlpg, rmap, write protection, the mmu notifier), ``ipi`` (requests, kicks,
acks), ``vcpu`` (guest mode, exits, the step loop), ``waits`` (the one wait
interface) and ``locks`` (mmu_lock, pfn_lock), ``guest`` (the guest
kernel's page tables), ``host`` (reclaim through the notifier), ``oracle``
(the lost-flush checks), ``points`` (named protocol points), ``events``
(the trace event codes, named) and ``policies/`` (one module per flush policy).

It never imports the harness, the search, the studies, the litmus runner,
the CLI or ``workloads``.  The protocol code does not know how it is being
run (free-running processes, the baton, or an in-process explorer): every
wait goes through ``ctx.waits``, the interface of ``waits`` (written once,
in ``locks``, ``ipi``, ``vcpu``, ``points``, ``host``), which the layers above
implement.

May import: smpemu.memory, smpemu.errors.
"""
