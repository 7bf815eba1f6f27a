"""Building blocks of the local LXC lab: the base image, containers, bridges."""
