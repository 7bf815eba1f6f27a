"""pvefake: a faithful, stateful fake of the Proxmox VE REST API for tests.

    from pvefake import FakePve, Faults
    fake = FakePve(schema_version="9.1").start()
    secret = fake.add_token("root@pam", "provisioner")
    ...
    fake.stop()

Requests are validated against the official schema in <repo>/../shared/pve-api (validation is
switched off, with a warning, when that folder is missing). See the module docstrings for which
PVE behaviour each part reproduces.
"""

from .contract import Violation, check_recording
from .fake import FakePve, quiet_insecure_warnings
from .faults import Faults
from .realize import AgentError, NicInfo, NullRealizer, Realizer, VmInfo, VnetInfo
from .recorder import RecordedRequest
from .schema import Schema, SchemaUnavailable, schema_dir

__all__ = [
    "AgentError",
    "FakePve",
    "Faults",
    "NicInfo",
    "NullRealizer",
    "Realizer",
    "RecordedRequest",
    "Schema",
    "SchemaUnavailable",
    "Violation",
    "VmInfo",
    "VnetInfo",
    "check_recording",
    "quiet_insecure_warnings",
    "schema_dir",
]
