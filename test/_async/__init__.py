"""The shared lifecycle tests, written once as asyncio tests.

``tools/unasync.py`` generates their thread twins in ``test/_sync/``; only
``_acompat.py`` is written by hand on each side.
"""
