"""Seeded reference data: product catalog, campus zones, bandwidth plans by region.

The simulators draw product ids, cities and zones from the same :class:`Reference`, so every
id in the generated events exists in the dimension tables that ``kappalake reference create``
writes (``dim.products``, ``dim.zones``, ``dim.bandwidth_plans``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property

# (country, city, lat, lon, weight ~ online population)
CITIES: list[tuple[str, str, float, float, float]] = [
    ("DE", "Berlin", 52.520, 13.405, 9), ("DE", "Munich", 48.137, 11.575, 5), ("DE", "Hamburg", 53.551, 9.994, 4),
    ("FR", "Paris", 48.857, 2.352, 10), ("FR", "Lyon", 45.764, 4.836, 3), ("GB", "London", 51.507, -0.128, 12),
    ("GB", "Manchester", 53.481, -2.243, 3), ("NL", "Amsterdam", 52.368, 4.904, 4), ("ES", "Madrid", 40.417, -3.704, 6),
    ("ES", "Barcelona", 41.385, 2.173, 5), ("IT", "Milan", 45.464, 9.190, 5), ("IT", "Rome", 41.903, 12.496, 5),
    ("CH", "Zurich", 47.377, 8.540, 2), ("PL", "Warsaw", 52.230, 21.012, 4), ("SE", "Stockholm", 59.329, 18.069, 3),
    ("US", "New York", 40.713, -74.006, 14), ("US", "San Francisco", 37.775, -122.419, 6), ("US", "Chicago", 41.878, -87.630, 6),
    ("CA", "Toronto", 43.653, -79.383, 5), ("BR", "Sao Paulo", -23.551, -46.633, 7), ("IN", "Bangalore", 12.972, 77.595, 8),
    ("JP", "Tokyo", 35.676, 139.650, 9), ("AU", "Sydney", -33.869, 151.209, 4), ("ZA", "Cape Town", -33.925, 18.424, 2),
]

CATEGORIES: dict[str, tuple[float, float]] = {  # category -> (min, max) base price, EUR
    "running_shoes": (60, 220), "sneakers": (50, 260), "boots": (80, 320), "apparel": (15, 120),
    "accessories": (5, 60), "outdoor": (30, 400), "kids": (20, 90), "limited_edition": (180, 900),
}
BRANDS = ["Stridex", "Northpeak", "Velo", "Kinetic", "Aerolite", "Terra", "Pulse", "Urbanite"]

# (zone name, building, capacity)
ZONES: list[tuple[str, str, int]] = [
    ("Main entrance", "A", 120), ("Lobby A", "A", 80), ("Cafeteria", "B", 250), ("Library", "C", 150),
    ("Lab 1", "D", 40), ("Lab 2", "D", 40), ("Auditorium", "E", 400), ("Gym", "F", 90),
    ("Parking north", "P", 300), ("Data center", "D", 12), ("Office wing", "A", 200), ("Lecture hall", "E", 180),
]

PLAN_TIERS = [("basic", 50, 10, 19.99), ("plus", 250, 50, 34.99), ("pro", 1000, 200, 54.99), ("fiber_max", 2500, 1000, 79.99)]


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str
    category: str
    brand: str
    base_price: float
    popularity_rank: int  # 1 = most viewed; drives the Zipf skew of product views


@dataclass(frozen=True)
class Zone:
    zone_id: str
    name: str
    building: str
    capacity: int
    lat: float
    lon: float


@dataclass(frozen=True)
class BandwidthPlan:
    plan_id: str
    country: str
    city: str
    plan_name: str
    download_mbps: int
    upload_mbps: int
    monthly_price: float  # EUR
    currency: str


@dataclass(frozen=True)
class Reference:
    """All reference data for one seed; identical for identical (seed, products)."""

    seed: int = 42
    product_count: int = 200
    campus: tuple[float, float] = (47.3769, 8.5417)

    @cached_property
    def products(self) -> list[Product]:
        rng = random.Random(f"products/{self.seed}")
        ranks = list(range(1, self.product_count + 1))
        rng.shuffle(ranks)
        out = []
        for i in range(self.product_count):
            category = rng.choice(list(CATEGORIES))
            lo, hi = CATEGORIES[category]
            brand = rng.choice(BRANDS)
            out.append(Product(f"p{i:04d}", f"{brand} {category.replace('_', ' ').title()} {i:04d}", category, brand,
                               round(rng.uniform(lo, hi), 2), ranks[i]))
        return out

    @cached_property
    def products_by_rank(self) -> list[Product]:
        return sorted(self.products, key=lambda p: p.popularity_rank)

    @cached_property
    def zones(self) -> list[Zone]:
        rng = random.Random(f"zones/{self.seed}")
        lat0, lon0 = self.campus
        return [Zone(f"z{i + 1:02d}", name, building, capacity,
                     round(lat0 + rng.uniform(-0.003, 0.003), 6), round(lon0 + rng.uniform(-0.004, 0.004), 6))
                for i, (name, building, capacity) in enumerate(ZONES)]

    @cached_property
    def bandwidth_plans(self) -> list[BandwidthPlan]:
        rng = random.Random(f"plans/{self.seed}")
        out = []
        for country, city, *_ in CITIES:
            tiers = PLAN_TIERS[: rng.randint(2, 4)]  # smaller cities get fewer tiers
            local = rng.uniform(0.8, 1.25)
            for tier, down, up, price in tiers:
                out.append(BandwidthPlan(f"{country}-{city[:3].upper()}-{tier}", country, city, tier, down, up,
                                         round(price * local, 2), "EUR"))
        return out
