"""Access rules for channels (pure functions over claims and a channel)."""

from __future__ import annotations

from herald_api.storage.protocols import Channel
from herald_common.errors import ErrorCode, HeraldError
from herald_common.tokens import Claims


def can_manage(claims: Claims, channel: Channel) -> bool:
    """Only the owner or an admin renames or deletes a channel or changes its members."""
    return claims.is_admin or channel.owner_id == claims.sub


def require_manage(claims: Claims, channel: Channel) -> None:
    if not can_manage(claims, channel):
        raise HeraldError(ErrorCode.FORBIDDEN, "only the channel owner or an admin may do this")
