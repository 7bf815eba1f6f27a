"""The reachability probe: a script that opens connections in parallel and says exactly how each one ended.

It runs inside the controller's own probe on a segment (or, where a backend gives none, on a lab host). TCP says
connected (the port answered), refused (the host itself answered with a reset) or rejected (an ICMP error came
back); a UDP datagram with IP_RECVERR names who sent the ICMP error, with its type and code, so a gateway's
"administratively prohibited" is told from a target's own firewall or from a target that is down ("host
unreachable"). Silence is retried with a growing pause (a gateway under load rate-limits its ICMP answers); what
stays silent is "no-answer", which proves nothing either way. An ICMPv6 echo to all nodes of the link, sent while the
connections are tried, lists who answers over IPv6 within a second; the probe hears its own answer, so its silence
about others is meaningful. A second is thousands of times what an answer takes: on the lab's bridges a host with
IPv6 and no firewall answered in 0.3-0.4 ms, right after the probe's own answer (0.2-0.3 ms).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SCRIPT = r"""
import concurrent.futures, errno, json, select, socket, struct, sys, time
IP_RECVERR = 11
request = json.loads(sys.argv[1])
PAUSES = [0.5 * 2 ** i for i in range(int(request.get("retries", 0)))]

def tcp_once(address, port):
    sock = socket.socket()
    sock.settimeout(3)
    try:
        sock.connect((address, port))
        return "connected"
    except socket.timeout:
        return "no-answer"
    except OSError as exc:
        return {errno.ECONNREFUSED: "refused", errno.EHOSTUNREACH: "rejected",
                errno.ENETUNREACH: "rejected"}.get(exc.errno, errno.errorcode.get(exc.errno, str(exc)))
    finally:
        sock.close()

def udp_once(address, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_IP, IP_RECVERR, 1)
    sock.setblocking(False)
    try:
        sock.connect((address, port))
        sock.send(b"provisioner reachability probe")
        deadline = time.monotonic() + 4  # a gateway says "host unreachable" after 3 s of unanswered ARP
        while time.monotonic() < deadline:
            select.select([], [], [sock], 0.1)
            try:
                _, ancillary, _, _ = sock.recvmsg(64, 512, socket.MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                continue
            for level, kind, data in ancillary:
                if level == socket.SOL_IP and kind == IP_RECVERR and len(data) >= 24:
                    _errno, origin, icmp_type, icmp_code = struct.unpack_from("=IBBB", data)
                    return {"outcome": "icmp-from:" + socket.inet_ntoa(data[20:24]),
                            "icmp_type": icmp_type, "icmp_code": icmp_code}
        return {"outcome": "no-answer"}
    finally:
        sock.close()

def probe(target):
    address, port, proto = target
    tries = 0
    for pause in [0.0, *PAUSES]:
        time.sleep(pause)
        tries += 1
        result = udp_once(address, port) if proto == "udp" else {"outcome": tcp_once(address, port)}
        if result["outcome"] != "no-answer":
            break
    return {"address": address, "port": port, "proto": proto, "tries": tries, **result}

def link_v6(interface):
    # An ICMPv6 echo request to all nodes of the link: who answers, the probe itself included.
    if not interface:
        return None
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 1)
    scope = socket.if_nametoindex(interface)
    sock.sendto(struct.pack("!BBHHH", 128, 0, 0, 0x7072, 1) + b"provisioner", ("ff02::1", 0, 0, scope))
    heard = set()
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], 0.2)
        if ready:
            data, sender = sock.recvfrom(2048)
            if data and data[0] == 129:
                heard.add(sender[0].split("%")[0])
    sock.close()
    own = set()
    with open("/proc/net/if_inet6") as handle:
        for line in handle:
            fields = line.split()
            if fields[5] == interface:
                own.add(socket.inet_ntop(socket.AF_INET6, bytes.fromhex(fields[0])))
    return {"heard": sorted(heard), "own": sorted(own)}

with concurrent.futures.ThreadPoolExecutor(64) as pool:
    # the link's IPv6 listens while the connections are tried: its second overlaps theirs
    ipv6 = pool.submit(link_v6, request.get("ipv6_interface"))
    results = list(pool.map(probe, request["targets"]))
    print(json.dumps({"results": results, "ipv6": ipv6.result()}))
"""


@dataclass(frozen=True)
class Outcome:
    address: str
    port: int
    proto: str
    outcome: str  # connected | refused | rejected | no-answer | icmp-from:A | an errno name
    tries: int
    icmp_type: int | None = None
    icmp_code: int | None = None

    @property
    def icmp(self) -> str:
        return "" if self.icmp_type is None else f"ICMP type {self.icmp_type} code {self.icmp_code}"


@dataclass(frozen=True)
class LinkV6:
    heard: list[str]  # link-local or global addresses that answered the all-nodes echo
    own: list[str]  # the probe's own IPv6 addresses on the link


def request(targets: list[tuple[str, int, str]], retries: int = 0, ipv6_interface: str | None = None) -> dict[str, Any]:
    return {
        "targets": [[address, port, proto] for address, port, proto in targets],
        "retries": retries,
        "ipv6_interface": ipv6_interface,
    }


def parse(payload: dict[str, Any]) -> tuple[list[Outcome], LinkV6 | None]:
    outcomes = [
        Outcome(
            str(r["address"]),
            int(r["port"]),
            str(r["proto"]),
            str(r["outcome"]),
            int(r["tries"]),
            r.get("icmp_type"),
            r.get("icmp_code"),
        )
        for r in payload["results"]
    ]
    v6 = payload.get("ipv6")
    return outcomes, None if v6 is None else LinkV6(list(v6["heard"]), list(v6["own"]))


# ICMP destination unreachable (type 3) codes, as the kernel's reject sends them.
ADMIN_PROHIBITED = (3, 13)
ICMP_CODES = {
    0: "network unreachable",
    1: "host unreachable (the target is down or absent)",
    3: "port unreachable (the target answered: nothing listens there)",
    9: "network administratively prohibited",
    10: "host administratively prohibited",
    13: "communication administratively prohibited (a firewall's reject)",
}
