"""Per-pool loggers and the ``echo`` switch."""

from __future__ import annotations

import logging
import sys

from ._typing import Echo

_ECHO_LEVELS = {True: logging.INFO, "debug": logging.DEBUG}


def pool_logger(cls: type, logging_name: str | None, echo: Echo) -> logging.Logger:
    """Return the logger for one pool: ``poolhouse.pool.<Class>[.<name>]``.

    :param cls: the pool's class.
    :param logging_name: the pool's *logging_name*, or ``None``.
    :param echo: ``None``/``False`` leaves the logger alone; ``True`` sets INFO
        and ``"debug"`` sets DEBUG on this logger only, adding one stdout
        handler if it has none.
    """
    name = f"poolhouse.pool.{cls.__name__}"
    if logging_name:
        name = f"{name}.{logging_name}"
    logger = logging.getLogger(name)
    level = _ECHO_LEVELS.get(echo) if echo else None
    if level is not None:
        logger.setLevel(level)
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
            )
            logger.addHandler(handler)
    return logger
