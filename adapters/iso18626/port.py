"""The ISO 18626 codec as the core's ``MessageCodec`` port.

The core (``ill_tui.services.exchange``) knows only ``ill_tui.ports.MessageCodec``; this class
hands it the XML codec of ``adapters.iso18626.codec`` and turns the codec's own errors into the
port's ``CodecError`` so the core can catch them without importing an adapter.
"""

from __future__ import annotations

from adapters.iso18626 import codec
from ill_tui import protocol as p
from ill_tui.ports import CodecError


class Iso18626Codec:
    """``MessageCodec`` over ``adapters.iso18626.codec`` (XSD-valid output, safe lenient input).

    Args:
        max_bytes: the largest document ``parse`` reads.
    """

    def __init__(self, *, max_bytes: int = codec.DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes

    def build(self, message: p.Message) -> bytes:
        """Serialise ``message``; see ``adapters.iso18626.codec.build``.

        Raises:
            CodecError: the message cannot be valid ISO 18626 v1.2.
        """
        try:
            return codec.build(message)
        except codec.Iso18626Error as error:
            raise CodecError(str(error)) from error

    def parse(self, data: bytes) -> p.Message:
        """Read ``data`` leniently and safely; see ``adapters.iso18626.codec.parse``.

        Raises:
            CodecError: ``data`` is too large, not XML, not ISO 18626, or not actionable.
        """
        try:
            return codec.parse(data, max_bytes=self.max_bytes).message
        except codec.Iso18626Error as error:
            raise CodecError(str(error)) from error
