"""What the applied (running) SDN configuration means for guests on this node."""

from __future__ import annotations

from .realize import VnetInfo
from .state import State


def zone_usable(state: State, zone_id: str) -> bool:
    """A running zone is realized on the node unless it is a vlan/qinq zone whose bridge is missing."""
    zone = state.sdn.running.zones.get(zone_id)
    if zone is None:
        return False
    if zone.get("type") in ("vlan", "qinq"):
        return str(zone.get("bridge", "")) in state.bridges
    return True


def running_vnet_bridges(state: State) -> set[str]:
    """Vnets that exist as Linux bridges on the node: applied, in a usable zone."""
    return {vnet for vnet, cfg in state.sdn.running.vnets.items() if zone_usable(state, str(cfg.get("zone", "")))}


def bridge_exists(state: State, bridge: str) -> bool:
    return bridge in state.bridges or bridge in running_vnet_bridges(state)


def vnet_zone(state: State, vnet: str, running: bool = True) -> str | None:
    cfg = (state.sdn.running if running else state.sdn.pending).vnets.get(vnet)
    return str(cfg["zone"]) if cfg and cfg.get("zone") else None


def running_vnets_info(state: State) -> dict[str, VnetInfo]:
    out: dict[str, VnetInfo] = {}
    running = state.sdn.running
    for vnet in sorted(running_vnet_bridges(state)):
        cfg = running.vnets[vnet]
        zone = running.zones.get(str(cfg.get("zone")), {})
        subnets = [
            (str(s["cidr"]), str(s["gateway"]) if s.get("gateway") else None)
            for _, s in sorted(running.subnets.items())
            if s.get("vnet") == vnet
        ]
        out[vnet] = VnetInfo(
            name=vnet,
            zone=str(cfg.get("zone")),
            tag=int(cfg["tag"]) if cfg.get("tag") is not None else None,
            bridge=str(zone.get("bridge", vnet)),
            subnets=subnets,
        )
    return out
