"""Telling "cannot authenticate" apart from "not reachable".

A broker or database that is only down is waited for (retries, 503s). One that answers but
refuses this client (a wrong password, a certificate the CA file does not sign, plaintext
against a TLS port) will refuse it forever: the process stops at start with one line naming
the setting to fix, and exit code 2, as for a bad setting.

aiokafka reports every such refusal while bootstrapping as "Unable to bootstrap", so a failed
bootstrap is followed by one probe connection that surfaces the real reason.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import sys
from typing import NoReturn

import asyncpg
from aiokafka.conn import create_conn
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    IllegalSaslStateError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    UnsupportedSaslMechanismError,
)

from streamapp.connections import KafkaConnection

logger = logging.getLogger(__name__)

PROBE_SECONDS = 10.0
AUTHORIZATION_ERRORS = (
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    ClusterAuthorizationFailedError,
)
_NAME_MISMATCH = ("Hostname mismatch", "IP address mismatch")


class CannotConnect(Exception):
    """A server refuses this client as configured; the message is one line naming the fix."""


class _Mode:
    # Set by the `streamapp` command for its services; in-process users (tests) get the error.
    exit_on_refusal = False


def exit_on_refusal() -> None:
    """Make refuse_to_start end the process (the `streamapp api` and `worker` commands)."""
    _Mode.exit_on_refusal = True


def refuse_to_start(error: CannotConnect, *, own_process: bool = False) -> NoReturn:
    """End a starting service with the one line and exit code 2 (no traceback): nothing has
    started yet that a clean stop would have to finish. `own_process`: the caller always runs
    in a process of its own (a worker), whichever command started it."""
    if not (_Mode.exit_on_refusal or own_process):
        raise error
    logger.critical("%s", error)
    # The real stderr: a Faust worker has redirected sys.stderr into its logging.
    stderr = sys.__stderr__ or sys.stderr
    stderr.write(f"streamapp: {error}\n")
    stderr.flush()
    os._exit(2)


def acl_refusal(kafka: KafkaConnection, exc: BaseException) -> str:
    """A broker's authorizer denied this client something it needs: say what."""
    who = f"User:{kafka.sasl_username}" if kafka.sasl_username else "this client's principal"
    return (
        f"Kafka denies {who} an operation it needs ({exc}): grant the ACLs the README lists "
        'under "Least privilege"'
    )


async def kafka_refusal(kafka: KafkaConnection) -> str | None:
    """Why the brokers refuse this client, or None when they are only unreachable."""
    for host, port in _servers(kafka.bootstrap_servers):
        reason = await _probe(kafka, host, port)
        if reason is not None:
            return reason
    return None


async def _probe(kafka: KafkaConnection, host: str, port: int) -> str | None:
    where = f"Kafka at {host}:{port}"
    options = kafka.client_options()
    options.pop("bootstrap_servers")
    options["request_timeout_ms"] = int(PROBE_SECONDS * 1000)
    try:
        connection = await asyncio.wait_for(create_conn(host, port, **options), PROBE_SECONDS)
    except SaslAuthenticationFailed:
        return (
            f"{where} refused the {kafka.sasl_mechanism} login of {kafka.sasl_username!r}: "
            "check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
        )
    except UnsupportedSaslMechanismError:
        return f"{where} does not offer {kafka.sasl_mechanism}: check KAFKA_SASL_MECHANISM"
    except IllegalSaslStateError:
        return f"{where} takes no SASL login on this port: check KAFKA_SECURITY_PROTOCOL"
    except ssl.SSLCertVerificationError as exc:
        return _certificate_refusal(where, exc, "KAFKA_SSL_CAFILE", "KAFKA_SSL_CHECK_HOSTNAME")
    except Exception as exc:  # the connection failed some other way: find out how
        return await _transport_refusal(kafka, where, host, port, exc)
    connection.close()
    return None


async def _transport_refusal(
    kafka: KafkaConnection, where: str, host: str, port: int, exc: BaseException
) -> str | None:
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ssl.SSLError) and "CERTIFICATE" in str(cause).upper():
        return (
            f"{where} requires a client certificate it accepts: set KAFKA_SSL_CERTFILE and "
            "KAFKA_SSL_KEYFILE"
        )
    uses_tls = kafka.security_protocol in ("SSL", "SASL_SSL")
    if not await _answers_tcp(host, port):
        return None  # not reachable: waited for
    speaks_tls = await _speaks_tls(host, port)
    if not uses_tls and speaks_tls:
        return (
            f"{where} speaks TLS: set KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL "
            f"(it is {kafka.security_protocol})"
        )
    if uses_tls and not speaks_tls:
        return (
            f"{where} does not speak TLS: set KAFKA_SECURITY_PROTOCOL=PLAINTEXT or "
            f"SASL_PLAINTEXT, or use its TLS port (it is {kafka.security_protocol})"
        )
    return None


def refusal_in(exc: BaseException, where: str) -> str | None:
    """postgres_refusal of `exc` or of an error it wraps (SQLAlchemy's `orig`, a cause)."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, CannotConnect):
            return str(error)
        reason = postgres_refusal(error, where)
        if reason is not None:
            return reason
        error = getattr(error, "orig", None) or error.__cause__ or error.__context__
    return None


def postgres_refusal(exc: BaseException, where: str) -> str | None:
    """Why PostgreSQL refuses this client, or None when it is only unreachable."""
    where = f"PostgreSQL at {where}"
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return f"{where} refused the password: check POSTGRES_PASSWORD (or DATABASE_URL)"
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        message = str(exc)
        if "no encryption" in message:
            return (
                f"{where} refuses connections without TLS: set POSTGRES_SSLMODE=verify-full "
                "(or sslmode= in DATABASE_URL)"
            )
        if "certificate" in message:
            return (
                f"{where} refused the client certificate ({message}): set POSTGRES_SSLCERT "
                "and POSTGRES_SSLKEY to a certificate for this user"
            )
        return (
            f"{where} refused the login ({message}): check the user in DATABASE_URL or "
            "POSTGRES_USER"
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _certificate_refusal(where, exc, "POSTGRES_SSLROOTCERT", None)
    if isinstance(exc, ConnectionError) and "rejected SSL upgrade" in str(exc):
        return f"{where} does not offer TLS: lower POSTGRES_SSLMODE (or sslmode= in DATABASE_URL)"
    return None


def _certificate_refusal(
    where: str, exc: ssl.SSLCertVerificationError, ca: str, check: str | None
) -> str:
    reason = exc.verify_message or str(exc)
    if any(mismatch in str(exc) for mismatch in _NAME_MISMATCH):
        fix = f", or set {check}=false" if check else ", or use sslmode=verify-ca"
        return (
            f"the certificate of {where} is not valid for the name used ({reason}): connect by "
            f"a name it names{fix}"
        )
    return f"the certificate of {where} is not one {ca} vouches for ({reason})"


def _servers(bootstrap_servers: str) -> list[tuple[str, int]]:
    servers = []
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().removeprefix("kafka://").rpartition(":")
        if host and port.isdigit():
            servers.append((host.strip("[]"), int(port)))
    return servers


async def _answers_tcp(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), PROBE_SECONDS)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def _speaks_tls(host: str, port: int) -> bool:
    """Whether a TLS handshake completes (nothing verified: only the protocol is asked)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context, server_hostname=host),
            PROBE_SECONDS,
        )
    except (OSError, TimeoutError, ssl.SSLError):
        return False
    writer.close()
    return True
