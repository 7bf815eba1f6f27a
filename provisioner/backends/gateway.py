"""The environment gateway's first ruleset, written by the LXC and libvirt backends when they build it."""

from __future__ import annotations

GATEWAY_NFTABLES = """#!/usr/sbin/nft -f
# Written by provisioner when the gateway was created. Until the env_gateway role installs the
# site's policy, nothing is forwarded between environments: only SSH from the management network.
flush ruleset

table inet provisioner_gateway {
  chain input {
    type filter hook input priority filter; policy drop;
    iif "lo" accept
    ct state established,related accept
    iifname "mgmt" tcp dport 22 accept
    iifname "mgmt" icmp type echo-request accept
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "mgmt" oifname "seg-*" tcp dport 22 accept
    iifname "mgmt" oifname "seg-*" icmp type echo-request accept
    counter reject with icmpx type admin-prohibited
  }
}
"""

# Forwarding is switched on only after the ruleset has loaded: no unfiltered window at boot.
GATEWAY_FORWARDING_DROPIN = """[Service]
ExecStartPost=/usr/sbin/sysctl -q -w net.ipv4.ip_forward=1
ExecStopPost=/usr/sbin/sysctl -q -w net.ipv4.ip_forward=0
"""
