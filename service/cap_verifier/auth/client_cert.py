"""Client certificate SAN checks (contract §4).

granian verifies the client certificate's chain at the handshake (``tls.client_ca``) but
does not pass the certificate to the application. Where TLS ends at Envoy Gateway, the
gateway forwards the certificate details in ``X-Forwarded-Client-Cert`` (XFCC); the service
re-checks the DNS SANs from that header, and believes it only from ``tls.trusted_proxies``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from cap_verifier.auth.tokens import AuthError
from cap_verifier.settings import TLSSettings

XFCC_HEADER = "x-forwarded-client-cert"
MAX_LOGGED_SANS = 4
# A DNS name (or ``*.`` wildcard) of at most 253 characters: what a log line may carry.
_DNS_NAME = re.compile(
    r"(?=.{1,253}$)(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*"
)


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == '"':
            current.append(char)
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def xfcc_dns_sans(header: str) -> list[str]:
    """DNS SANs of the last XFCC element (the one our trusted proxy appended)."""
    elements = [e for e in _split_outside_quotes(header, ",") if e.strip()]
    if not elements:
        return []
    sans: list[str] = []
    for pair in _split_outside_quotes(elements[-1], ";"):
        key, sep, value = pair.partition("=")
        if sep and key.strip().lower() == "dns":
            sans.append(_unquote(value).lower())
    return sans


def san_allowed(san: str, allowed: Iterable[str]) -> bool:
    """Exact match, or ``*.suffix`` matching one or more labels under the suffix."""
    san = san.lower()
    for pattern in (p.lower() for p in allowed):
        if pattern.startswith("*."):
            suffix = pattern[1:]  # ".partners.example"
            if san.endswith(suffix) and len(san) > len(suffix):
                return True
        elif san == pattern:
            return True
    return False


class ClientCertPolicy:
    """Decides whether a request's client certificate (if any) may use the API."""

    def __init__(self, settings: TLSSettings) -> None:
        self._settings = settings
        self._proxies = [ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies]
        self.active = settings.require_mtls or bool(settings.allowed_client_sans)
        # On a direct TLS connection with client verification, granian has checked the chain.
        self._handshake_verified = bool(
            settings.enabled and settings.require_mtls and settings.client_ca
        )

    def _trusted(self, peer: str | None) -> bool:
        if not peer:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._proxies)

    def _forwarded(self, peer: str | None, xfcc: str | None) -> str | None:
        """The XFCC header when a trusted proxy sent it, else None (anybody can send one)."""
        return xfcc if xfcc and self._trusted(peer) else None

    def logged_san(self, peer: str | None, xfcc: str | None) -> str | None:
        """The access line's ``client_san``: the forwarded certificate's DNS SANs, comma
        separated (at most four, DNS names only), or None. Never the raw header: its subject
        may name a person."""
        header = self._forwarded(peer, xfcc)
        if header is None:
            return None
        sans = [san for san in xfcc_dns_sans(header) if _DNS_NAME.fullmatch(san)]
        return ",".join(sans[:MAX_LOGGED_SANS]) or None

    def check(self, peer: str | None, xfcc: str | None) -> None:
        """Raise AuthError(client_cert, 403) when the certificate may not be used."""
        if not self.active:
            return
        header = self._forwarded(peer, xfcc)
        if header is None:
            if self._handshake_verified or not self._settings.require_mtls:
                return
            raise AuthError("client_cert", "a client certificate is required", status=403)
        allowed = self._settings.allowed_client_sans
        if allowed and not any(san_allowed(san, allowed) for san in xfcc_dns_sans(header)):
            raise AuthError(
                "client_cert", "the client certificate's DNS SAN is not allowed", status=403
            )
