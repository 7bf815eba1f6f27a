"""The conformance suite: checks that read state from the hosts and attempt what must fail."""
