"""Errors of the pools area (``pools.*``): each with a stable code and an HTTP status."""

from __future__ import annotations

from nexapod.errors import PoolError

__all__ = [
    "blacklisted",
    "epoch_open",
    "epoch_settled_before",
    "epoch_unknown",
    "institution_name_invalid",
    "not_your_node",
    "preference_empty",
    "treasury_amount_invalid",
    "week_open",
]


def blacklisted(node_id: str) -> PoolError:
    return PoolError(
        "blacklisted",
        f"node {node_id} is blacklisted: it cannot join a pool; see `nexapod admin blacklist`",
        status=403,
    )


def preference_empty() -> PoolError:
    return PoolError(
        "preference_empty", "say --opt-in or --opt-out for the warm or the cold pool", status=422
    )


def epoch_open(epoch_index: int, ends_at_ms: int) -> PoolError:
    return PoolError(
        "epoch_open",
        f"epoch {epoch_index} is still open (it ends at {ends_at_ms} ms): settle it after it ends",
        epoch=epoch_index,
        ends_at_ms=ends_at_ms,
        status=409,
    )


def epoch_unknown(epoch_index: int) -> PoolError:
    return PoolError("epoch_unknown", f"epoch {epoch_index} has not been settled", status=404)


def institution_name_invalid(chars_max: int) -> PoolError:
    return PoolError(
        "institution_name_invalid",
        f"an institution's name is 1 to {chars_max} printable characters",
        status=422,
    )


def treasury_amount_invalid(text: str) -> PoolError:
    return PoolError(
        "treasury_amount_invalid",
        f"{text!r} is not a positive USDC amount with at most 6 decimals (e.g. 250 or 12.5)",
        status=422,
    )


def epoch_settled_before(epoch_index: int, paid_until_ms: int) -> PoolError:
    return PoolError(
        "epoch_settled_before",
        f"epoch {epoch_index} starts before {paid_until_ms} ms, where settled epochs end "
        "(epochs settle in order, once)",
        epoch=epoch_index,
        status=409,
    )


def not_your_node(node_id: str, signer: str) -> PoolError:
    return PoolError(
        "not_your_node",
        f"node {signer} signed a request about node {node_id}: a node sets only its own pool",
        status=403,
    )


def week_open(period_index: int, ends_at_ms: int) -> PoolError:
    return PoolError(
        "week_open",
        f"stipend week {period_index} is still open (it ends at {ends_at_ms} ms)",
        week=period_index,
        ends_at_ms=ends_at_ms,
        status=409,
    )
