"""Record-time redaction: turning a captured interaction into one that is safe to store.

This is the one place the recorder calls before anything touches disk, and the one place
replay calls on each incoming request before keying it, so a request's key is the same
whether or not it carried secrets.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tapeproxy.cassettes.key import CREDENTIAL_HEADERS, CREDENTIAL_QUERY_PARAMS
from tapeproxy.cassettes.model import Header, Interaction, Request, Response

__all__ = ["Redactor", "marker"]


def marker(detector: str) -> str:
    """The placeholder that replaces a secret found by `detector`."""
    return f"<redacted:{detector}>"


class Redactor:
    """Removes credentials from requests and responses.

    Args:
        extra_headers: more header names (any case) whose values are credentials.
    """

    def __init__(self, extra_headers: tuple[str, ...] = ()) -> None:
        self._headers = CREDENTIAL_HEADERS | {h.lower() for h in extra_headers}

    def redact_request(self, request: Request) -> Request:
        """The request with credential headers and query parameters replaced."""
        return request.model_copy(
            update={"url": self._url(request.url), "headers": self._header_list(request.headers)}
        )

    def redact_response(self, response: Response) -> Response:
        """The response with credential headers (set-cookie...) replaced."""
        return response.model_copy(update={"headers": self._header_list(response.headers)})

    def redact_interaction(self, interaction: Interaction) -> Interaction:
        """The interaction with request and response redacted (the key is left as given)."""
        response = interaction.response
        return interaction.model_copy(
            update={
                "request": self.redact_request(interaction.request),
                "response": None if response is None else self.redact_response(response),
            }
        )

    def _header_list(self, headers: tuple[Header, ...]) -> tuple[Header, ...]:
        return tuple(
            (name, marker("credential-header")) if name.lower() in self._headers else (name, value)
            for name, value in headers
        )

    def _url(self, url: str) -> str:
        parts = urlsplit(url)
        if not parts.query:
            return url
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if not any(k.lower() in CREDENTIAL_QUERY_PARAMS for k, _ in pairs):
            return url
        query = urlencode(
            [
                (k, marker("credential-query") if k.lower() in CREDENTIAL_QUERY_PARAMS else v)
                for k, v in pairs
            ]
        )
        return urlunsplit(parts._replace(query=query))
