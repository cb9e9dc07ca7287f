"""Estimated cost of sweep jobs from the hourly machine prices a spec's [resource]
may give (``price_per_hour``, ``preemptible_price_per_hour``, ``currency``).
There is no built-in price list: prices change, and the user knows theirs.

A job is charged for its run time (the runtime's wall time) at the price of the
VMs it ran on (preemptible when the resource is), divided by the resource's task
slots (a VM running N tasks at once costs each 1/N). Start-up and idle time of
the VMs are not counted: the figures are estimates, and say so. "On standard
VMs" prices each variation's last run at the standard price (no preemptions).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from everbake.spec import ImageSpec


@dataclass(frozen=True)
class Prices:
    standard: float  # per hour of one VM; 0: not given
    preemptible: float
    currency: str
    preemptible_vms: bool
    task_slots: int
    image: str

    @classmethod
    def from_spec(cls, spec: ImageSpec) -> Prices | None:
        r = spec.resource
        if not r.price_per_hour and not r.preemptible_price_per_hour:
            return None
        return cls(
            standard=r.price_per_hour,
            preemptible=r.preemptible_price_per_hour,
            currency=r.currency,
            preemptible_vms=r.preemptible,
            task_slots=max(1, r.task_slots),
            image=spec.name,
        )

    @classmethod
    def from_setting(cls, data: Any) -> Prices | None:
        return cls(**data) if isinstance(data, dict) and data else None

    def as_setting(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def hourly(self) -> float:
        """What an hour of one task costs on the VMs the resource starts."""
        price = self.preemptible if self.preemptible_vms and self.preemptible else self.standard
        return price / self.task_slots

    def cost(self, run_seconds: float) -> float:
        return run_seconds / 3600 * self.hourly

    def cost_standard(self, run_seconds: float) -> float:
        return run_seconds / 3600 * self.standard / self.task_slots
