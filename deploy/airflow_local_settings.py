"""Airflow's local settings hook (`$AIRFLOW_HOME/config/airflow_local_settings.py`), imported before any command.

Celery 5.7 removed the `retry` decorator from `celery.backends.database`, which the Celery provider
(3.26, the locked version) still imports: without it `airflow celery worker` and a scheduler on the
CeleryExecutor stop at start-up with "cannot import name 'retry'". Until the lock pairs versions that
agree, this puts back the decorator as Celery 5.5 had it (retry a metadata DB read up to three times).
It changes nothing when Celery still has it, or is not installed.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any


def _celery_database_retry() -> None:
    try:
        import celery.backends.database as backend
    except ImportError:  # no Celery here: nothing to mend
        return
    if hasattr(backend, "retry"):
        return
    errors = backend.RETRYABLE_DB_ERRORS
    log = logging.getLogger("celery.backends.database")

    def retry(fun: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fun)
        def inner(*args: Any, **kwargs: Any) -> Any:
            max_retries = kwargs.pop("max_retries", 3)
            for attempt in range(max_retries):
                try:
                    return fun(*args, **kwargs)
                except errors:
                    log.warning("failed operation %s, retrying %s more times", fun.__name__,
                                max_retries - attempt - 1, exc_info=True)
                    if attempt + 1 >= max_retries:
                        raise
            return None

        return inner

    backend.retry = retry  # type: ignore[attr-defined]


_celery_database_retry()
