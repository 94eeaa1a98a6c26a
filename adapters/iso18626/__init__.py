"""ISO 18626 for ill-tui: the XML codec (``codec``), and the endpoint and outbox sender built on it.

The messages themselves are ``ill_tui.protocol`` dataclasses; this package turns them into XML
and back.
"""

from adapters.iso18626.codec import (
    DEFAULT_MAX_BYTES,
    InvalidMessage,
    Iso18626Error,
    MessageTooLarge,
    NotIso18626,
    NotXml,
    Parsed,
    SchemaViolation,
    UnsafeXml,
    build,
    parse,
    validate,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "InvalidMessage",
    "Iso18626Error",
    "MessageTooLarge",
    "NotIso18626",
    "NotXml",
    "Parsed",
    "SchemaViolation",
    "UnsafeXml",
    "build",
    "parse",
    "validate",
]
