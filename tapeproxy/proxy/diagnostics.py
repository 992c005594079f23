"""What went wrong between the proxy and its clients, noted on the session for the summary:
a client that rejects the proxy's certificate (it does not trust tapeproxy's CA) otherwise
only shows as a failed request in CMD's own output, with nothing pointing at the cause."""

from __future__ import annotations

from mitmproxy import tls

from tapeproxy.proxy.session import TapeSession

__all__ = ["Diagnostics"]


class Diagnostics:
    """Notes client TLS handshake failures on the current session.

    Args:
        session: the session in use (the runner replaces it when the cassette switches).
    """

    def __init__(self, session: TapeSession) -> None:
        self.session = session

    def tls_failed_client(self, data: tls.TlsData) -> None:
        """A client gave up the handshake with the proxy (mitmproxy words the cause)."""
        self.session.note_client_tls_failure(str(data.conn.error or "TLS handshake failed"))
