"""The Kafka ACLs the service's principal needs, and no more (README: "Least privilege").

Workers and the API run as one principal. The test suite runs the whole pipeline on a broker
with Kafka's StandardAuthorizer granting exactly these.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamapp.stream.topics import APP_ID, DEAD_LETTERS, NEW_APPLICATIONS


@dataclass(frozen=True)
class Acl:
    """Operations allowed on one resource (`pattern` literal or prefixed), and why."""

    resource: str  # topic, group or cluster
    name: str
    operations: tuple[str, ...]
    why: str
    pattern: str = "literal"

    def arguments(self, principal: str) -> list[str]:
        """kafka-acls arguments that grant it to `principal` (e.g. User:streamapp)."""
        arguments = ["--allow-principal", principal, "--resource-pattern-type", self.pattern]
        for operation in self.operations:
            arguments += ["--operation", operation]
        if self.resource == "cluster":
            return [*arguments, "--cluster"]
        return [*arguments, f"--{self.resource}", self.name]


REQUIRED: tuple[Acl, ...] = (
    Acl(
        "topic",
        NEW_APPLICATIONS,
        ("Describe", "Create", "Read", "Write"),
        "the API writes applications; workers check (or create) the topic and read it",
    ),
    Acl(
        "topic",
        DEAD_LETTERS,
        ("Describe", "Create", "Read", "Write"),
        "workers write dead letters; `streamapp dlq` reads and replays them",
    ),
    Acl(
        "topic",
        f"{APP_ID}-",
        ("Describe", "Create", "Read", "Write"),
        "the Faust app's own topics: the tables' changelogs and its assignor topic",
        pattern="prefixed",
    ),
    Acl(
        "group",
        APP_ID,
        ("Describe", "Read"),
        "workers join the consumer group and commit; the API reads its offsets for the lag",
    ),
)
