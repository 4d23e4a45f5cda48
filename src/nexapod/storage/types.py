"""Exact integer storage on every backend.

SQLite keeps integers in 64 bits and silently turns larger ones into floats, so an
exact count of FLOPs (or, later, money) past 2^63 would be corrupted. ``ExactInteger``
stores a Python ``int`` as ``NUMERIC(78, 0)`` on PostgreSQL and as its decimal text
on SQLite, and refuses anything that is not an ``int``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Numeric, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = ["ExactInteger"]

DIGITS_MAX = 78  # enough for 2^256


class ExactInteger(TypeDecorator[int]):
    """An unbounded integer column (up to 78 decimal digits)."""

    impl = Numeric(DIGITS_MAX, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(DIGITS_MAX + 1))
        return dialect.type_descriptor(Numeric(DIGITS_MAX, 0, asdecimal=True))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"ExactInteger takes an int, not {type(value).__name__}")
        assert len(str(abs(value))) <= DIGITS_MAX, "integer too large for ExactInteger"
        if dialect.name == "sqlite":
            return str(value)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        result = int(value)
        assert str(result) == str(value).split(".")[0], "stored integer lost precision"
        return result
