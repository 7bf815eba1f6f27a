"""What the SDN configuration a node last reloaded means for guests on it (its bridges), and the SDN status the
node reports (pve-network's PVE::Network::SDN::Zones::status, as pvestatd publishes it)."""

from __future__ import annotations

from .realize import VnetInfo
from .state import State, bridges_on


def zone_usable(state: State, zone_id: str) -> bool:
    """A zone the node has loaded is realized there unless it is a vlan/qinq zone whose bridge is missing."""
    zone = state.sdn.loaded_config(state.node).zones.get(zone_id)
    if zone is None:
        return False
    if zone.get("type") in ("vlan", "qinq"):
        return str(zone.get("bridge", "")) in bridges_on(state, state.node)
    return True


def running_vnet_bridges(state: State) -> set[str]:
    """Vnets that exist as Linux bridges on the node: loaded by its last reload, in a usable zone."""
    loaded = state.sdn.loaded_config(state.node)
    return {vnet for vnet, cfg in loaded.vnets.items() if zone_usable(state, str(cfg.get("zone", "")))}


def bridge_exists(state: State, bridge: str) -> bool:
    return bridge in bridges_on(state, state.node) or bridge in running_vnet_bridges(state)


def vnet_zone(state: State, vnet: str, running: bool = True) -> str | None:
    cfg = (state.sdn.running if running else state.sdn.pending).vnets.get(vnet)
    return str(cfg["zone"]) if cfg and cfg.get("zone") else None


def running_vnets_info(state: State) -> dict[str, VnetInfo]:
    out: dict[str, VnetInfo] = {}
    running = state.sdn.loaded_config(state.node)
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


TOO_OLD = "local sdn network configuration is too old, please reload"
NOT_GENERATED = "local sdn network configuration is not yet generated, please reload"


def node_status(state: State, node: str) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """(zone -> status, vnet -> status) of the running config as `node` reports it: pending until the node has
    reloaded this version, error where its interfaces did not come up (a missing bridge, a failed reload)."""
    sdn = state.sdn
    running = sdn.running
    if not sdn.version:
        return {}, {}
    found = sdn.loaded.get(node)
    stale = None if found is not None and found[0] >= sdn.version else (TOO_OLD if found else NOT_GENERATED)
    failure = found[2] if found is not None else None
    bridges = bridges_on(state, node)
    zones = {z: {"status": "pending" if stale else "available"} for z in sorted(running.zones)}
    vnets: dict[str, dict[str, str]] = {}
    for vnet, cfg in sorted(running.vnets.items()):
        zone_id = str(cfg.get("zone", ""))
        zone = running.zones.get(zone_id)
        if zone is None:
            vnets[vnet] = {"status": "error", "statusmsg": f"unknown zone '{zone_id}' configured"}
            continue
        if stale:
            vnets[vnet] = {"status": "pending", "statusmsg": stale}
            continue
        errors = []
        if zone.get("type") in ("vlan", "qinq") and str(zone.get("bridge")) not in bridges:
            errors.append(f"missing {zone.get('bridge')}")
        if failure:
            errors.append(failure)
        vnets[vnet] = {"status": "error", "statusmsg": ",".join(errors)} if errors else {"status": "available"}
        if errors:
            zones[zone_id]["status"] = "error"
    return zones, vnets
