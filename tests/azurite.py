"""The real Azure Storage emulator (Azurite, from npm; `./dev` installs it) on 127.0.0.1.

Each test gets its own container in one emulator per session. The well-known development
account and key are public (they only open the emulator)."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import ContainerClient

from tests.support import REPO, free_port, wait_for

ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
               "K1SZFPTOtr/KBHBeksoGMGw==")
BINARY = REPO / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-blob"


@dataclass
class Azurite:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
                f"BlobEndpoint={self.endpoint};")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@dataclass
class Container:
    """One test's container: the URL nodes are given, and a client to look inside it."""

    azurite: Azurite
    name: str

    @property
    def url(self) -> str:
        return f"{self.azurite.endpoint}/{self.name}/deployments/one"

    def env(self) -> dict[str, str]:
        """What a node needs: the URL and the account's connection string."""
        return {"EXTENSIBILITY_REMOTE_CACHE": self.url,
                "AZURE_STORAGE_CONNECTION_STRING": self.azurite.connection_string}

    def client(self) -> ContainerClient:
        return ContainerClient.from_connection_string(self.azurite.connection_string, self.name)

    def blobs(self) -> dict[str, bytes]:
        """Every blob under the nodes' prefix ({} when nothing ever made the container)."""
        client = self.client()
        if not client.exists():
            return {}
        return {b.name.removeprefix("deployments/one/"):
                client.get_blob_client(b.name).download_blob().readall()
                for b in client.list_blobs()}

    def write(self, name: str, data: bytes) -> None:
        self.client().get_blob_client(f"deployments/one/{name}").upload_blob(data, overwrite=True)

    def sas_url(self) -> tuple[str, str]:
        """A URL with a container SAS token (read, write, delete, list), and the signature."""
        from urllib.parse import parse_qs

        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        token = generate_container_sas(
            ACCOUNT, self.name, account_key=ACCOUNT_KEY,
            permission=ContainerSasPermissions(read=True, write=True, delete=True, list=True,
                                               add=True, create=True),
            expiry=datetime.now(timezone.utc) + timedelta(hours=2))
        with contextlib.suppress(ResourceExistsError):
            self.client().create_container()
        return f"{self.url}?{token}", parse_qs(token)["sig"][0]


def start_azurite(folder: Path) -> Azurite:
    if not BINARY.exists():
        pytest.fail(f"no Azure Storage emulator at {BINARY}: run `./dev test`, which installs "
                    "it once from npm (tests themselves never reach the network)")
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    log = (folder / "azurite.log").open("wb")
    process = subprocess.Popen(
        [str(BINARY), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location",
         str(folder), "--skipApiVersionCheck", "--loose"],
        stdout=log, stderr=subprocess.STDOUT)
    azurite = Azurite(process, port)

    def listening() -> bool:
        import socket

        if process.poll() is not None:
            raise AssertionError(f"Azurite exited {process.returncode}: "
                                 f"{(folder / 'azurite.log').read_text()}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, 60, "Azurite to listen")
    return azurite


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    emulator = start_azurite(tmp_path_factory.mktemp("azurite"))
    yield emulator
    emulator.stop()


@pytest.fixture
def container(azurite: Azurite) -> Container:
    return Container(azurite, f"t{uuid.uuid4().hex[:20]}")
