"""Serve the API with uvicorn: ``python -m api [--host 127.0.0.1] [--port 8000] [--workers N] [--log-level info]``."""

from __future__ import annotations

import argparse

import uvicorn


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    args = parser.parse_args(argv)
    # uvicorn's own proxy handling off: which proxies to believe is CIVIC_TRUSTED_PROXIES' (``api.clients``), and
    # uvicorn's default would take X-Forwarded-For from any local peer as the client
    uvicorn.run("api.app:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level=args.log_level, proxy_headers=False)


if __name__ == "__main__":
    main()
