"""The `streamapp` command: api, worker, migrate, generate, dlq, dev."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence

from aiokafka.errors import KafkaConnectionError
from sqlalchemy.engine import make_url

from streamapp.config import Settings, get_settings_or_exit
from streamapp.logs import configure_logging
from streamapp.refusals import exit_on_refusal, kafka_refusal, refusal_in

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> None:
    """Run one subcommand; a configuration error ends it with one line and exit code 2."""
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "worker":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "dev":
        # The dev stack provides the database and broker settings to its children.
        as_json = os.environ.get("LOG_FORMAT", "").strip().lower() == "json"
        configure_logging(os.environ.get("LOG_LEVEL", "INFO"), "json" if as_json else "text")
        raise SystemExit(args.run(args))
    settings = get_settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    if args.command in ("api", "worker"):
        exit_on_refusal()
    try:
        args.run(args, settings, rest)
    except Exception as exc:  # a tool's connection refused: one line, not a traceback
        url = make_url(settings.asyncpg_dsn)
        refusal = refusal_in(exc, f"{url.host}:{url.port}")
        if refusal is None and isinstance(exc, KafkaConnectionError):
            refusal = asyncio.run(kafka_refusal(settings.kafka))
        if refusal is None:
            raise
        sys.stderr.write(f"streamapp: {refusal}\n")
        raise SystemExit(2) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamapp", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    api = commands.add_parser("api", help="serve the REST API with uvicorn")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="API processes sharing the port, one per core (1)",
    )
    api.set_defaults(run=_run_api)

    worker = commands.add_parser(
        "worker", help="run a Faust worker (extra options go to `faust worker`)"
    )
    worker.add_argument("--web-port", type=int, default=6066)
    worker.set_defaults(run=_run_worker)

    migrate = commands.add_parser("migrate", help="apply Alembic migrations")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.add_argument("--down", action="store_true", help="downgrade to REVISION instead")
    migrate.set_defaults(run=_run_migrate)

    generate = commands.add_parser(
        "generate", help="load generated applications (demos, benchmarks)"
    )
    generate.add_argument("--count", type=_positive, required=True, help="applications")
    generate.add_argument("--users", type=_positive, default=100, help="spread over (100)")
    generate.add_argument(
        "--unprocessed", action="store_true", help="leave them `new` (default: processed)"
    )
    generate.add_argument("--days", type=float, default=30.0, help="created over the last N")
    generate.add_argument("--prefix", default="user", help="user names: PREFIX-0001, ...")
    generate.set_defaults(run=_run_generate)

    dlq = commands.add_parser(
        "dlq", help="list the dead letters with their reasons (--replay: send the good again)"
    )
    dlq.add_argument(
        "--replay",
        action="store_true",
        help="send again those that now decode and name an application still new",
    )
    dlq.set_defaults(run=_run_dlq)

    dev = commands.add_parser("dev", help="run the whole system on embedded services")
    _add_dev_arguments(dev)
    dev.set_defaults(run=_run_dev)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _add_dev_arguments(parser: argparse.ArgumentParser) -> None:
    from streamapp.dev.arguments import add_arguments

    add_arguments(parser)


def _run_api(args: argparse.Namespace, settings: Settings, _: Sequence[str]) -> None:
    from streamapp.web.api.server import serve

    serve(settings, args.host, args.port, args.workers)


# Faust's --loglevel takes its own names, not the logging module's. Its "crit" fails in the
# logging set-up, so CRITICAL starts at "error"; the app applies LOG_LEVEL itself at start.
FAUST_LOG_LEVELS = {
    "DEBUG": "debug",
    "INFO": "info",
    "WARNING": "warn",
    "ERROR": "error",
    "CRITICAL": "error",
}


def _run_worker(args: argparse.Namespace, settings: Settings, rest: Sequence[str]) -> None:
    from streamapp.stream.app import app

    level = FAUST_LOG_LEVELS[settings.log_level]
    _use_uvloop()
    sys.argv = ["streamapp worker", "worker", "--web-port", str(args.web_port)]
    sys.argv += ["--loglevel", level, *rest]
    app.main()


def _use_uvloop() -> None:
    """Run the worker's event loop on uvloop when it is installed (it is, with the service).

    Faust's own `--loop` option is accepted but not applied, so the policy is set here,
    before Faust creates its loop.
    """
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _run_migrate(args: argparse.Namespace, settings: Settings, _: Sequence[str]) -> None:
    from streamapp import migrate

    if args.down:
        migrate.downgrade(revision=args.revision)
    else:
        migrate.upgrade(revision=args.revision)
    logger.info("database at revision %s", args.revision)


def _run_generate(args: argparse.Namespace, settings: Settings, _: Sequence[str]) -> None:
    import asyncio

    from streamapp.services.generator import Plan, generate

    plan = Plan(
        count=args.count,
        users=args.users,
        processed=not args.unprocessed,
        days=args.days,
        prefix=args.prefix,
    )
    asyncio.run(generate(settings.asyncpg_dsn, plan))


def _run_dlq(args: argparse.Namespace, settings: Settings, _: Sequence[str]) -> None:
    from streamapp.stream import dead_letters

    letters = asyncio.run(dead_letters.read_dead_letters(settings.kafka))
    out = sys.stdout
    for letter in letters:
        value = "null" if letter.value is None else repr(_excerpt(letter.value))
        out.write(f"{letter.where} from {letter.source}: {letter.reason} (value {value})\n")
    out.write(f"{len(letters)} dead letters\n")
    if args.replay:
        replay = dead_letters.replay(
            letters, settings.kafka, settings.asyncpg_dsn, idempotent=settings.producer_idempotence
        )
        outcome = asyncio.run(replay)
        out.write(", ".join(f"{what}: {n}" for what, n in sorted(outcome.items())) + "\n")


def _excerpt(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _run_dev(args: argparse.Namespace) -> int:
    from streamapp.dev.stack import run

    return run(args)
