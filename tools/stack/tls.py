"""Throwaway certificates for secured test servers: a CA, server and client certificates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization

# The name every test server certificate is valid for: so connecting by 127.0.0.1 is the
# wrong host name.
SERVER_NAMES = ("localhost",)


@dataclass(frozen=True)
class ClientCertificate:
    """A client certificate and its key, as PEM files."""

    common_name: str
    certfile: Path
    keyfile: Path


class Certificates:
    """A CA of the test's own, writing PEM files under `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._ca = trustme.CA(organization_name="streamapp test CA")
        self.cafile = directory / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.cafile))

    def server(self, name: str, hosts: tuple[str, ...] = SERVER_NAMES) -> tuple[Path, Path]:
        """A server certificate (with its chain) and its key, as two PEM files."""
        issued = self._ca.issue_cert(*hosts, common_name=name, key_type=trustme.KeyType.RSA)
        certfile, keyfile = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        certfile.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
        keyfile.write_bytes(_pkcs8(issued.private_key_pem.bytes()))
        keyfile.chmod(0o600)
        return certfile, keyfile

    def client(self, common_name: str) -> ClientCertificate:
        """A client certificate whose subject is CN=`common_name`."""
        issued = self._ca.issue_cert(
            f"{common_name}.clients.test", common_name=common_name, key_type=trustme.KeyType.RSA
        )
        certfile = self.directory / f"client-{common_name}.crt"
        keyfile = self.directory / f"client-{common_name}.key"
        certfile.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
        keyfile.write_bytes(_pkcs8(issued.private_key_pem.bytes()))
        keyfile.chmod(0o600)
        return ClientCertificate(common_name, certfile, keyfile)


def other_ca(directory: Path) -> Path:
    """The certificate of a CA that signed none of the servers' certificates."""
    path = directory / "other-ca.pem"
    trustme.CA(organization_name="someone else").cert_pem.write_to_path(str(path))
    return path


def _pkcs8(pem: bytes) -> bytes:
    """The key as unencrypted PKCS#8, the one PEM form Kafka's key store reads."""
    key = serialization.load_pem_private_key(pem, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
