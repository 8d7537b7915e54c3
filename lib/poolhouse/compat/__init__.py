"""Drop-in replacements for other libraries' pools, backed by poolhouse pools.

Each module is imported on its own (``import poolhouse.compat.psycopg2``), so
importing poolhouse never imports a driver.
"""

from __future__ import annotations
