"""Serve the API with uvicorn: ``python -m api [--host 127.0.0.1] [--port 8000] [--workers N] [--log-level info]
[--limit-concurrency 1000]``.

No personal data in the logs: uvicorn's access log is off (its line is the request line, path and query whole, with
the client's address: a receipt address, an Open311 token or an ``email=`` beside who asked, up to ~64 KB a line) and
``api.accesslog`` logs each request instead, as method, route template, status and milliseconds; every handler
writes exceptions without their messages (uvicorn's "Exception in ASGI application" traceback would otherwise carry
e.g. SQLAlchemy's parameters).

What uvicorn bounds here: ``--limit-concurrency``, the connections and requests a worker holds at once; past it a
new request is answered 503 at once (and uvicorn logs a short "Exceeded concurrency limit." warning for each). The
keep-alive timeout is uvicorn's default (5 s). The HTTP parser stays httptools (faster than h11): the size of a
request's headers and the time they take to arrive are left to the reverse proxy in front (nginx:
``large_client_header_buffers``, ``client_header_timeout``; and ``client_body_timeout``, though ``api.bodies``
bounds bodies itself).

Several replicas behind a proxy
    The API only reads the index; one indexer process writes it. Run any number of API processes (``--workers N`` on
    a machine, and machines side by side), all given the same ``CIVIC_STORE_URL`` — PostgreSQL when they are on more
    than one machine (a SQLite file serves the processes of one machine) — and beside them one indexer:
    ``civic-ledger sync --follow`` (or several, on different machines: the store's leader lease lets one write at a
    time, the others stand by and take over within ``CIVIC_INDEX_LEASE_SECONDS`` (30) of its last heartbeat when it
    dies; a one-off ``civic-ledger sync`` while one leads exits saying which). ``CIVIC_CONFIRMATIONS`` sets the
    confirmation depth of the network (default by chain id: ``ledger.config.CONFIRMATIONS_BY_CHAIN``, else 12).
    The proxy spreads requests over the replicas (no session affinity is needed, except for the writes below) and
    appends the client's address to ``X-Forwarded-For``; set ``CIVIC_TRUSTED_PROXIES`` on every replica to the
    proxy's addresses or networks (comma-separated), or every client counts as the proxy (``api.clients``).
    Each process keeps its own budgets (``docs/limits.md``): with P processes in all, a client may use P times each
    per-minute rate, so divide the settings by P. The write endpoints (agency records, citizens' filings, ratings,
    disputes) keep their relay store and the relayer's keys in ``CIVIC_DATA_DIR``, shared by the processes of one
    machine only: send writes to the replicas of one machine.
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from api.accesslog import json_lines

#: requests (and connections) one worker holds at once before answering 503 at once
LIMIT_CONCURRENCY = 1000


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging, plus the API's own loggers (``api.*``: the access log among them) on stderr at ``level``;
    exceptions written without their messages (``api.accesslog.WithoutExceptionMessages``), uvicorn's too."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"without_exception_messages": {"()": "api.accesslog.WithoutExceptionMessages"}}
    for handler in config["handlers"].values():
        handler["filters"] = ["without_exception_messages"]
    config["loggers"]["api"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return json_lines(config)  # one JSON object a line, each with its request's id (``api.accesslog``)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument("--limit-concurrency", type=int, default=LIMIT_CONCURRENCY,
                        help=f"requests one worker holds at once; past it, 503 at once (default {LIMIT_CONCURRENCY})")
    args = parser.parse_args(argv)
    # uvicorn's own proxy handling off: which proxies to believe is CIVIC_TRUSTED_PROXIES' (``api.clients``), and
    # uvicorn's default would take X-Forwarded-For from any local peer as the client
    uvicorn.run("api.app:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level=args.log_level, log_config=log_config(args.log_level), access_log=False,
                proxy_headers=False, limit_concurrency=args.limit_concurrency)


if __name__ == "__main__":
    main()
