"""A small warehouse inventory: stock items, locations, movements and reports.

This file is benchmark data for bench/completion_latency.py: a realistic
Python module that the benchmark "types" into an editor, one keystroke at a
time, asking the language server for a completion after each one.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum
from pathlib import Path

log = logging.getLogger(__name__)

CENT = Decimal("0.01")


class InventoryError(Exception):
    """Raised when an operation would leave the inventory inconsistent."""


class MovementKind(Enum):
    RECEIVE = "receive"
    SHIP = "ship"
    TRANSFER = "transfer"
    ADJUST = "adjust"


@dataclass(frozen=True)
class Location:
    """A place in the warehouse: an aisle, a shelf and a bin."""

    aisle: str
    shelf: int
    bin: int

    @classmethod
    def parse(cls, text: str) -> Location:
        """Parse a location code such as ``B-03-12``."""
        try:
            aisle, shelf, bin_ = text.strip().split("-")
            return cls(aisle.upper(), int(shelf), int(bin_))
        except ValueError as exc:
            raise InventoryError(f"bad location code {text!r}") from exc

    def __str__(self) -> str:
        return f"{self.aisle}-{self.shelf:02d}-{self.bin:02d}"


@dataclass
class Item:
    """A stock keeping unit with its price and where its units are."""

    sku: str
    name: str
    unit_price: Decimal
    reorder_level: int = 0
    stock: dict[Location, int] = field(default_factory=dict)

    @property
    def quantity(self) -> int:
        return sum(self.stock.values())

    @property
    def value(self) -> Decimal:
        return (self.unit_price * self.quantity).quantize(CENT, rounding=ROUND_HALF_UP)

    def needs_reorder(self) -> bool:
        return self.quantity <= self.reorder_level

    def add(self, location: Location, count: int) -> None:
        if count <= 0:
            raise InventoryError(f"cannot add {count} units of {self.sku}")
        self.stock[location] = self.stock.get(location, 0) + count

    def remove(self, location: Location, count: int) -> None:
        have = self.stock.get(location, 0)
        if count > have:
            raise InventoryError(
                f"only {have} units of {self.sku} at {location}, cannot remove {count}"
            )
        if count == have:
            del self.stock[location]
        else:
            self.stock[location] = have - count


@dataclass(frozen=True)
class Movement:
    """One change to the stock, kept for the audit trail."""

    kind: MovementKind
    sku: str
    count: int
    source: Location | None
    target: Location | None
    at: dt.datetime
    note: str = ""

    def to_row(self) -> list[str]:
        return [
            self.at.isoformat(timespec="seconds"),
            self.kind.value,
            self.sku,
            str(self.count),
            str(self.source or ""),
            str(self.target or ""),
            self.note,
        ]


class Inventory:
    """All items of one warehouse and the movements that changed them."""

    def __init__(self) -> None:
        self.items: dict[str, Item] = {}
        self.movements: list[Movement] = []

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        return iter(sorted(self.items.values(), key=lambda item: item.sku))

    def item(self, sku: str) -> Item:
        try:
            return self.items[sku]
        except KeyError:
            raise InventoryError(f"unknown SKU {sku!r}") from None

    def register(self, sku: str, name: str, unit_price: str, reorder_level: int = 0) -> Item:
        if sku in self.items:
            raise InventoryError(f"SKU {sku!r} is already registered")
        item = Item(sku, name, Decimal(unit_price), reorder_level)
        self.items[sku] = item
        log.info("registered %s (%s)", sku, name)
        return item

    def _record(
        self,
        kind: MovementKind,
        sku: str,
        count: int,
        source: Location | None,
        target: Location | None,
        note: str,
    ) -> Movement:
        movement = Movement(kind, sku, count, source, target, dt.datetime.now(dt.UTC), note)
        self.movements.append(movement)
        return movement

    def receive(self, sku: str, count: int, target: Location, note: str = "") -> Movement:
        self.item(sku).add(target, count)
        return self._record(MovementKind.RECEIVE, sku, count, None, target, note)

    def ship(self, sku: str, count: int, source: Location, note: str = "") -> Movement:
        self.item(sku).remove(source, count)
        return self._record(MovementKind.SHIP, sku, count, source, None, note)

    def transfer(self, sku: str, count: int, source: Location, target: Location) -> Movement:
        if source == target:
            raise InventoryError("source and target are the same location")
        item = self.item(sku)
        item.remove(source, count)
        item.add(target, count)
        return self._record(MovementKind.TRANSFER, sku, count, source, target, "")

    def adjust(self, sku: str, location: Location, counted: int, note: str) -> Movement | None:
        """Set the stock at a location to what a physical count found."""
        item = self.item(sku)
        have = item.stock.get(location, 0)
        if counted == have:
            return None
        if counted > have:
            item.add(location, counted - have)
        else:
            item.remove(location, have - counted)
        return self._record(MovementKind.ADJUST, sku, counted - have, None, location, note)

    def total_value(self) -> Decimal:
        return sum((item.value for item in self.items.values()), Decimal("0"))

    def low_stock(self) -> list[Item]:
        return [item for item in self if item.needs_reorder()]

    def by_location(self) -> dict[Location, dict[str, int]]:
        result: dict[Location, dict[str, int]] = defaultdict(dict)
        for item in self.items.values():
            for location, count in item.stock.items():
                result[location][item.sku] = count
        return dict(result)

    def history(self, sku: str) -> list[Movement]:
        return [m for m in self.movements if m.sku == sku]


def load_items(path: Path, inventory: Inventory) -> int:
    """Register the items of a CSV file with columns sku,name,unit_price,reorder_level."""
    count = 0
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            inventory.register(
                row["sku"].strip(),
                row["name"].strip(),
                row["unit_price"].strip(),
                int(row.get("reorder_level") or 0),
            )
            count += 1
    return count


def load_stock(path: Path, inventory: Inventory) -> int:
    """Receive the stock listed in a CSV file with columns sku,location,count."""
    received = 0
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            location = Location.parse(row["location"])
            count = int(row["count"])
            inventory.receive(row["sku"].strip(), count, location, note="initial stock")
            received += count
    return received


def write_movements(movements: Iterable[Movement], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["at", "kind", "sku", "count", "source", "target", "note"])
        for movement in movements:
            writer.writerow(movement.to_row())


def stock_report(inventory: Inventory) -> str:
    """A plain-text table of every item, its quantity and its value."""
    lines = [f"{'SKU':<10} {'Name':<28} {'Qty':>6} {'Value':>12}"]
    lines.append("-" * len(lines[0]))
    for item in inventory:
        flag = " *" if item.needs_reorder() else ""
        lines.append(f"{item.sku:<10} {item.name:<28} {item.quantity:>6} {item.value:>12}{flag}")
    lines.append("-" * len(lines[0]))
    lines.append(f"{'Total':<46} {inventory.total_value():>12}")
    return "\n".join(lines)


def reorder_list(inventory: Inventory, multiple: int = 10) -> dict[str, int]:
    """How many units of each low item to order, rounded up to a multiple."""
    orders: dict[str, int] = {}
    for item in inventory.low_stock():
        missing = item.reorder_level * 2 - item.quantity
        if missing > 0:
            orders[item.sku] = -(-missing // multiple) * multiple
    return orders


def to_json(inventory: Inventory) -> str:
    data = {
        "items": [
            {
                "sku": item.sku,
                "name": item.name,
                "unit_price": str(item.unit_price),
                "reorder_level": item.reorder_level,
                "stock": {str(loc): count for loc, count in sorted(item.stock.items(), key=str)},
            }
            for item in inventory
        ],
        "total_value": str(inventory.total_value()),
    }
    return json.dumps(data, indent=2)


def from_json(text: str) -> Inventory:
    data = json.loads(text)
    inventory = Inventory()
    for entry in data["items"]:
        item = inventory.register(
            entry["sku"], entry["name"], entry["unit_price"], entry.get("reorder_level", 0)
        )
        for code, count in entry.get("stock", {}).items():
            item.add(Location.parse(code), int(count))
    return inventory


def busiest_locations(inventory: Inventory, top: int = 5) -> list[tuple[Location, int]]:
    """The locations with the most units, largest first."""
    totals = {loc: sum(skus.values()) for loc, skus in inventory.by_location().items()}
    return sorted(totals.items(), key=lambda pair: (-pair[1], str(pair[0])))[:top]


def movements_between(inventory: Inventory, start: dt.datetime, end: dt.datetime) -> list[Movement]:
    return [m for m in inventory.movements if start <= m.at < end]


def shipped_per_day(inventory: Inventory) -> dict[dt.date, int]:
    per_day: dict[dt.date, int] = defaultdict(int)
    for movement in inventory.movements:
        if movement.kind is MovementKind.SHIP:
            per_day[movement.at.date()] += movement.count
    return dict(sorted(per_day.items()))


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="print a stock report")
    parser.add_argument("items", type=Path)
    parser.add_argument("stock", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    inventory = Inventory()
    load_items(args.items, inventory)
    load_stock(args.stock, inventory)
    print(to_json(inventory) if args.json else stock_report(inventory))
    orders = reorder_list(inventory)
    if orders:
        print("\nReorder:")
        for sku, count in orders.items():
            print(f"  {sku}: {count}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
