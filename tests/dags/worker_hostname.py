"""`[core] hostname_callable` of the Celery test's workers: two workers on one machine, two host names.

In docker-compose.yml every worker is its own container with its own host name; on one machine the
test gives each worker its own through TRIALPIPE_TEST_WORKER (no imports: Airflow loads this early).
"""

import os
import socket


def worker_hostname() -> str:
    return os.environ.get("TRIALPIPE_TEST_WORKER") or socket.getfqdn()
