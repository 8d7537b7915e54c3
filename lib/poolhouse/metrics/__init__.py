"""Export a pool's figures to a metrics system: :mod:`.metrics.opentelemetry`
(the ``otel`` extra) and :mod:`.metrics.prometheus` (the ``prometheus``
extra).

Importing :mod:`poolhouse` or this package imports neither library; only the
submodule you use does.

.. versionadded:: 0.1.0
"""
