"""The sandbox's world: accounts, tokens and media as plain dataclasses, plus ``demo_data()``."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

PRODUCT_TYPES = {"FEED", "REELS", "STORY"}
MEDIA_TYPES = {"IMAGE", "VIDEO", "CAROUSEL_ALBUM"}
FIRST_MEDIA_ID = 18_000_000_000_000_001
META_TIME = "%Y-%m-%dT%H:%M:%S+0000"


@dataclass
class Account:
    """An Instagram professional account (``id`` is also its ``user_id``, as webhooks name it)."""

    id: str
    username: str
    name: str
    followers_count: int
    follows_count: int = 150
    subscribed_fields: list[str] = field(default_factory=list)


@dataclass
class Media:
    """One media object; ``parent_id`` is set on carousel children, ``children`` on the album."""

    id: str
    account_id: str
    media_product_type: str
    media_type: str
    timestamp: datetime
    caption: str = ""
    shared_to_facebook: bool = False
    pre_conversion: bool = False
    story_viewers: int = 100
    parent_id: str | None = None
    children: list[str] = field(default_factory=list)
    deleted: bool = False


@dataclass
class Token:
    """An Instagram User access token; ``expired`` makes every use answer 190/463."""

    value: str
    account_id: str
    expired: bool = False


@dataclass
class SandboxData:
    """Everything the sandbox serves; mutate it only through ``Sandbox`` (which holds the lock)."""

    accounts: dict[str, Account] = field(default_factory=dict)
    media: dict[str, Media] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(FIRST_MEDIA_ID))

    def add_account(self, account: Account) -> Account:
        """Register ``account`` with its deterministic long-lived token."""
        self.accounts[account.id] = account
        self.add_token(account.id)
        return account

    def add_token(self, account_id: str) -> str:
        """A new valid token for ``account_id`` (older ones keep working, as Meta's do until expiry)."""
        serial = sum(1 for t in self.tokens.values() if t.account_id == account_id)
        value = f"IGAAsandbox{account_id}" + (f"r{serial}" if serial else "")
        self.tokens[value] = Token(value, account_id)
        return value

    def add_media(self, account_id: str, product: str, kind: str, when: datetime, **extra: object) -> Media:
        """Create a media (and two children for a carousel); raises ``ValueError`` on bad input."""
        if account_id not in self.accounts:
            raise ValueError(f"unknown account {account_id!r}")
        if product not in PRODUCT_TYPES or kind not in MEDIA_TYPES:
            raise ValueError(f"bad media_product_type/media_type {product!r}/{kind!r}")
        kind = "VIDEO" if product == "REELS" else kind
        media = Media(str(next(self._ids)), account_id, product, kind, when, **extra)  # type: ignore[arg-type]
        self.media[media.id] = media
        if kind == "CAROUSEL_ALBUM":
            for child_kind in ("IMAGE", "VIDEO"):
                child = Media(str(next(self._ids)), account_id, "FEED", child_kind, when, parent_id=media.id)
                self.media[child.id] = child
                media.children.append(child.id)
        return media


def meta_time(when: datetime) -> str:
    """Meta's timestamp format, e.g. ``2026-11-20T10:00:00+0000``."""
    return when.astimezone(UTC).strftime(META_TIME)


def shortcode(media_id: str) -> str:
    """A stable, Instagram-looking shortcode for permalinks."""
    return "C" + hashlib.sha1(media_id.encode(), usedforsecurity=False).hexdigest()[:10]


def permalink(media: Media, username: str) -> str:
    """The public URL of ``media``, shaped like Instagram's for each product type."""
    if media.media_product_type == "STORY":
        return f"https://www.instagram.com/stories/{username}/{media.id}/"
    section = "reel" if media.media_product_type == "REELS" else "p"
    return f"https://www.instagram.com/{section}/{shortcode(media.id)}/"


_DEMO_MEDIA = [  # (product, type, hours ago, extra)
    ("FEED", "IMAGE", 72, {}),
    ("FEED", "CAROUSEL_ALBUM", 50, {}),
    ("FEED", "VIDEO", 26, {}),
    ("REELS", "VIDEO", 6, {"shared_to_facebook": True}),
    ("STORY", "IMAGE", 2, {"story_viewers": 100}),
    ("STORY", "VIDEO", 5, {"story_viewers": 3}),
]


def demo_data(accounts: int = 2, now: datetime | None = None) -> SandboxData:
    """``accounts`` accounts, each with a feed image, carousel (2 children), feed video, reel and two stories."""
    now = now or datetime.now(UTC)
    data = SandboxData()
    for n in range(1, accounts + 1):
        account = data.add_account(
            Account(f"178414{n:011d}", f"sandbox_account_{n}", f"Sandbox Account {n}", 1000 * n + 234)
        )
        for product, kind, hours, extra in _DEMO_MEDIA:
            when = now - timedelta(hours=hours, minutes=n)
            caption = f"{product.lower()} {kind.lower()} by {account.username}"
            data.add_media(account.id, product, kind, when, caption=caption, **extra)
    return data
