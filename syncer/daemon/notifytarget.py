"""Where a notification may go: an App's `spec.notification.url` is written by a tenant, and
the daemon POSTs to it from inside the cluster, with the daemon's network position.

Without limits that is a request forgery: `http://169.254.169.254/...` reaches the cloud's
metadata service (instance credentials), `http://127.0.0.1:8080/` the daemon's own endpoints
and any sidecar. So the addresses a tenant's receiver may resolve to exclude, by default,
loopback, link-local (which holds the metadata services), the known metadata addresses outside
it, unspecified, multicast and reserved addresses. The operator allows some back with
`syncer run --notify-allow HOST|CIDR`.

The check is made on the addresses the request will actually use: the name is resolved once,
every address it resolves to is vetted, and the connection goes to a vetted address (the URL's
host stays in the Host header and in TLS's server name), so a name that resolves to a public
address for the check and to 127.0.0.1 for the connection (DNS rebinding) gains nothing.
Redirects are never followed: a receiver that answers 3xx would otherwise choose the next
address itself.

Pure except for `resolve_target`, which asks the resolver.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean (also link-local)
    "169.254.170.2",    # AWS ECS task credentials (also link-local)
    "fd00:ec2::254",    # AWS, over IPv6: a unique local address, not link-local
    "100.100.100.200",  # Alibaba Cloud: shared address space, not link-local
))
"""Cloud metadata services, which hand out the node's or the pod's cloud credentials."""


class TargetRefused(ValueError):
    """A notification URL or address the daemon will not send to; the message says why and
    how the operator may allow it."""


@dataclass(frozen=True)
class AddressAllowList:
    """What `--notify-allow` lets receivers reach although it is refused by default: host
    names (their every address is accepted) and networks (an address inside is accepted)."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks if network.version == address.version)


def parse_allow_list(values: Iterable[str]) -> AddressAllowList:
    """`--notify-allow` values: an address (`127.0.0.1`, `::1`), a network (`10.0.0.0/8`) or a
    host name (`receiver.local`). Raises ValueError naming a value that is none of these."""
    hosts: set[str] = set()
    networks: list[IPNetwork] = []
    for value in values:
        text = value.strip()
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
            continue
        except ValueError:
            pass
        name = text.lower().rstrip(".")
        if not name or not all(_is_host_label(label) for label in name.split(".")):
            raise ValueError(f"{value!r} is neither an address, a network (CIDR) nor a host name")
        hosts.add(name)
    return AddressAllowList(hosts=frozenset(hosts), networks=tuple(networks))


def refusal(address: IPAddress) -> str | None:
    """Why a receiver may not be at `address` by default; None when it may."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved:
        return "a reserved address"
    return None


@dataclass(frozen=True)
class Target:
    """A checked receiver URL, split for a connection made to a vetted address."""

    scheme: str
    host: str
    """As in the URL (without brackets): the Host header and TLS's server name."""
    port: int
    path: str
    """Path and query, what the request line carries."""


def check_target(url: str, allow: AddressAllowList | None) -> Target:
    """The receiver URL split, when its form and (for an address written in it) its address
    are acceptable; raises TargetRefused. A host name is only checked when it is resolved.
    `allow` None: the operator's own receiver, whose address is not checked."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise TargetRefused(f"{url!r} is not a valid URL ({error})") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused(f"{url!r} is not an http:// or https:// URL")
    host = parts.hostname
    if not host:
        raise TargetRefused(f"{url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused(f"{_shown(url)!r}: credentials in the URL are not sent; use secretRef to sign messages")
    if parts.fragment:
        raise TargetRefused(f"{url!r}: a fragment is never sent; remove it")
    target = Target(scheme=parts.scheme, host=host, port=port or (443 if parts.scheme == "https" else 80),
                    path=(parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    if allow is None or allow.allows_host(host):
        return target
    literal = _literal_address(host)
    if literal is not None:
        _vet(literal, host=host, allow=allow)
    elif host.lower().rstrip(".") == "localhost" or host.lower().rstrip(".").endswith(".localhost"):
        raise TargetRefused(f"{host} is a loopback address; the operator may allow it with "
                            f"`syncer run --notify-allow {host}`")
    return target


def resolve_target(target: Target, allow: AddressAllowList | None) -> str:
    """The one address the request connects to: the host resolved once, every address it
    resolved to vetted (unless `allow` is None: the operator's own receiver). Raises
    TargetRefused, or OSError when the name does not resolve."""
    answers = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    addresses = [str(answer[4][0]) for answer in answers]
    if not addresses:
        raise OSError(f"{target.host} resolves to no address")
    if allow is not None and not allow.allows_host(target.host):
        for address in addresses:
            _vet(ipaddress.ip_address(address.split("%", 1)[0]), host=target.host, allow=allow)
    return addresses[0]


def _vet(address: IPAddress, *, host: str, allow: AddressAllowList) -> None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # the IPv4 address it reaches, for the check and the allow list
    reason = refusal(address)
    if reason is None or allow.allows_address(address):
        return
    what = host if _literal_address(host) is not None else f"{host} ({address})"
    raise TargetRefused(f"{what} is {reason}: notifications are not sent there unless the operator allows it "
                        f"with `syncer run --notify-allow {address}`")


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def _is_host_label(label: str) -> bool:
    return 0 < len(label) <= 63 and label[0] != "-" and label[-1] != "-" and all(
        c.isascii() and (c.isalnum() or c == "-") for c in label)


def _shown(url: str) -> str:
    """The URL without its userinfo, for messages."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


__all__ = ["AddressAllowList", "METADATA_ADDRESSES", "Target", "TargetRefused", "check_target", "parse_allow_list",
           "refusal", "resolve_target"]
