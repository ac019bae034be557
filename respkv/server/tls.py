"""TLS contexts from ``[tls]``: the client port's, and the peer channel's (mutual TLS).

The client port presents ``cert_file``; with ``client_auth`` "optional" or "yes" it asks clients
for a certificate that chains to ``ca_file`` (Redis's ``tls-auth-clients``).

On the peer channel both ends present ``cert_file`` and require the other's certificate to chain
to ``ca_file``. Peers dial each other by address, so host names are not checked: the CA is the
cluster's trust root (give the cluster its own CA), and which node a peer is remains the
handshake's business (node id, cluster id, cluster secret).
"""

from __future__ import annotations

import ssl

from respkv.config import Config, ConfigError, TlsConfig
from respkv.peer import PeerOptions


def _load(context: ssl.SSLContext, tls: TlsConfig, with_ca: bool) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
        if with_ca:
            context.load_verify_locations(cafile=tls.ca_file)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"[tls] cannot load the certificates: {e}") from None
    return context


def client_port_context(tls: TlsConfig) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _load(context, tls, with_ca=tls.client_auth != "no")
    context.verify_mode = {
        "no": ssl.CERT_NONE,
        "optional": ssl.CERT_OPTIONAL,
        "yes": ssl.CERT_REQUIRED,
    }[tls.client_auth]
    return context


def peer_contexts(tls: TlsConfig) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(listener context, dialer context): both require the other end's certificate."""
    listener = _load(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), tls, with_ca=True)
    listener.verify_mode = ssl.CERT_REQUIRED
    dialer = _load(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), tls, with_ca=True)
    dialer.check_hostname = False
    dialer.verify_mode = ssl.CERT_REQUIRED
    return listener, dialer


def peer_options(config: Config) -> PeerOptions:
    """The peer channel's options: mutual TLS when ``[tls] peer`` is on."""
    if not config.tls.peer:
        return PeerOptions()
    listener, dialer = peer_contexts(config.tls)
    return PeerOptions(server_ssl=listener, client_ssl=dialer)
