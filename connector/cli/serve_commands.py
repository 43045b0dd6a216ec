"""``connector serve``: the review console in the browser (docs/console.md).

Binds to ``console.host`` (127.0.0.1 unless configured) and ``console.port``; put a
TLS reverse proxy in front. Runs next to ``connector run``, on the same state database.
"""

from __future__ import annotations

import argparse
import logging
import os

from connector.cli.common import EXIT_OK, load_args_settings

log = logging.getLogger(__name__)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn  # the web stack loads for this command only

    from connector.console.app import create_app
    from connector.monitoring.logformat import use_format

    settings = load_args_settings(args)
    use_format(settings.monitoring.log_format)
    if args.verbose == 0:
        logging.getLogger().setLevel(logging.INFO)  # a service logs what it does
    console = settings.console
    host = args.host or console.host
    port = args.port if args.port is not None else console.port
    app = create_app(settings, environ=os.environ)  # a missing session secret or users file: exit 2, here
    root_path = console.base_url.path.rstrip("/") if console.base_url and console.base_url.path else ""
    log.info("review console on http://%s:%d%s/", host, port, root_path)
    uvicorn.run(
        app,
        host=host,
        port=port,
        root_path=root_path,
        proxy_headers=True,  # the client's address in the audit log, from a trusted proxy only
        forwarded_allow_ips=",".join(console.trusted_proxies),
        server_header=False,
        log_config=None,  # our logging setup, not uvicorn's
        access_log=args.verbose > 0,
    )
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    serve = sub.add_parser(
        "serve",
        parents=[common],
        help="the review console in the browser: runs, the review queue, one address's story (docs/console.md)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", help="address to listen on (default: console.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: console.port, 8080)")
    serve.set_defaults(func=cmd_serve)
