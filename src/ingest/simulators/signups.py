"""Sign-up simulator: new customers of an internet provider signing up where they live.

- Sign-ups arrive as a Poisson process (optionally shaped by the evening curve) at ``rate``
  events per second of event time; each is one new customer, so there is no warm-up.
- Events come out in send-time order (so paced sending never waits on one slow client): web and
  app sign-ups within ~50 ms, shop terminals 0.5-15 s after the sign-up, so those arrive
  behind later ones (event-time disorder the pipeline must take).
- Customers live in the cities the clickstream world and ``dim.bandwidth_plans`` know
  (``reference.CITIES``, weighted by online population as clickstream draws them), except a
  small share (:data:`UNSERVED_SHARE`) in towns no plan covers: their offer is empty.
- User ids continue after the existing customers (``users``, clickstream's population):
  the n-th sign-up of shard i is ``users + i + n * shards``, so shards never share a key.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kappalake.ingest.reference import CITIES, Reference
from kappalake.ingest.simulators import simulator
from kappalake.ingest.simulators.base import SimEvent, Shard, Simulation, WeightedChoice, diurnal_factor, iso_ms

if TYPE_CHECKING:
    from kappalake.config import ProducerConf
    from kappalake.ingest.producer import ProduceSpec

SCHEMA_VERSION = 1
# Towns outside every plan's coverage (country, city, lat, lon); the simulator checks the
# reference data really has no plans there.
UNSERVED = [("DE", "Husum", 54.477, 9.051), ("FR", "Aurillac", 44.926, 2.440), ("GB", "Inverness", 57.478, -4.224),
            ("ES", "Teruel", 40.344, -1.107), ("IT", "Matera", 40.667, 16.604), ("SE", "Kiruna", 67.856, 20.225),
            ("US", "Fairbanks", 64.838, -147.716), ("CA", "Whitehorse", 60.721, -135.057),
            ("AU", "Alice Springs", -23.698, 133.881), ("BR", "Manaus", -3.119, -60.022)]
UNSERVED_SHARE = 0.03
CHANNELS = WeightedChoice(["web", "app", "store"], [0.55, 0.33, 0.12])
LOCATION_SHARED = {"web": 0.25, "app": 0.8, "store": 1.0}  # chance the event carries lat/lon
DESIRED_MBPS = WeightedChoice([None, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0], [0.35, 0.10, 0.15, 0.17, 0.10, 0.10, 0.03])
FIRST_NAMES = ["anna", "ben", "chloe", "david", "emma", "felix", "grace", "hugo", "ines", "jonas", "kai", "lea",
               "mia", "noah", "olga", "paul", "rosa", "sam", "tara", "yuki"]
LAST_NAMES = ["smith", "muller", "martin", "rossi", "garcia", "nowak", "berg", "silva", "tanaka", "kumar", "brown",
              "dubois", "jansen", "meier", "lopez", "khan"]
DOMAINS = WeightedChoice(["gmail.com", "outlook.com", "yahoo.com", "proton.me", "icloud.com", "web.de", "orange.fr"],
                         [0.45, 0.18, 0.08, 0.05, 0.12, 0.07, 0.05])


class SignupSimulator(Simulation):
    """Seeded sign-ups; iterate for :class:`SimEvent` in send-time order (keyed by user_id)."""

    def __init__(self, ref: Reference, seed: int, start_ms: int, rate: float = 5.0, users: int = 5000,
                 diurnal: bool = False, shard: Shard = Shard(), unserved_share: float = UNSERVED_SHARE):
        super().__init__(f"signups/{seed}/{shard.index}", start_ms)
        if rate <= 0 or users < 0 or not 0 <= unserved_share <= 1:
            raise ValueError("rate must be > 0, users >= 0 and unserved_share in [0, 1]")
        served = {(p.country, p.city) for p in ref.bandwidth_plans}
        self.unserved = [c for c in UNSERVED if c[:2] not in served]
        if not self.unserved:
            raise ValueError("every UNSERVED town has bandwidth plans in this reference data")
        self.rate, self.diurnal, self.unserved_share = rate, diurnal, unserved_share
        self._next_user = users + shard.index
        self._step = shard.count
        self._pick_city = WeightedChoice(CITIES, [c[4] for c in CITIES])
        self.schedule(start_ms + self._gap(start_ms), self._arrival)

    def _gap(self, t: int) -> int:
        lam = self.rate * (diurnal_factor(t) if self.diurnal else 1.0)
        return max(1, int(self.rng.expovariate(lam) * 1000))

    def _arrival(self, t: int) -> None:
        user_id = f"u{self._next_user:06d}"
        self._next_user += self._step
        event, sent = self._event(t, user_id)
        # Out at its send time: a shop terminal's upload arrives after later web and app sign-ups.
        self.schedule(sent, lambda now, k=user_id, e=event: self.emit(k, e, now))
        self.schedule(t + self._gap(t), self._arrival)

    def _sent(self, t: int, channel: str) -> int:
        if channel == "store":  # shop terminals upload every few seconds
            return t + int(self.rng.uniform(500, 15_000))
        return t + int(self.rng.lognormvariate(4.0, 0.6))  # ~55 ms median

    def _event(self, t: int, user_id: str) -> tuple[dict[str, Any], int]:
        """The sign-up's body (every contract field, in contract order) and its send time."""
        rng = self.rng
        if rng.random() < self.unserved_share:
            country, city, lat0, lon0 = rng.choice(self.unserved)
        else:
            country, city, lat0, lon0, _ = self._pick_city.draw(rng)
        channel = CHANNELS.draw(rng)
        located = rng.random() < LOCATION_SHARED[channel]
        spread = 0.02 if channel == "store" else 0.08  # shops are central, homes anywhere in town
        lat = round(lat0 + rng.uniform(-spread, spread), 5) if located else None
        lon = round(lon0 + rng.uniform(-spread, spread), 5) if located else None
        email = f"{rng.choice(FIRST_NAMES)}.{rng.choice(LAST_NAMES)}{rng.randrange(100)}@{DOMAINS.draw(rng)}"
        sent = self._sent(t, channel)
        return {
            "schema_version": SCHEMA_VERSION, "event_id": self.event_id(), "user_id": user_id, "email": email,
            "channel": channel, "country": country, "city": city, "lat": lat, "lon": lon,
            "desired_download_mbps": DESIRED_MBPS.draw(rng), "marketing_consent": rng.random() < 0.42,
            "event_time": iso_ms(t), "sent_at": iso_ms(sent),
        }, sent


@simulator("signups", implausible=("desired_download_mbps", (1e6, 1e8)), small_world={"users": 1000})
def _simulate(producer: ProducerConf, spec: ProduceSpec, ref: Reference, start_ms: int, rate: float
              ) -> Iterator[SimEvent]:
    return iter(SignupSimulator(ref, spec.seed, start_ms, rate, spec.users or producer.users, spec.diurnal, spec.shard))
