"""The sandbox's world: accounts, Pages, tokens and media as plain dataclasses, plus ``demo_data()``."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

PRODUCT_TYPES = {"FEED", "REELS", "STORY"}
MEDIA_TYPES = {"IMAGE", "VIDEO", "CAROUSEL_ALBUM"}
FIRST_MEDIA_ID = 18_000_000_000_000_001
META_TIME = "%Y-%m-%dT%H:%M:%S+0000"
LONG_LIVED = timedelta(
    days=60
)  # https://developers.facebook.com/documentation/instagram-platform/reference/access_token
SHORT_LIVED = timedelta(hours=1)
DEMO_TOKEN_AGE = timedelta(days=10)  # old enough to refresh (24 h minimum), 50 days before expiry
HISTORY_MEDIA, HISTORY_DAYS, HISTORY_GAP = 240, 180, 8  # demo history per account, ending 8 days ago


@dataclass
class Account:
    """An Instagram professional account; ``id`` is the id webhooks carry (``/me``'s ``user_id``).

    Under Instagram Login ``/me`` answers the app-scoped ``app_scoped_id`` as its ``id``; under Facebook Login
    the account is reached through ``page_id``, the Facebook Page it is linked to.
    """

    id: str
    username: str
    name: str
    followers_count: int
    follows_count: int = 150
    subscribed_fields: list[str] = field(default_factory=list)
    app_scoped_id: str = ""
    page_id: str = ""
    page_fields: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        digest = int(hashlib.sha256(self.id.encode()).hexdigest()[:12], 16)
        self.app_scoped_id = self.app_scoped_id or f"2{digest % 10**15:015d}"
        self.page_id = self.page_id or f"10{digest % 10**13:013d}"


@dataclass
class Media:
    """One media object; ``parent_id`` is set on carousel children, ``children`` on the album.

    ``story_viewers`` is the number of viewers a story reaches; it gets there over ``VIEWER_RAMP``.
    ``permission_denied`` makes its insights answer Meta's media-scoped code 10.
    """

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
    permission_denied: bool = False


@dataclass
class Token:
    """An access token: ``kind`` is ``user`` (IG or FB user) or ``page``; ``expires_at`` None never expires.

    ``expired`` forces 190/463 (``Sandbox.expire_token``); ``account_id`` is empty for a Facebook user token,
    which reaches its accounts through ``/me/accounts``.
    """

    value: str
    account_id: str
    expired: bool = False
    kind: str = "user"
    issued_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    expires_at: datetime | None = None
    long_lived: bool = True
    accounts: tuple[str, ...] = ()

    def dead(self, now: datetime) -> bool:
        """Expired by ``expire_token`` or by the clock."""
        return self.expired or (self.expires_at is not None and now >= self.expires_at)


@dataclass
class SandboxData:
    """Everything the sandbox serves; mutate it only through ``Sandbox`` (which holds the lock)."""

    accounts: dict[str, Account] = field(default_factory=dict)
    media: dict[str, Media] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    login_type: str = "instagram"
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    _ids: itertools.count = field(default_factory=lambda: itertools.count(FIRST_MEDIA_ID))

    def add_account(self, account: Account) -> Account:
        """Register ``account`` with its deterministic long-lived token (and Page token)."""
        self.accounts[account.id] = account
        issued = self.created - DEMO_TOKEN_AGE
        self.tokens[f"IGAAsandbox{account.id}"] = Token(
            f"IGAAsandbox{account.id}", account.id, issued_at=issued, expires_at=issued + LONG_LIVED
        )
        self.tokens[f"EAAsandboxPage{account.id}"] = Token(f"EAAsandboxPage{account.id}", account.id, kind="page")
        return account

    def account_token(self, account_id: str) -> str:
        """The deterministic token igrelay is configured with for the login type being played."""
        prefix = "EAAsandboxPage" if self.login_type == "facebook" else "IGAAsandbox"
        return f"{prefix}{account_id}"

    def add_token(
        self, account_id: str, now: datetime | None = None, lifetime: timedelta | None = LONG_LIVED, **extra: object
    ) -> str:
        """A new valid token for ``account_id`` (older ones keep working, as Meta's do until expiry)."""
        serial = sum(1 for t in self.tokens.values() if t.account_id == account_id)
        prefix = "EAAsandbox" if self.login_type == "facebook" else "IGAAsandbox"
        value = f"{prefix}{account_id or 'User'}r{serial}x{len(self.tokens)}"
        issued = now or datetime.now(UTC)
        expires = issued + lifetime if lifetime is not None else None
        self.tokens[value] = Token(value, account_id, issued_at=issued, expires_at=expires, **extra)  # type: ignore[arg-type]
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

    def add_history(self, account_id: str, count: int, days: float, end: datetime) -> None:
        """``count`` feed posts and reels spread evenly over ``days`` days before ``end`` (no stories)."""
        step = timedelta(days=days) / max(count, 1)
        account = self.accounts[account_id]
        for n in range(count):
            product, kind = _HISTORY_KINDS[n % len(_HISTORY_KINDS)]
            caption = f"post {n + 1} of {count} by {account.username}"
            self.add_media(account_id, product, kind, end - step * (n + 1), caption=caption)


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
_HISTORY_KINDS = [
    ("FEED", "IMAGE"),
    ("REELS", "VIDEO"),
    ("FEED", "CAROUSEL_ALBUM"),
    ("FEED", "IMAGE"),
    ("FEED", "VIDEO"),
]


def demo_data(
    accounts: int = 2,
    now: datetime | None = None,
    history: int = HISTORY_MEDIA,
    history_days: float = HISTORY_DAYS,
    login_type: str = "instagram",
) -> SandboxData:
    """Each account: a feed image, carousel, feed video, reel and two stories of the last 3 days, then
    ``history`` older posts and reels over ``history_days`` days, ending 8 days ago (for backfills)."""
    now = now or datetime.now(UTC)
    data = SandboxData(login_type=login_type, created=now)
    for n in range(1, accounts + 1):
        account = data.add_account(
            Account(f"178414{n:011d}", f"sandbox_account_{n}", f"Sandbox Account {n}", 1000 * n + 234)
        )
        for product, kind, hours, extra in _DEMO_MEDIA:
            when = now - timedelta(hours=hours, minutes=n)
            caption = f"{product.lower()} {kind.lower()} by {account.username}"
            data.add_media(account.id, product, kind, when, caption=caption, **extra)
    for account_id in list(data.accounts):  # after the recent media, so their ids stay as they were
        data.add_history(account_id, history, history_days, now - timedelta(days=HISTORY_GAP))
    return data
