"""Proxmox VE backend."""
