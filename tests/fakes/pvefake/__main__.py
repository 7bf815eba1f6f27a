"""Run the fake standalone: `python -m pvefake --port N --node pve1 --token-file F [--schema 9.1]`.

Prints `host:port` on stdout once listening and writes the token secret (for root@pam!provisioner
unless told otherwise) to the token file with mode 0600. Unless `--bare`, the node gets the usual
lab setup: storages `local` and `local-lvm`, bridge `vmbr0` and a cloud-init template 9000.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from .fake import FakePve
from .faults import Faults


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pvefake", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--node", default="pve1")
    parser.add_argument("--schema", default="9.1", choices=("9.1", "8.4"))
    parser.add_argument("--task-seconds", type=float, default=0.3)
    parser.add_argument("--token-file", help="write the API token secret here (mode 0600)")
    parser.add_argument("--user", default="root@pam")
    parser.add_argument("--token-name", default="provisioner")
    parser.add_argument("--privsep", action="store_true", help="make the token privilege-separated")
    parser.add_argument("--template", type=int, default=9000, help="vmid of the cloud-init template")
    parser.add_argument("--bare", action="store_true", help="no storages, bridge or template")
    parser.add_argument("--no-validate", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr)

    fake = FakePve(
        schema_version=args.schema,
        node=args.node,
        faults=Faults(seed=args.seed),
        task_seconds=args.task_seconds,
        validate=not args.no_validate,
        host=args.host,
    )
    fake.port = args.port
    secret = fake.add_token(args.user, args.token_name, privsep=args.privsep)
    if not args.bare:
        fake.add_storage("local")
        fake.add_storage("local-lvm")
        fake.add_bridge("vmbr0")
        fake.add_template(args.template)
    if args.token_file:
        fd = os.open(args.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secret + "\n")
        os.chmod(args.token_file, 0o600)  # O_CREAT's mode does not apply to an existing file
    fake.start()
    print(f"{fake.host}:{fake.port}", flush=True)
    print(f"pvefake: {fake.validation_note}; token {args.user}!{args.token_name}", file=sys.stderr, flush=True)

    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
