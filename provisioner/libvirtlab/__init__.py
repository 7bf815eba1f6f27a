"""Parts of the libvirt/KVM backend: daemons, XML builders, cloud-init seeds, Open vSwitch, storage, base image."""
