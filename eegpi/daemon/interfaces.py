"""The host's IPv4 interface addresses, found the way the hardened unit still allows.

``getifaddrs`` (and so ``ifaddr``) asks the kernel over a netlink socket, which the unit's
``RestrictAddressFamilies=`` may refuse; the ``SIOCGIFCONF`` ioctl on an ordinary UDP socket
answers the same question with AF_INET alone.
"""

from __future__ import annotations

import array
import fcntl
import ipaddress
import socket
import struct
import sys

__all__ = ["ipv4_addresses", "is_loopback_host", "is_wildcard_host"]

_SIOCGIFCONF = 0x8912
_IFREQ_SIZE = 40 if sys.maxsize > 2**32 else 32
_MAX_INTERFACES = 256


def ipv4_addresses(*, loopback: bool = False) -> list[str]:
    """IPv4 addresses of the interfaces that are up, loopback ones only when asked."""
    buf = array.array("B", bytes(_MAX_INTERFACES * _IFREQ_SIZE))
    pointer, _ = buf.buffer_info()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("iL", len(buf), pointer)
        answer = fcntl.ioctl(s.fileno(), _SIOCGIFCONF, request)
    length = struct.unpack("iL", answer)[0]
    raw = buf.tobytes()[:length]
    found: list[str] = []
    for offset in range(0, length, _IFREQ_SIZE):
        # struct ifreq: 16-byte name, then struct sockaddr_in (family, port, address)
        address = socket.inet_ntoa(raw[offset + 20 : offset + 24])
        if address in found or (ipaddress.ip_address(address).is_loopback and not loopback):
            continue
        found.append(address)
    return found


def is_wildcard_host(host: str) -> bool:
    """A listen host that means every interface."""
    return host in ("", "0.0.0.0", "::", "*")


def is_loopback_host(host: str) -> bool:
    """A listen host that only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
