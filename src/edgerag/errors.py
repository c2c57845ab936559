"""The one exception hierarchy of edgerag.

```
EdgeRagError
├── ConfigError            (also ValueError)   → CLI usage error / HTTP 400
├── MissingExtraError      (also ImportError)  → message names the pip extra
├── NotFoundError          (also KeyError)     → HTTP 404
├── InputError             (also ValueError)   → bad input file/bytes; names the input → HTTP 422
│   └── InputTooLargeError                      → HTTP 413
├── IndexCorruptError                          → detected on open; the index is rebuilt
├── EncoderError                               → model failed (HTTP 500)
├── GenerationError
│   └── UpstreamError                          → LLM endpoint timeouts / 5xx
└── FleetError
    ├── PeerUnavailable
    └── QuorumNotReached
```

Each boundary (dependency → library, library → CLI, library → HTTP) translates exactly once.
"""

from __future__ import annotations


class EdgeRagError(Exception):
    """Base of every error edgerag raises on purpose."""


class ConfigError(EdgeRagError, ValueError):
    """An option or argument is invalid; the message lists the valid choices."""


class MissingExtraError(EdgeRagError, ImportError):
    """An optional dependency is not installed; the message names the extra."""

    def __init__(self, package: str, extra: str, purpose: str = "") -> None:
        why = f" (needed for {purpose})" if purpose else ""
        super().__init__(
            f"{package} is not installed{why}: install it with `pip install 'edgerag[{extra}]'`"
        )
        self.package = package
        self.extra = extra


class NotFoundError(EdgeRagError, KeyError):
    """A collection, document or item does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; we don't want that
        return str(self.args[0]) if self.args else "not found"


class InputError(EdgeRagError, ValueError):
    """An input (file, bytes, query) cannot be used. Always names the input and the reason."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class InputTooLargeError(InputError):
    """An input is over a configured limit (bytes, pixels, seconds)."""


class IndexCorruptError(EdgeRagError):
    """An index file is missing, truncated or fails its checksum."""


class EncoderError(EdgeRagError):
    """An encoder failed on input it should have handled."""


class GenerationError(EdgeRagError):
    """An answer could not be generated."""


class UpstreamError(GenerationError):
    """An upstream model endpoint failed (timeout, 5xx, malformed reply)."""


class FleetError(EdgeRagError):
    """A fleet operation failed."""


class PeerUnavailable(FleetError):
    """No healthy replica answered in time."""


class QuorumNotReached(FleetError):
    """Too few replicas acknowledged."""
