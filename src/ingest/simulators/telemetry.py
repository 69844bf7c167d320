"""Telemetry simulator: vehicles on routes and people passing campus badge sensors.

- Vehicles (fuel trucks, refrigerated trucks, taxis) drive looping routes at speeds set by
  the road condition, stop at waypoints (``parked``), burn fuel and refuel. Engine and cargo
  temperatures follow a mean-reverting drift; now and then one runs hot for tens of seconds
  (ground truth in :attr:`TelemetrySimulator.episodes`, for the anomaly detector's tests).
- Each vehicle reports every ``devices / vehicle_rate`` seconds, so the vehicles together
  produce the requested rate.
- People move between campus zones; each move is an ``out`` at one zone's gate sensor and an
  ``in`` at the next (device_id = sensor id, zone_id from dim.zones). Badge traffic is
  low-rate, like the real thing, and follows the working day when ``diurnal`` is on.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kappalake.ingest.reference import Reference
from kappalake.ingest.simulators import simulator
from kappalake.ingest.simulators.base import SimEvent, Shard, Simulation, WeightedChoice, diurnal_factor, iso_ms

if TYPE_CHECKING:
    from kappalake.config import ProducerConf
    from kappalake.ingest.producer import ProduceSpec

SCHEMA_VERSION = 1
VEHICLE_TYPES = [("fuel_truck", "truck"), ("fuel_truck", "truck"), ("fuel_truck", "truck"), ("fuel_truck", "truck"),
                 ("fuel_truck", "truck"), ("reefer_truck", "reefer"), ("reefer_truck", "reefer"), ("reefer_truck", "reefer"),
                 ("taxi", "taxi"), ("taxi", "taxi")]
ROAD_SPEED = {"dry": 72.0, "wet": 60.0, "snow": 42.0, "icy": 32.0}
ROAD_NEXT = WeightedChoice(["dry", "wet", "snow", "icy"], [0.65, 0.22, 0.07, 0.06])
DEPOTS = [(47.3769, 8.5417), (48.1374, 11.5755), (46.2044, 6.1432), (47.5596, 7.5886)]
KM_PER_DEG_LAT = 111.32
# Normal operating bands (the anomaly detector's static thresholds default to these).
ENGINE_NORMAL_C = (80.0, 100.0)
REEFER_NORMAL_C = (1.0, 7.0)
DWELL_MEAN_S = 900.0  # people stay ~15 minutes in a zone on average
PERIOD_JITTER = 0.1  # a vehicle's next reading comes after its period +- 10%


@dataclass(frozen=True)
class HotEpisode:
    """Ground truth: a temperature ran outside its normal band from start to end."""

    device_id: str
    sensor: str  # "engine" | "cargo"
    start_ms: int
    end_ms: int
    peak_c: float


@dataclass(frozen=True)
class ForcedEpisode:
    """A scripted temperature excursion: vehicle index, sensor, start as a fraction of the
    span, length in seconds and how far above the vehicle's normal temperature it peaks.
    ``readings``: it lasts at least that many of the vehicle's reporting periods too, so that
    a slowly reporting vehicle still sends that many readings from inside it (a few lost to
    faults or quarantine leave the detector enough to judge the excursion by)."""

    vehicle: int
    sensor: str
    at: float
    seconds: float
    rise_c: float
    readings: int = 0


# `produce telemetry --scenario hot-truck`: two excursions long enough to alert (10 s rule) at
# any reporting period, one too short to; random episodes are off, so these are the whole ground truth.
SCENARIOS: dict[str, list[ForcedEpisode]] = {
    "hot-truck": [ForcedEpisode(0, "engine", 0.25, 45, 25.0, readings=6),
                  ForcedEpisode(5, "cargo", 0.55, 30, 10.0, readings=6),
                  ForcedEpisode(1, "engine", 0.40, 4, 25.0)],
}


@dataclass
class Vehicle:
    device_id: str
    vehicle_type: str
    route_id: str
    waypoints: list[tuple[float, float]]
    lat: float
    lon: float
    next_wp: int = 1
    speed: float = 0.0
    heading: float = 0.0
    odometer: float = 0.0
    engine: float = 88.0
    engine_base: float = 90.0
    cargo: float | None = None
    cargo_base: float | None = None
    fuel: float = 80.0
    road: str = "dry"
    parked_until: int = 0
    hot: HotEpisode | None = None
    last_ms: int = 0


@dataclass
class Person:
    badge_id: str
    zone: int | None = None  # index into zones, None = off campus


class TelemetrySimulator(Simulation):
    """Seeded telemetry; iterate for :class:`SimEvent` in event-time order (keyed by device_id)."""

    def __init__(self, ref: Reference, seed: int, start_ms: int, rate: float = 1000.0, devices: int = 200,
                 people: int = 1500, diurnal: bool = False, shard: Shard = Shard(), hot_per_hour: float = 0.5,
                 scenario: str | None = None, span_ms: int = 0):
        super().__init__(f"telemetry/{seed}/{shard.index}", start_ms)
        if rate <= 0 or devices < 1 or people < 0:
            raise ValueError("rate must be > 0, devices >= 1, people >= 0")
        if scenario is not None and scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; scenarios: {', '.join(sorted(SCENARIOS))}")
        forced = SCENARIOS.get(scenario, [])
        if forced:
            hot_per_hour = 0.0
        self.ref = ref
        self.diurnal = diurnal
        self.hot_per_hour = hot_per_hour
        self.episodes: list[HotEpisode] = []
        self.zones = ref.zones
        # Badge traffic: people only in shard 0, so each gate sensor (a Kafka key) has one writer.
        self.people = [Person(f"b{i:05d}") for i in range(people)] if shard.index == 0 else []
        self._pick_zone = WeightedChoice(list(range(len(self.zones))), [z.capacity for z in self.zones])
        badge_rate = 2 * len(self.people) / DWELL_MEAN_S
        vehicle_ids = list(shard.ids(devices))
        vehicle_rate = max(rate - badge_rate, rate * 0.5)  # rate is this shard's share
        self.period_ms = max(20.0, 1000 * len(vehicle_ids) / vehicle_rate) if vehicle_ids else 1000.0
        routes = max(4, devices // 5)
        self.vehicles: list[Vehicle] = []
        for i in vehicle_ids:
            v = self._make_vehicle(i, seed, routes)
            self.vehicles.append(v)
            v.last_ms = start_ms
            self.schedule(start_ms + int(self.rng.uniform(0, self.period_ms)), lambda t, v=v: self._reading(t, v))
            for f in (f for f in forced if f.vehicle == i):
                self.schedule(start_ms + int(f.at * span_ms), lambda t, v=v, f=f: self._force(t, v, f))
        for p in self.people:
            if self.rng.random() < 0.6:
                p.zone = self._pick_zone.draw(self.rng)
            self.schedule(start_ms + int(self.rng.expovariate(1 / DWELL_MEAN_S) * 1000), lambda t, p=p: self._move(t, p))

    # -- vehicles --------------------------------------------------------------------------

    def _make_vehicle(self, i: int, seed: int, routes: int) -> Vehicle:
        rng = random.Random(f"vehicle/{seed}/{i}")
        vtype, prefix = VEHICLE_TYPES[i % len(VEHICLE_TYPES)]
        route = i % routes
        rrng = random.Random(f"route/{seed}/{route}")
        lat0, lon0 = DEPOTS[route % len(DEPOTS)]
        spread = 0.03 if vtype == "taxi" else 0.08
        wps = [(lat0, lon0)] + [(lat0 + rrng.uniform(-spread, spread), lon0 + rrng.uniform(-spread, spread) * 1.4)
                                for _ in range(rrng.randint(5, 9))]
        start_wp = rng.randrange(len(wps))
        # A vehicle's normal temperatures belong to the vehicle, not to the run: every seed
        # simulates the same fleet, so a detector's learnt baseline stays true across runs.
        normal = random.Random(f"vehicle-normal/{i}")
        engine_base = normal.uniform(86, 93)
        cargo_base = {"reefer_truck": normal.uniform(3, 5), "fuel_truck": normal.uniform(12, 18)}.get(vtype)
        road = ROAD_NEXT.draw(rng)
        return Vehicle(f"{prefix}-{i:04d}", vtype, f"r{route:03d}", wps, *wps[start_wp], next_wp=(start_wp + 1) % len(wps),
                       odometer=round(rng.uniform(20_000, 400_000), 1), engine=engine_base - 2, engine_base=engine_base,
                       cargo=cargo_base, cargo_base=cargo_base, fuel=rng.uniform(30, 100), road=road,
                       speed=ROAD_SPEED[road] * rng.uniform(0.4, 0.9))

    def _reading(self, t: int, v: Vehicle) -> None:
        rng = self.rng
        dt = max(0.001, (t - v.last_ms) / 1000)
        v.last_ms = t
        if rng.random() < dt / 900:  # the weather changes every ~15 minutes
            v.road = ROAD_NEXT.draw(rng)
        parked = t < v.parked_until
        if parked:
            v.speed = max(0.0, v.speed - 20 * dt)
            if v.speed < 1:
                v.speed = 0.0
        elif rng.random() < dt / (240 if v.vehicle_type == "taxi" else 600):  # pick-up, loading, traffic
            v.parked_until = t + int(rng.uniform(20, 120) * 1000)
        else:
            target = ROAD_SPEED[v.road] * (0.55 if v.vehicle_type == "taxi" else 1.0)
            v.speed = max(0.0, v.speed + (target - v.speed) * min(1.0, 0.15 * dt) + rng.gauss(0, 1.2) * math.sqrt(dt))
            self._drive(t, v, v.speed * dt / 3600)
        self._temperatures(t, v, dt, parked)
        sent = t + int(rng.lognormvariate(4.2, 0.5))  # ~70 ms to the gateway
        self.emit(v.device_id, {
            "schema_version": SCHEMA_VERSION, "event_id": self.event_id(), "device_id": v.device_id,
            "device_kind": "vehicle", "event_time": iso_ms(t), "sent_at": iso_ms(sent),
            "vehicle_type": v.vehicle_type, "route_id": v.route_id, "lat": round(v.lat, 6), "lon": round(v.lon, 6),
            "speed_kmh": round(v.speed, 1), "heading_deg": round(v.heading, 1), "odometer_km": round(v.odometer, 3),
            "engine_temp_c": round(v.engine, 1), "cargo_temp_c": None if v.cargo is None else round(v.cargo, 1),
            "fuel_level_pct": round(v.fuel, 1), "road_condition": v.road, "parked": parked,
            "zone_id": None, "badge_id": None, "direction": None,
        }, sent)
        gap = self.period_ms * rng.uniform(1 - PERIOD_JITTER, 1 + PERIOD_JITTER)
        self.schedule(t + max(1, int(gap)), lambda now, v=v: self._reading(now, v))

    def _drive(self, t: int, v: Vehicle, km: float) -> None:
        v.odometer += km
        v.fuel = max(0.5, v.fuel - km * (0.012 if v.vehicle_type == "taxi" else 0.04))
        while km > 0:
            tlat, tlon = v.waypoints[v.next_wp]
            dy = (tlat - v.lat) * KM_PER_DEG_LAT
            dx = (tlon - v.lon) * KM_PER_DEG_LAT * math.cos(math.radians(v.lat))
            dist = math.hypot(dx, dy)
            if dist > 1e-9:
                v.heading = math.degrees(math.atan2(dx, dy)) % 360
            if dist > km:
                v.lat += dy / dist * km / KM_PER_DEG_LAT
                v.lon += dx / dist * km / (KM_PER_DEG_LAT * math.cos(math.radians(v.lat)))
                return
            v.lat, v.lon = tlat, tlon
            km -= dist
            v.next_wp = (v.next_wp + 1) % len(v.waypoints)
            if self.rng.random() < 0.35:  # delivery stop or pick-up: park for a while
                v.parked_until = t + int(self.rng.uniform(30, 240) * 1000)
                if v.fuel < 15:
                    v.fuel = self.rng.uniform(92, 100)
                return

    def _force(self, t: int, v: Vehicle, f: ForcedEpisode) -> None:
        if f.sensor == "cargo" and v.cargo_base is None:
            return
        base = v.engine_base if f.sensor == "engine" else v.cargo_base
        ms = max(f.seconds * 1000, f.readings * self.period_ms * (1 + PERIOD_JITTER))
        v.hot = HotEpisode(v.device_id, f.sensor, t, t + int(ms), round(base + f.rise_c, 1))
        self.episodes.append(v.hot)

    def _temperatures(self, t: int, v: Vehicle, dt: float, parked: bool) -> None:
        rng = self.rng
        if v.hot is None and self.hot_per_hour > 0 and rng.random() < self.hot_per_hour * dt / 3600:
            sensor = "cargo" if v.vehicle_type == "reefer_truck" and rng.random() < 0.5 else "engine"
            peak = (v.engine_base + rng.uniform(18, 30)) if sensor == "engine" else (v.cargo_base or 4) + rng.uniform(7, 14)
            v.hot = HotEpisode(v.device_id, sensor, t, t + int(rng.uniform(15, 90) * 1000), round(peak, 1))
            self.episodes.append(v.hot)
        engine_target = v.engine_base + (-4 if parked else 0.04 * v.speed)
        cargo_target = v.cargo_base
        if v.hot is not None:
            if t >= v.hot.end_ms:
                v.hot = None
            elif v.hot.sensor == "engine":
                engine_target = v.hot.peak_c
            else:
                cargo_target = v.hot.peak_c
        hot_engine = v.hot is not None and v.hot.sensor == "engine"
        hot_cargo = v.hot is not None and v.hot.sensor == "cargo"
        # Mean reversion toward the target: fast while an episode ramps up or cools down.
        k = 0.6 if hot_engine or abs(engine_target - v.engine) > 6 else 0.08
        v.engine += (engine_target - v.engine) * min(1.0, k * dt) + rng.gauss(0, 0.25) * math.sqrt(dt)
        if v.cargo is not None and cargo_target is not None:
            k = 0.6 if hot_cargo or abs(cargo_target - v.cargo) > 3 else 0.05
            v.cargo += (cargo_target - v.cargo) * min(1.0, k * dt) + rng.gauss(0, 0.08) * math.sqrt(dt)

    # -- people ----------------------------------------------------------------------------

    def _move(self, t: int, p: Person) -> None:
        rng = self.rng
        work = diurnal_factor(t, "workday") if self.diurnal else 1.0
        if p.zone is not None:
            self._badge(t, p, p.zone, "out")
        leave = rng.random() < (0.08 / work if self.diurnal else 0.08)
        if p.zone is not None and leave:
            p.zone = None
            stay = rng.expovariate(1 / (DWELL_MEAN_S * (3 / max(work, 0.2) if self.diurnal else 1)))
        else:
            nxt = self._pick_zone.draw(rng)
            if nxt == p.zone:
                nxt = (nxt + 1) % len(self.zones)
            p.zone = nxt
            walk = int(rng.uniform(20, 180) * 1000)
            self.schedule(t + walk, lambda now, p=p, z=nxt: self._badge(now, p, z, "in"))
            stay = walk / 1000 + rng.lognormvariate(math.log(DWELL_MEAN_S) - 0.5, 1.0)
        self.schedule(t + int(stay * 1000) + 1, lambda now, p=p: self._move(now, p))

    def _badge(self, t: int, p: Person, zone: int, direction: str) -> None:
        z = self.zones[zone]
        sensor = f"badge-{z.zone_id}-{self.rng.choice('ab')}"  # two gates per zone
        sent = t + int(self.rng.lognormvariate(5.0, 0.6))
        self.emit(sensor, {
            "schema_version": SCHEMA_VERSION, "event_id": self.event_id(), "device_id": sensor,
            "device_kind": "badge_sensor", "event_time": iso_ms(t), "sent_at": iso_ms(sent),
            "vehicle_type": None, "route_id": None, "lat": None, "lon": None, "speed_kmh": None, "heading_deg": None,
            "odometer_km": None, "engine_temp_c": None, "cargo_temp_c": None, "fuel_level_pct": None,
            "road_condition": None, "parked": None, "zone_id": z.zone_id, "badge_id": p.badge_id, "direction": direction,
        }, sent)



@simulator("telemetry", implausible=("speed_kmh", (500.0, 5000.0)), scenarios=tuple(sorted(SCENARIOS)),
           small_world={"devices": 20, "people": 400})
def _simulate(producer: ProducerConf, spec: ProduceSpec, ref: Reference, start_ms: int, rate: float
              ) -> Iterator[SimEvent]:
    people = producer.people if spec.people is None else spec.people
    return iter(TelemetrySimulator(ref, spec.seed, start_ms, rate, spec.devices or producer.devices, people,
                                   spec.diurnal, spec.shard, scenario=spec.scenario, span_ms=spec.span_ms()))
