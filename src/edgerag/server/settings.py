"""Server settings: read once from arguments and ``EDGERAG_*`` environment variables."""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from edgerag.errors import ConfigError

logger = logging.getLogger(__name__)

MB = 1024 * 1024


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: assume it is reachable from elsewhere


class ServerSettings(BaseSettings):
    """Everything the HTTP service needs; each field reads ``EDGERAG_<NAME>`` from the env."""

    model_config = SettingsConfigDict(
        env_prefix="EDGERAG_", env_nested_delimiter="__", env_ignore_empty=True, extra="ignore"
    )

    db: Path = Field(description="Collection directory (created if missing).")
    host: str = Field("127.0.0.1", description="Bind address; non-loopback requires keys.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port.")
    tls_cert: Path | None = Field(None, description="PEM certificate: serve HTTPS.")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert.")
    require_read_keys: bool = Field(
        False, description="Ask for a key on reads too (always on for non-loopback hosts)."
    )
    max_request_bytes: int = Field(64 * MB, gt=0, description="Largest request body.")
    max_upload_bytes: int = Field(50 * MB, gt=0, description="Largest single uploaded file.")
    max_upload_files: int = Field(100, gt=0, description="Most files in one ingest request.")
    keep_originals: bool = Field(
        True, description="Keep uploaded files under <db>/originals to serve cited pages."
    )
    query_workers: int = Field(
        default_factory=lambda: 2 * (os.cpu_count() or 1),
        gt=0,
        description="Searches/answers computed at once; more wait in FIFO order (a CPU box "
        "thrashes, and tail latency explodes, when every request encodes at the same time).",
    )
    result_cache: bool = Field(
        True, description="Answer repeated searches from the engine's LSN-scoped result cache."
    )
    serve_source_files: bool = Field(
        True, description="Serve files ingested from local paths (CLI) as document originals."
    )

    @model_validator(mode="after")
    def _check_tls(self) -> ServerSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("TLS needs both a certificate and a key (tls_cert + tls_key)")
        for name in ("tls_cert", "tls_key"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"{name} {path}: no such file")
        return self

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def keys_for_reads(self) -> bool:
        """Reads need a key when asked to, and always when bound beyond this machine."""
        return self.require_read_keys or not self.loopback
