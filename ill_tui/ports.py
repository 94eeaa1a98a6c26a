"""Ports: the small interfaces the core needs from the outside world.

Each is a ``typing.Protocol``; ``adapters/`` implements them, and the composition root
(``app.py`` / ``cli.py``) hands the concrete adapters to the services that need them.
"""

from __future__ import annotations

from typing import Protocol

from ill_tui.protocol import Message


class CodecError(ValueError):
    """A ``MessageCodec`` could not build or read a message; the text says why."""


class MessageCodec(Protocol):
    """Turns ISO 18626 messages into bytes and back (``adapters.iso18626.port.Iso18626Codec``).

    The exchange service (``ill_tui.services.exchange``) builds every outbound message with
    ``build`` and stores the bytes in the outbox, so what is sent is exactly what was stored.
    """

    def build(self, message: Message) -> bytes:
        """Serialise ``message`` as an ISO 18626 document that validates against the XSD.

        Raises:
            CodecError: the message cannot be valid ISO 18626 (nothing invalid is returned).
        """
        ...

    def parse(self, data: bytes) -> Message:
        """Read a stored or received ISO 18626 document back into a message.

        Raises:
            CodecError: ``data`` is not an ISO 18626 message that can be read.
        """
        ...
