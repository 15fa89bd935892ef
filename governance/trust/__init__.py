"""Trust: the ledger replayed from the signed audit log (roles, policies, approvals, releases) and the pinned root.

Every security decision reads a :class:`~governance.trust.ledger.Ledger`, never a file that mirrors it.
"""
