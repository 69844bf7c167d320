"""Clickstream simulator: users in sessions walking a shopping/video funnel with drop-off.

- Sessions arrive as a Poisson process (optionally shaped by the hour of day) sized so the
  stream averages ``rate`` events per second of event time; the simulation starts in steady
  state (sessions already in progress), so there is no ramp-up.
- Each session lands (with a referrer), browses products drawn with a Zipf popularity skew,
  searches, adds to cart, checks out and purchases with drop-off at every step; TV and some
  app sessions watch videos with buffering stalls.
- Occasional incidents raise error or buffering rates on one area for a few minutes (the
  operational-alerting case); ground truth is kept in :attr:`ClickstreamSimulator.incidents`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import cache
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kappalake.ingest.reference import CATEGORIES, CITIES, BRANDS, Reference
from kappalake.ingest.simulators import simulator
from kappalake.ingest.simulators.base import SimEvent, Shard, Simulation, WeightedChoice, diurnal_factor, iso_ms

if TYPE_CHECKING:
    from kappalake.config import ProducerConf
    from kappalake.ingest.producer import ProduceSpec

SCHEMA_VERSION = 1
CLIENTS = [  # (app, device, share)
    ("web", "desktop", 0.38), ("web", "mobile", 0.17), ("ios", "mobile", 0.18), ("android", "mobile", 0.17),
    ("ios", "tablet", 0.04), ("tv", "tv", 0.06),
]
CLIENT_CHOICE = WeightedChoice([(a, d) for a, d, _ in CLIENTS], [w for *_, w in CLIENTS])
BROWSERS = WeightedChoice(["chrome", "safari", "firefox", "edge"], [0.62, 0.20, 0.10, 0.08])
REFERRERS = WeightedChoice(
    [None, "https://www.google.com/", "https://www.facebook.com/", "https://www.instagram.com/", "email:newsletter",
     "ads:autumn-sale", "ads:running-week"], [0.35, 0.28, 0.09, 0.05, 0.10, 0.08, 0.05])
APP_VERSIONS = {"web": ["2026.11.3", "2026.11.2"], "ios": ["5.12.0", "5.11.2", "5.10.4"],
                "android": ["5.12.1", "5.11.0", "5.9.8"], "tv": ["3.4.0", "3.3.1"]}
FIRST_OCTETS = {"DE": [46, 62, 88], "FR": [80, 90], "GB": [81, 86], "NL": [77, 145], "ES": [83, 88], "IT": [79, 93],
                "CH": [85, 178], "PL": [83, 89], "SE": [78, 90], "US": [24, 66, 98], "CA": [24, 99], "BR": [177, 189],
                "IN": [49, 117], "JP": [126, 133], "AU": [1, 101], "ZA": [41, 105]}
ERRORS = {"/watch": ["PLAYBACK_FAILED", "DRM_LICENSE", "HTTP_503"], "/checkout": ["PAYMENT_DECLINED", "HTTP_500", "TIMEOUT"]}
CONTENT = [f"c{i:04d}" for i in range(500)]
BASE_ERROR_P = 0.004
# Chance that the next event of a viewer is a stall rather than the end of playback.
BASE_BUFFER_P = {"tv": 0.15, "mobile": 0.35, "tablet": 0.25, "desktop": 0.12}
MAX_STEPS = 40


@dataclass(frozen=True)
class User:
    user_id: str
    app: str
    device: str
    browser: str | None
    app_version: str
    ip: str
    country: str
    city: str
    lat: float
    lon: float


@dataclass(frozen=True)
class Incident:
    """Ground truth of an injected operational problem (raised error or buffering rate)."""

    kind: str  # "errors" | "buffering"
    area: str  # page prefix, e.g. /checkout or /watch
    start_ms: int
    end_ms: int
    multiplier: float


@dataclass
class Session:
    user: User
    session_id: str
    page: str = "/"
    cart: dict[str, tuple[float, int]] = field(default_factory=dict)
    steps: int = 0
    watching: str | None = None
    referrer: str | None = None
    pending: list[dict[str, Any]] = field(default_factory=list)


class ClickstreamSimulator(Simulation):
    """Seeded clickstream; iterate for :class:`SimEvent` in event-time order (keyed by user_id)."""

    def __init__(self, ref: Reference, seed: int, start_ms: int, rate: float = 1000.0, users: int = 5000,
                 diurnal: bool = False, shard: Shard = Shard(), incidents_per_hour: float = 3.0,
                 warm_start: bool = True):
        super().__init__(f"clickstream/{seed}/{shard.index}", start_ms)
        if rate <= 0 or users < 1:
            raise ValueError("rate must be > 0 and users >= 1")
        self.ref = ref
        self.rate = rate
        self.diurnal = diurnal
        self.incidents: list[Incident] = []
        self.incidents_per_hour = incidents_per_hour
        self._active_incidents: list[Incident] = []
        self._user_ids = list(shard.ids(users)) or [shard.index]
        self._user_seed = seed
        self._users: dict[int, User] = {}
        self._pick_user = WeightedChoice(self._user_ids, [self.rng.paretovariate(1.6) for _ in self._user_ids])
        self._funnel = Funnel.of(ref)
        self._pick_city = WeightedChoice(CITIES, [c[4] for c in CITIES])
        events_per_session, seconds_per_session = session_shape()
        self._session_rate = rate / events_per_session  # sessions per second
        # Warm start: run the last stretch before ``start_ms`` silently so the stream opens in
        # steady state (sessions already under way) instead of ramping up. Bounded to ~200k silent steps (~2 s).
        warm_s = min(3 * seconds_per_session, 200_000 / rate) if warm_start else 0
        self.schedule(start_ms - int(warm_s * 1000), self._arrival)
        if incidents_per_hour > 0:
            self.schedule(start_ms + self._incident_gap(), self._incident)

    # -- actors --------------------------------------------------------------------------

    def _arrival(self, t: int) -> None:
        self._start_session(t)
        lam = self._session_rate * (diurnal_factor(t) if self.diurnal else 1.0)
        self.schedule(t + max(1, int(self.rng.expovariate(lam) * 1000)), self._arrival)

    def _start_session(self, t: int) -> None:
        user = self.user(self._pick_user.draw(self.rng))
        s = Session(user, f"s-{self.rng.getrandbits(64):016x}", referrer=REFERRERS.draw(self.rng))
        self.schedule(t, lambda now, s=s: self._step(now, s))

    def _step(self, t: int, s: Session) -> None:
        rng = self.rng
        if self._active_incidents:
            self._active_incidents = [i for i in self._active_incidents if i.end_ms > t]
        fields, done = next_action(rng, s, self._funnel, self._error_p(s), self._buffer_p(s))
        s.steps += 1
        if t >= self.start_ms:
            sent = t + self._client_delay(s.user)
            self.emit(s.user.user_id, self._event(t, sent, s, fields), sent)
        if not done and s.steps < MAX_STEPS:
            self.schedule(t + int(think_time(rng, s) * 1000) + 1, lambda now, s=s: self._step(now, s))

    def _incident(self, t: int) -> None:
        kind, area = self.rng.choice([("errors", "/checkout"), ("errors", "/watch"), ("buffering", "/watch"),
                                      ("errors", "/product")])
        inc = Incident(kind, area, t, t + int(self.rng.uniform(60, 300) * 1000), self.rng.uniform(6, 15))
        self.incidents.append(inc)
        self._active_incidents.append(inc)
        self.schedule(t + self._incident_gap(), self._incident)

    def _incident_gap(self) -> int:
        return int(self.rng.expovariate(self.incidents_per_hour / 3600) * 1000) + 1 if self.incidents_per_hour else 0

    # -- details ---------------------------------------------------------------------------

    def _multiplier(self, s: Session, kind: str) -> float:
        m = 1.0
        for inc in self._active_incidents:
            if inc.kind == kind and s.page.startswith(inc.area):
                m = max(m, inc.multiplier)
        return m

    def _error_p(self, s: Session) -> float:
        return min(0.6, BASE_ERROR_P * self._multiplier(s, "errors")) if self._active_incidents else BASE_ERROR_P

    def _buffer_p(self, s: Session) -> float:
        p = BASE_BUFFER_P[s.user.device]
        return min(0.9, p * self._multiplier(s, "buffering") ** 0.5) if self._active_incidents else p

    def _client_delay(self, user: User) -> int:
        # Apps batch and retry over mobile networks: mostly tens of ms, sometimes seconds.
        base = self.rng.lognormvariate(3.5, 0.6)  # ~33 ms median
        if user.device == "mobile" and self.rng.random() < 0.01:
            base += self.rng.uniform(1000, 8000)
        return int(base)

    def _event(self, t: int, sent: int, s: Session, fields: dict[str, Any]) -> dict[str, Any]:
        u = s.user
        return {
            "schema_version": SCHEMA_VERSION, "event_id": self.event_id(), "event_type": fields["event_type"],
            "user_id": u.user_id, "session_id": s.session_id, "device": u.device, "app": u.app,
            "app_version": u.app_version, "browser": u.browser, "page": s.page,
            "referrer": s.referrer if s.steps == 1 else None,
            "product_id": fields.get("product_id"), "price": fields.get("price"), "quantity": fields.get("quantity"),
            "search_query": fields.get("search_query"), "content_id": fields.get("content_id"),
            "buffer_ms": fields.get("buffer_ms"), "error_code": fields.get("error_code"), "ip": u.ip,
            "geo": {"country": u.country, "city": u.city, "lat": u.lat, "lon": u.lon},
            "event_time": iso_ms(t), "sent_at": iso_ms(sent),
        }

    def user(self, idx: int) -> User:
        """Stable attributes of user ``idx`` (a function of the seed and the index, so shards agree)."""
        u = self._users.get(idx)
        if u is None:
            u = self._users[idx] = make_user(idx, self._user_seed, self._pick_city)
        return u


def make_user(idx: int, seed: int, cities: WeightedChoice) -> User:
    rng = random.Random(f"user/{seed}/{idx}")
    app, device = CLIENT_CHOICE.draw(rng)
    country, city, lat, lon, _ = cities.draw(rng)
    ip = f"{rng.choice(FIRST_OCTETS[country])}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    return User(f"u{idx:06d}", app, device, BROWSERS.draw(rng) if app == "web" else None,
                rng.choice(APP_VERSIONS[app]), ip, country, city,
                round(lat + rng.uniform(-0.08, 0.08), 5), round(lon + rng.uniform(-0.08, 0.08), 5))


@dataclass(frozen=True)
class Funnel:
    """What a session draws from: products by Zipf popularity, their prices, video titles."""

    products: WeightedChoice
    prices: dict[str, float]
    content: WeightedChoice

    @staticmethod
    def of(ref: Reference) -> "Funnel":
        ranked = ref.products_by_rank
        return Funnel(WeightedChoice(ranked, [1 / (r + 1) ** 1.1 for r in range(len(ranked))]),
                      {p.product_id: p.base_price for p in ranked},
                      WeightedChoice(CONTENT, [1 / (r + 1) for r in range(len(CONTENT))]))


def think_time(rng: random.Random, s: Session) -> float:
    """Seconds until the session's next event."""
    if s.pending:
        return rng.uniform(0.02, 0.2)  # the rest of an order, sent together
    if s.watching:
        return rng.uniform(5, 40)
    return rng.lognormvariate(1.6, 0.8)  # ~5 s median, long tail


def next_action(rng: random.Random, s: Session, f: Funnel, error_p: float, buffer_p: float) -> tuple[dict[str, Any], bool]:
    """One funnel step: update the session (page, cart) and return (event fields, session over?)."""
    if s.pending:  # further lines of an order just placed
        return s.pending.pop(0), not s.pending and rng.random() < 0.6
    if s.steps == 0:  # landing
        if s.referrer and s.referrer.startswith("ads:"):
            p = f.products.draw(rng)
            s.page = f"/product/{p.product_id}"
            return {"event_type": "page_view", "product_id": p.product_id}, False
        s.page = "/watch" if s.user.app == "tv" else "/"
        return {"event_type": "page_view"}, False
    if rng.random() < error_p:
        codes = next((v for k, v in ERRORS.items() if s.page.startswith(k)), ["HTTP_500", "HTTP_404", "TIMEOUT"])
        return {"event_type": "error", "error_code": rng.choice(codes)}, rng.random() < 0.35
    if s.watching:
        if rng.random() < buffer_p:
            return {"event_type": "buffering", "content_id": s.watching, "buffer_ms": int(rng.lognormvariate(6.5, 0.9))}, False
        cid, s.watching = s.watching, None
        return {"event_type": "video_stop", "content_id": cid}, rng.random() < 0.4
    if s.page == "/checkout":
        if rng.random() < 0.72:  # order placed: one purchase event per cart line
            lines = [{"event_type": "purchase", "product_id": pid, "price": price, "quantity": qty}
                     for pid, (price, qty) in s.cart.items()]
            s.cart = {}
            s.page = "/checkout/confirmation"
            s.pending = lines[1:]
            return lines[0], False
        s.page = "/cart"
        return {"event_type": "page_view"}, rng.random() < 0.5
    if s.page == "/cart" and s.cart:
        r = rng.random()
        if r < 0.55:
            s.page = "/checkout"
            return {"event_type": "checkout"}, False
        if r < 0.65:
            pid = rng.choice(list(s.cart))
            _, qty = s.cart.pop(pid)
            return {"event_type": "remove_from_cart", "product_id": pid, "quantity": qty}, False
    if s.page.startswith("/product/") and rng.random() < 0.14:
        pid = s.page.rsplit("/", 1)[1]
        price = round(f.prices[pid] * rng.choice([1, 1, 1, 1, 0.9, 0.8, 0.7]), 2)
        qty = 1 if rng.random() < 0.85 else 2
        s.cart[pid] = (price, s.cart.get(pid, (price, 0))[1] + qty)
        return {"event_type": "add_to_cart", "product_id": pid, "price": price, "quantity": qty}, False
    # browsing, with drop-off
    if rng.random() < (0.10 if s.cart else 0.16):
        s.page = rng.choice(["/", "/account", "/help"])
        return {"event_type": "page_view"}, True
    r = rng.random()
    if s.cart and r < 0.22:
        s.page = "/cart"
        return {"event_type": "page_view"}, False
    if r < 0.55:
        p = f.products.draw(rng)
        s.page = f"/product/{p.product_id}"
        return {"event_type": "page_view", "product_id": p.product_id}, False
    if r < 0.75:
        return {"event_type": "click", "product_id": f.products.draw(rng).product_id}, False
    if r < 0.88:
        s.page = "/search"
        terms = f"{rng.choice(BRANDS).lower()} {rng.choice(list(CATEGORIES)).replace('_', ' ')}"
        return {"event_type": "search", "search_query": terms}, False
    if s.user.app != "web" or r < 0.93:
        cid = f.content.draw(rng)
        s.page, s.watching = f"/watch/{cid}", cid
        return {"event_type": "video_play", "content_id": cid}, False
    s.page = "/"
    return {"event_type": "page_view"}, False


@cache
def session_shape() -> tuple[float, float]:
    """Mean events and mean seconds per session, measured once on 10,000 simulated sessions."""
    rng = random.Random(12345)
    funnel = Funnel.of(Reference())
    cities = WeightedChoice(CITIES, [c[4] for c in CITIES])
    events = seconds = 0.0
    n = 10_000
    for i in range(n):
        s = Session(make_user(i, 0, cities), "s", referrer=REFERRERS.draw(rng))
        done = False
        while not done and s.steps < MAX_STEPS:
            _, done = next_action(rng, s, funnel, BASE_ERROR_P, BASE_BUFFER_P[s.user.device])
            s.steps += 1
            if not done:
                seconds += think_time(rng, s)
        events += s.steps
    return events / n, seconds / n


@simulator("clickstream", implausible=("price", (1e6, 1e8)), small_world={"users": 1000})
def _simulate(producer: ProducerConf, spec: ProduceSpec, ref: Reference, start_ms: int, rate: float
              ) -> Iterator[SimEvent]:
    return iter(ClickstreamSimulator(ref, spec.seed, start_ms, rate, spec.users or producer.users, spec.diurnal,
                                     spec.shard))
