"""The EC2 instance types a node group may name, with their capacity (AWS's published figures).

The table holds smaller types too, so that the capacity rule (ORR 1.1-02: 8 vCPU and at least
16 GiB per node) is a real check and not a list of the allowed ones.
"""

from __future__ import annotations

from typing import NamedTuple


class Capacity(NamedTuple):
    vcpu: int
    memory_gib: int


INSTANCE_TYPES: dict[str, Capacity] = {
    "t3.large": Capacity(2, 8),
    "t3.xlarge": Capacity(4, 16),
    "t3.2xlarge": Capacity(8, 32),
    "m6i.large": Capacity(2, 8),
    "m6i.xlarge": Capacity(4, 16),
    "m6i.2xlarge": Capacity(8, 32),
    "m6i.4xlarge": Capacity(16, 64),
    "m7i.2xlarge": Capacity(8, 32),
    "m7i.4xlarge": Capacity(16, 64),
    "c6i.2xlarge": Capacity(8, 16),
    "c6i.4xlarge": Capacity(16, 32),
    "c7i.2xlarge": Capacity(8, 16),
    "r6i.xlarge": Capacity(4, 32),
    "r6i.2xlarge": Capacity(8, 64),
}
MIN_NODE = Capacity(vcpu=8, memory_gib=16)


def capacity_problem(instance_type: str) -> str | None:
    """Why ``instance_type`` cannot be a node (unknown or too small), or None."""
    capacity = INSTANCE_TYPES.get(instance_type)
    if capacity is None:
        return f"unknown instance type {instance_type!r} (known: {', '.join(INSTANCE_TYPES)})"
    if capacity.vcpu < MIN_NODE.vcpu or capacity.memory_gib < MIN_NODE.memory_gib:
        return (
            f"{instance_type} has {capacity.vcpu} vCPU / {capacity.memory_gib} GiB, below"
            f" {MIN_NODE.vcpu} vCPU / {MIN_NODE.memory_gib} GiB"
        )
    return None
