"""The AsyncAPI 3.0 document of the topics, as /openapi.json is of the HTTP side.

Each message's schema comes from the pydantic model that declares the record
(streamapp/models/records.py), so the document cannot drift from what is written. Served by
the API at /asyncapi.json.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from streamapp import __version__
from streamapp.config import Settings
from streamapp.models.records import ApplicationCreated, DeadLetterRecord, UserCounts
from streamapp.models.tables import REQUEST_ID_MAX
from streamapp.stream.topics import (
    APP_ID,
    DEAD_LETTERS,
    MINUTE_COUNTS_TABLE,
    NEW_APPLICATIONS,
    USER_COUNTS_TABLE,
    changelog_topic,
)

BINDING_VERSION = "0.5.0"
USER_NAME_KEY = {"type": "string", "description": "the user's name, UTF-8: the partition key"}
WINDOWED_KEY = {
    "type": "array",
    "description": "JSON [user_name, [window start, window end]] (epoch seconds)",
    "prefixItems": [
        {"type": "string"},
        {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
    ],
}


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of what `model` writes."""
    return model.model_json_schema(mode="serialization")


def _message(
    name: str, title: str, payload: dict[str, Any], key: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "title": title,
        "contentType": "application/json",
        "payload": payload,
        "bindings": {"kafka": {"key": key, "bindingVersion": BINDING_VERSION}},
        **extra,
    }


def _channel(address: str, message: str, description: str, partitions: int) -> dict[str, Any]:
    return {
        "address": address,
        "description": description,
        "messages": {message: {"$ref": f"#/components/messages/{message}"}},
        "bindings": {"kafka": {"partitions": partitions, "bindingVersion": BINDING_VERSION}},
    }


def _operation(action: str, channel: str, message: str, summary: str) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "messages": [{"$ref": f"#/channels/{channel}/messages/{message}"}],
        "summary": summary,
    }


def _messages() -> dict[str, Any]:
    request_id = {"type": "string", "maxLength": REQUEST_ID_MAX}
    return {
        "ApplicationCreated": _message(
            "ApplicationCreated",
            "An application was stored",
            schema_of(ApplicationCreated),
            USER_NAME_KEY,
            headers={
                "type": "object",
                "properties": {"x-request-id": {**request_id, "description": "the POST's id"}},
            },
        ),
        "DeadLetter": _message(
            "DeadLetter",
            "A record the workers could not process",
            schema_of(DeadLetterRecord),
            {"description": "the key of the record it carries (any bytes, or none)"},
        ),
        "UserCounts": _message(
            "UserCounts",
            "A user's processed applications (a row of the per-user table)",
            schema_of(UserCounts),
            USER_NAME_KEY,
        ),
        "MinuteCount": _message(
            "MinuteCount",
            "A user's processed applications created in one minute",
            {"type": "integer", "minimum": 0},
            WINDOWED_KEY,
        ),
    }


def asyncapi_document(settings: Settings) -> dict[str, Any]:
    """The document for the topics these settings name and size."""
    partitions = settings.topic_partitions
    secure = settings.kafka_security_protocol in ("SSL", "SASL_SSL")
    server = settings.kafka_bootstrap_servers.split(",")[0].strip()
    group = {"groupId": {"type": "string", "enum": [APP_ID]}, "bindingVersion": BINDING_VERSION}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "streamapp events",
            "version": __version__,
            "description": "The Kafka side of streamapp: applications filed through the API, "
            "processed by the workers of the consumer group `streamapp`.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": server,
                "protocol": "kafka-secure" if secure else "kafka",
                "description": "the brokers of KAFKA_BOOTSTRAP_SERVERS",
            }
        },
        "channels": {
            "newApplications": _channel(
                NEW_APPLICATIONS,
                "ApplicationCreated",
                "Every stored application, once (the outbox relays what could not be sent at "
                "once; a record may arrive twice, and changes nothing the second time).",
                partitions,
            ),
            "deadLetters": _channel(
                DEAD_LETTERS, "DeadLetter", "Records the workers could not process.", 1
            ),
            "userCounts": _channel(
                changelog_topic(USER_COUNTS_TABLE),
                "UserCounts",
                "The per-user table's changelog (compacted).",
                partitions,
            ),
            "minuteCounts": _channel(
                changelog_topic(MINUTE_COUNTS_TABLE),
                "MinuteCount",
                "The per-user, per-minute table's changelog (kept for an hour).",
                partitions,
            ),
        },
        "operations": {
            "publishApplication": _operation(
                "send",
                "newApplications",
                "ApplicationCreated",
                "The API publishes each application after its commit.",
            ),
            "processApplications": {
                **_operation(
                    "receive",
                    "newApplications",
                    "ApplicationCreated",
                    "The workers process them, as one consumer group.",
                ),
                "bindings": {"kafka": group},
            },
            "deadLetter": _operation(
                "send", "deadLetters", "DeadLetter", "A worker sets aside what it cannot process."
            ),
            "writeUserCounts": _operation(
                "send", "userCounts", "UserCounts", "The workers keep the per-user table."
            ),
            "writeMinuteCounts": _operation(
                "send", "minuteCounts", "MinuteCount", "The workers keep the per-minute table."
            ),
        },
        "components": {"messages": _messages()},
    }
