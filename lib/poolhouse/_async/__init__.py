"""The hand-written source of the pool lifecycle, as asyncio code.

:mod:`poolhouse._sync` is generated from these modules (except
``_acompat.py``, which each side writes for itself) by ``tools/unasync.py``.
"""
