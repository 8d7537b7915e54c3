"""The thread pools, generated from :mod:`poolhouse._async` by
``tools/unasync.py`` (except ``_acompat.py`` and ``singleton.py``, written
here by hand)."""
