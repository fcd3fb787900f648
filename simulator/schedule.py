"""The event scheduler: what the fleet sends, in simulated-time order, with no I/O.

Each luminaire reports every ``report_interval_s``: its k-th report is due at
``start + phase + k × interval``, plus a jitter drawn in ``[0, jitter]`` (the phase spreads the
fleet over the first interval, so a city never reports in the same second, and the jitter does not
accumulate, so the mean interval is exact). Fault episodes add their own events: an offline device's
connection drop and return, a driver's fault status, a controller replaced. A heap orders all of it.

``FleetSchedule.events()`` yields ``Publish`` / ``Drop`` / ``Rejoin`` events; the shell maps
simulated time to wall time and does the MQTT. A reading is entered in the energy tally only once
the consumer has taken it (the code after ``yield`` runs when the next event is asked for), so a run
stopped while an event waits for its time does not count that event as sent.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo

from simulator.dimming import DimmingProfile
from simulator.episodes import COUNTER_RESET, DRIVER_OVERTEMP, OFFLINE, Episode
from simulator.fleet import Luminaire
from simulator.formats import telemetry_message
from simulator.physics import WH, EnergyCounter, LampModel, wh_reported
from simulator.readings import (
    Reading,
    batch_payload,
    status_payload,
    topic,
)


@dataclass(slots=True)  # not frozen: one per message, and a frozen __init__ costs 3× more
class Publish:
    """A message to publish at simulated time ``t_ms``.

    ``sender`` is the luminaire whose own connection sends it (per-device connections), or None
    for the shared / gateway connection.
    """

    t_ms: int
    topic: str
    payload: bytes
    retain: bool
    sender: str | None
    kind: str
    readings: int = 0


@dataclass(frozen=True, slots=True)
class Drop:
    """The luminaire's connection breaks without DISCONNECT: the broker publishes its Last Will."""

    t_ms: int
    device_id: str


@dataclass(frozen=True, slots=True)
class Rejoin:
    """The luminaire reconnects (its birth status follows as a ``Publish``)."""

    t_ms: int
    device_id: str


Event = Publish | Drop | Rejoin


@dataclass(slots=True)
class EnergyTally:
    """One device's energy as the run saw it, for the energy-truth file."""

    device_id: str
    zone: str
    circuit: str
    readings: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    first_wh: float | None = None
    last_wh: float | None = None
    resets: int = 0
    between_cwms: int = 0
    """True energy between the first and the last reading sent (includes energy a reset hid)."""
    counter_wh: float = 0.0
    """Sum of the reported counter's increments, a fall read as a reset: what a report can see."""
    run_cwms: int = 0
    """True energy over the whole run."""

    @property
    def between_wh(self) -> float:
        return self.between_cwms / WH

    @property
    def run_wh(self) -> float:
        return self.run_cwms / WH


@dataclass(slots=True)
class _Device:
    lum: Luminaire
    model: LampModel
    counter: EnergyCounter
    rng: random.Random
    tally: EnergyTally
    phase_ms: int
    k: int = 0
    seq: int = 0
    offline: bool = False
    pending_cwms: int = 0


# Heap priorities at equal times: a device comes back before it reports, goes away before it
# would report, and births at the start come first.
_BIRTH, _REJOIN, _RESET, _OVERTEMP_END, _OVERTEMP, _DROP, _REPORT = range(7)


@dataclass(slots=True)
class _Gateway:
    zone: str
    first_ms: int
    readings: list[Reading] = field(default_factory=list)


class FleetSchedule:
    """The fleet's messages over ``[start_ms, end_ms)`` (``end_ms=None``: without end)."""

    def __init__(
        self,
        fleet: Sequence[Luminaire],
        profile: DimmingProfile,
        tz: tzinfo,
        episodes: Sequence[Episode],
        start_ms: int,
        end_ms: int | None,
        *,
        seed: int = 1,
        jitter_ms: int = 0,
        topic_root: str = "lighting",
        emulate_will: bool = False,
        gateway_batch: int = 0,
        gateway_max_age_ms: int = 60_000,
        nominal_v: float = 220.0,
        payload_format: str = "luxtel",
    ) -> None:
        self.start_ms = start_ms
        self.payload_format = payload_format
        self.end_ms = end_ms
        self.root = topic_root
        self.emulate_will = emulate_will or gateway_batch > 0
        self.gateway_batch = gateway_batch
        self.gateway_max_age_ms = gateway_max_age_ms
        self.nominal_v = nominal_v
        self.jitter_ms = jitter_ms
        self.episodes = tuple(episodes)
        by_device: dict[str, list[Episode]] = {}
        for ep in self.episodes:
            by_device.setdefault(ep.device_id, []).append(ep)
        self.devices: list[_Device] = []
        for lum in fleet:
            interval_ms = lum.report_interval_s * 1000
            if not 0 <= jitter_ms < interval_ms:
                raise ValueError("the jitter must be shorter than the report interval")
            model = LampModel(lum, profile, tz, by_device.get(lum.device_id, ()), seed)
            rng = random.Random(f"luxtel-device:{seed}:{lum.device_id}")
            self.devices.append(
                _Device(
                    lum=lum,
                    model=model,
                    counter=EnergyCounter(model, start_ms, lum.initial_energy_wh),
                    rng=rng,
                    tally=EnergyTally(lum.device_id, lum.zone, lum.circuit),
                    phase_ms=rng.randrange(interval_ms),
                )
            )
        self._by_id = {d.lum.device_id: d for d in self.devices}
        self._gateways: dict[str, _Gateway] = {}
        self._finished = False

    def model(self, device_id: str) -> LampModel:
        """The luminaire's physics, e.g. for ``energy_truth_wh(model, t0, t1)`` over any period."""
        return self._by_id[device_id].model

    @property
    def tallies(self) -> list[EnergyTally]:
        return [d.tally for d in self.devices]

    def _due(self, d: _Device) -> int:
        nominal = self.start_ms + d.phase_ms + d.k * d.lum.report_interval_s * 1000
        return nominal + int(d.rng.random() * (self.jitter_ms + 1))

    def _heap(self) -> list[tuple[int, int, int, int]]:
        index = {d.lum.device_id: i for i, d in enumerate(self.devices)}
        heap = [(self.start_ms, _BIRTH, i, -1) for i in range(len(self.devices))]
        heap += [(self._due(d), _REPORT, i, -1) for i, d in enumerate(self.devices)]
        for n, ep in enumerate(self.episodes):
            i = index[ep.device_id]
            if ep.kind == OFFLINE:
                heap += [(ep.start_ms, _DROP, i, n), (ep.end_ms, _REJOIN, i, n)]
            elif ep.kind == DRIVER_OVERTEMP:
                heap += [(ep.start_ms, _OVERTEMP, i, n), (ep.end_ms, _OVERTEMP_END, i, n)]
            elif ep.kind == COUNTER_RESET:
                heap.append((ep.start_ms, _RESET, i, n))
        heapq.heapify(heap)
        return heap

    def _status(self, d: _Device, t_ms: int, **fields: object) -> Publish:
        payload = status_payload(t_ms, **fields)  # type: ignore[arg-type]
        sender = None if self.gateway_batch else d.lum.device_id
        return Publish(
            t_ms,
            topic(self.root, d.lum.zone, d.lum.device_id, "status"),
            payload,
            True,
            sender,
            "status",
        )

    def _birth(self, d: _Device, t_ms: int) -> Publish:
        return self._status(d, t_ms, online=True, firmware=d.lum.firmware)

    def _advance(self, d: _Device, t_ms: int) -> None:
        added = d.counter.advance(t_ms)
        d.pending_cwms += added
        d.tally.run_cwms += added

    def _read(self, d: _Device, t_ms: int) -> Reading:
        self._advance(d, t_ms)
        units = d.counter.units
        m = d.model.measure(t_ms, d.rng, self.nominal_v)
        reading = Reading(d.lum.device_id, t_ms, d.seq, units, m, wh_reported(units))
        d.seq += 1
        return reading

    def _record(self, d: _Device, r: Reading) -> None:
        """Enter a reading that has been handed to the shell in its device's tally."""
        tally = d.tally
        wh = r.energy_wh
        if tally.readings == 0:
            tally.first_ms, tally.first_wh = r.t_ms, wh
        else:
            tally.between_cwms += d.pending_cwms
            assert tally.last_wh is not None
            tally.counter_wh += wh - tally.last_wh if wh >= tally.last_wh else wh
        d.pending_cwms = 0
        tally.readings += 1
        tally.last_ms, tally.last_wh = r.t_ms, wh

    def _flush_due(self, now_ms: int) -> Iterator[Publish]:
        while self._gateways:
            gw_id, gw = next(iter(self._gateways.items()))
            due = gw.first_ms + self.gateway_max_age_ms
            if due > now_ms:
                return
            yield from self._flush(gw_id, due)

    def _flush(self, gw_id: str, t_ms: int) -> Iterator[Publish]:
        gw = self._gateways.pop(gw_id)
        yield Publish(
            t_ms,
            topic(self.root, gw.zone, gw_id, "batch"),
            batch_payload(gw.readings),
            False,
            None,
            "batch",
            len(gw.readings),
        )
        for r in gw.readings:
            self._record(self._by_id[r.device_id], r)

    def events(self) -> Iterator[Event]:
        """The fleet's events in simulated-time order, until ``end_ms`` or forever (one pass: the
        schedule holds the devices' counters and sequence numbers as it goes)."""
        heap = self._heap()
        while heap:
            t_ms, what, i, _ = heap[0]
            if self.end_ms is not None and t_ms >= self.end_ms:
                break
            if self._gateways:
                yield from self._flush_due(t_ms)
            heapq.heappop(heap)
            d = self.devices[i]
            if what == _REPORT:
                d.k += 1
                heapq.heappush(heap, (self._due(d), _REPORT, i, -1))
                if d.offline:
                    d.seq += 1
                    continue
                reading = self._read(d, t_ms)
                if self.gateway_batch:
                    gw = self._gateways.setdefault(d.lum.gateway_id, _Gateway(d.lum.zone, t_ms))
                    gw.readings.append(reading)
                    if len(gw.readings) >= self.gateway_batch:
                        yield from self._flush(d.lum.gateway_id, t_ms)
                    continue
                name, payload = telemetry_message(
                    self.payload_format, self.root, d.lum.zone, reading
                )
                yield Publish(
                    t_ms,
                    name,
                    payload,
                    False,
                    d.lum.device_id,
                    "telemetry",
                    1,
                )
                self._record(d, reading)
            elif what == _BIRTH:
                yield self._birth(d, t_ms)
            elif what == _DROP:
                d.offline = True
                if self.emulate_will:
                    yield self._status(d, t_ms, online=False)
                else:
                    yield Drop(t_ms, d.lum.device_id)
            elif what == _REJOIN:
                d.offline = False
                if not self.emulate_will:
                    yield Rejoin(t_ms, d.lum.device_id)
                yield self._birth(d, t_ms)
            elif what == _OVERTEMP:
                yield self._status(
                    d, t_ms, online=True, firmware=d.lum.firmware, faults=[DRIVER_OVERTEMP]
                )
            elif what == _OVERTEMP_END:
                yield self._status(d, t_ms, online=True, firmware=d.lum.firmware, faults=[])
            elif what == _RESET:
                self._advance(d, t_ms)
                d.counter.reset(t_ms)
                d.seq = 0
                d.tally.resets += 1
                yield self._birth(d, t_ms)
        if self.end_ms is not None:
            yield from self.finish(self.end_ms)

    def finish(self, stop_ms: int) -> list[Publish]:
        """Flush the gateways' pending batches and close the tallies at ``stop_ms``; idempotent.

        The returned batches are entered in the tallies as sent: publish them.
        """
        if self._finished:
            return []
        self._finished = True
        out: list[Publish] = []
        for gw_id in list(self._gateways):
            gw = self._gateways[gw_id]
            out.extend(self._flush(gw_id, min(gw.first_ms + self.gateway_max_age_ms, stop_ms)))
        for d in self.devices:
            if stop_ms > d.counter.t_ms:
                d.tally.run_cwms += d.counter.advance(stop_ms)
        return out
