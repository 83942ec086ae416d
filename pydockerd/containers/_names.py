"""Names for containers created without one: ``adjective_surname``, as Docker makes them.

The surnames are of scientists and engineers; the lists are pydockerd's own.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

__all__ = ["generate_name"]

ADJECTIVES = (
    "agile", "amazing", "bold", "brave", "bright", "busy", "calm", "careful", "clever", "cool",
    "curious", "daring", "dazzling", "eager", "elastic", "elated", "epic", "fervent", "fond", "friendly",
    "gallant", "gentle", "glad", "happy", "hardy", "honest", "hopeful", "humble", "jolly", "keen",
    "kind", "lively", "loyal", "lucid", "merry", "mighty", "modest", "nifty", "noble", "patient",
    "peaceful", "plucky", "polite", "proud", "quick", "quiet", "rapid", "relaxed", "serene", "sharp",
    "shiny", "silly", "sleepy", "smart", "snappy", "steady", "stoic", "sunny", "swift", "tender",
    "tidy", "trusty", "upbeat", "vivid", "warm", "wise", "witty", "zealous", "zen", "zesty",
)  # fmt: skip

SURNAMES = (
    "agnesi", "archimedes", "babbage", "bardeen", "bohr", "boole", "cannon", "carson", "cerf", "curie",
    "darwin", "dijkstra", "einstein", "euclid", "euler", "faraday", "fermat", "fermi", "feynman", "franklin",
    "galileo", "gauss", "germain", "goodall", "hamilton", "hawking", "heisenberg", "hertz", "hopper", "hypatia",
    "johnson", "joliot", "kepler", "knuth", "kowalevski", "lamarr", "leakey", "liskov", "lovelace", "maxwell",
    "meitner", "mendel", "minsky", "mirzakhani", "morse", "newton", "nobel", "noether", "pascal", "pasteur",
    "planck", "poincare", "ramanujan", "ritchie", "sammet", "shannon", "somerville", "tesla", "thompson",
    "torvalds", "turing", "volta", "wilson", "wozniak", "wright", "yalow", "yonath",
)  # fmt: skip


def generate_name(taken: Callable[[str], bool], attempts: int = 10) -> str:
    """A free name (``/`` prefixed, as stored); after a clash a digit is added, as Docker does."""
    name = ""
    for i in range(attempts):
        name = f"{secrets.choice(ADJECTIVES)}_{secrets.choice(SURNAMES)}"
        if i:
            name += str(secrets.randbelow(10))
        if not taken("/" + name):
            return "/" + name
    return f"/{name}_{secrets.token_hex(4)}"
