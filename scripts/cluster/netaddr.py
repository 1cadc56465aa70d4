#!/usr/bin/env python3
"""netaddr.py: the IPv4 arithmetic of netns.sh (standard library only).

    netaddr.py plan HOSTS [CIDR] < networks-in-use

plans the addresses of an emulated cluster of HOSTS hosts: on CIDR (host bits are dropped, so
10.1.2.3/24 means 10.1.2.0/24), or without one on the first 10.77.X.0/24 (X = 0..255) that no
network in use overlaps. Standard input lists the networks in use on the machine, one a line: a
CIDR or a bare address (an address with a prefix, as `ip addr` shows it, stands for its network);
blank lines and lines that are neither (`default`, ...) are skipped.

Prints, on success, the subnet, the bridge's address (the subnet's first) and the prefix length on
one line, then the address of host 1..HOSTS one a line (the second address on):

    10.77.0.0/24 10.77.0.1 24
    10.77.0.2
    10.77.0.3

Exit 1 with one line on stderr when CIDR is not an IPv4 CIDR, overlaps a network in use, or has
no room for HOSTS hosts (besides its network address, the bridge and its broadcast address), or
when no 10.77.X.0/24 is free; exit 2 on a usage error.
"""
import ipaddress
import sys

PROG = "netaddr.py"
AUTO_CANDIDATES = [f"10.77.{x}.0/24" for x in range(256)]


def fail(message, status=1):
    print(f"{PROG}: {message}", file=sys.stderr)
    sys.exit(status)


def networks_in_use(lines):
    """The IPv4 networks of `lines` (CIDRs or addresses); anything else is skipped."""
    found = []
    for line in lines:
        word = line.strip()
        if not word:
            continue
        try:
            found.append(ipaddress.IPv4Network(word, strict=False))
        except ValueError:
            continue
    return found


def parse_subnet(cidr):
    """CIDR as a network (host bits dropped); exit 1 when it is not an IPv4 CIDR."""
    try:
        return ipaddress.IPv4Network(cidr, strict=False)
    except ValueError:
        fail(f"--subnet '{cidr}': not an IPv4 CIDR")


def first_overlap(subnet, used):
    return next((net for net in used if net.overlaps(subnet)), None)


def plan(hosts, cidr, used):
    if cidr is not None:
        subnet = parse_subnet(cidr)
        clash = first_overlap(subnet, used)
        if clash is not None:
            fail(f"subnet {subnet} overlaps {clash}, in use on this machine (ip addr / ip route)")
    else:
        subnet = next((ipaddress.IPv4Network(c) for c in AUTO_CANDIDATES if first_overlap(ipaddress.IPv4Network(c), used) is None), None)
        if subnet is None:
            fail("no free 10.77.X.0/24; pass --subnet")
    room = subnet.num_addresses - 3   # the network address, the bridge, the broadcast address
    if room < hosts:
        fail(f"subnet {subnet} has room for {max(room, 0)} hosts, not {hosts}")
    first = subnet.network_address
    lines = [f"{subnet} {first + 1} {subnet.prefixlen}"]
    lines += [str(first + 1 + i) for i in range(1, hosts + 1)]
    return lines


def main(argv):
    if len(argv) < 2 or argv[0] != "plan" or len(argv) > 3:
        fail("usage: netaddr.py plan HOSTS [CIDR] < networks-in-use", 2)
    if not argv[1].isdigit() or int(argv[1]) < 1:
        fail(f"HOSTS: expected a positive number, found '{argv[1]}'", 2)
    cidr = argv[2] if len(argv) == 3 else None
    print("\n".join(plan(int(argv[1]), cidr, networks_in_use(sys.stdin))))


if __name__ == "__main__":
    main(sys.argv[1:])
