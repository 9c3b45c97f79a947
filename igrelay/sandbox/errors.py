"""Meta's Graph API errors, as the sandbox raises them: one exception, one constructor per case.

Envelope: https://developers.facebook.com/docs/graph-api/guides/error-handling
``{"error":{"message","type","code","error_subcode"?,"is_transient"?,"error_user_title"?,
"error_user_msg"?,"fbtrace_id"}}``, sent with HTTP ``status`` (400 for most, even throttling).
graph.instagram.com names most errors ``IGApiException`` (e.g. 2500 "Unknown path components", reported in
https://github.com/restfb/restfb/issues/1558); token errors (104, 190) and code 10 stay ``OAuthException``.
api.instagram.com's code exchange answers a flat ``{"error_type","code","error_message"}`` instead.

    GraphErrorReply
     +-- InstagramOAuthError   (api.instagram.com/oauth/access_token's flat shape)
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any


class GraphErrorReply(Exception):
    """An error answer: HTTP ``status`` plus Meta's error envelope fields."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        status: int = 400,
        type: str = "OAuthException",
        subcode: int | None = None,
        transient: bool | None = None,
        user_title: str | None = None,
        user_msg: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.type = code, message, status, type
        self.extra = {
            "error_subcode": subcode,
            "is_transient": transient,
            "error_user_title": user_title,
            "error_user_msg": user_msg,
        }

    def on_instagram_host(self) -> GraphErrorReply:
        """The same error as graph.instagram.com types it."""
        if self.type in ("OAuthException", "GraphMethodException") and self.code not in (10, 104, 190):
            self.type = "IGApiException"
        return self

    def body(self) -> dict[str, Any]:
        """The JSON body, with a fresh ``fbtrace_id``."""
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        error.update((k, v) for k, v in self.extra.items() if v is not None)
        error["fbtrace_id"] = "A" + secrets.token_urlsafe(16)[:22]
        return {"error": error}


def missing_token() -> GraphErrorReply:
    """No token at all (header or query)."""
    return GraphErrorReply(104, "An access token is required to request this resource.")


def invalid_token() -> GraphErrorReply:
    """A token the sandbox never issued."""
    return GraphErrorReply(190, "Invalid OAuth access token - Cannot parse access token")


def expired_token(now: datetime) -> GraphErrorReply:
    """190/463: the long-lived token expired; only a new login helps."""
    fmt = "%A, %d-%b-%y %H:%M:%S UTC"
    ended = (now - timedelta(hours=1)).strftime(fmt)
    message = f"Error validating access token: Session has expired on {ended}. The current time is {now:{fmt}}."
    return GraphErrorReply(190, message, subcode=463)


def no_object(object_id: str, method: str = "GET") -> GraphErrorReply:
    """100/33: deleted, never existed, or belongs to another token's account."""
    return GraphErrorReply(
        100,
        f"Unsupported {method.lower()} request. Object with ID '{object_id}' does not exist, cannot be loaded "
        "due to missing permissions, or does not support this operation. Please read the Graph API "
        "documentation at https://developers.facebook.com/docs/graph-api",
        type="GraphMethodException",
        subcode=33,
    )


def unknown_path(path: str) -> GraphErrorReply:
    """A path the Graph API has no route for."""
    return GraphErrorReply(2500, f"Unknown path components: {path}")


def nonexisting_field(name: str, node_type: str) -> GraphErrorReply:
    """A field or edge the node type does not have."""
    return GraphErrorReply(100, f"(#100) Tried accessing nonexisting field ({name}) on node type ({node_type})")


def syntax_error(text: str) -> GraphErrorReply:
    """A ``fields=`` value that does not parse."""
    return GraphErrorReply(2500, f'Syntax error "Expected end of string instead of "{text[:20]}"." at character 0')


def param_required(name: str) -> GraphErrorReply:
    """A required parameter is missing."""
    return GraphErrorReply(100, f"(#100) The parameter {name} is required")


def must_be_one_of(param: str, index: int, allowed: list[str]) -> GraphErrorReply:
    """An unknown or removed value, e.g. ``metric[0]``; lists what is allowed now."""
    return GraphErrorReply(100, f"(#100) {param}[{index}] must be one of the following values: {', '.join(allowed)}")


def unknown_error() -> GraphErrorReply:
    """Code 1, also what a breakdown on a metric without breakdowns gets (MEDIA-INS)."""
    return GraphErrorReply(1, "An unknown error has occurred.", status=500)


def service_unavailable() -> GraphErrorReply:
    """Code 2: temporary downtime, retry with backoff."""
    return GraphErrorReply(
        2, "An unexpected error has occurred. Please retry your request later.", status=500, transient=True
    )


def buc_throttled() -> GraphErrorReply:
    """80002: the Instagram Business Use Case limit for this account."""
    return GraphErrorReply(
        80002,
        "(#80002) There have been too many calls to this Instagram account. Wait a bit "
        "and try again. For more info, please refer to "
        "https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
        transient=True,
    )


def app_throttled() -> GraphErrorReply:
    """Code 4: the app-level request limit."""
    return GraphErrorReply(4, "(#4) Application request limit reached", transient=True)


class InstagramOAuthError(GraphErrorReply):
    """An error of api.instagram.com/oauth/access_token: flat, HTTP 400, ``code`` 400."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message, status=400)

    def on_instagram_host(self) -> GraphErrorReply:
        return self

    def body(self) -> dict[str, Any]:
        return {"error_type": "OAuthException", "code": 400, "error_message": self.message}


def not_enough_viewers() -> GraphErrorReply:
    """Code 10 for a story with under 5 viewers; it goes away as viewers grow (MEDIA-INS)."""
    return GraphErrorReply(10, "(#10) Not enough viewers for the media to show insights")


def no_permission() -> GraphErrorReply:
    """Code 10 for one media the app may not read; other media of the account still answer."""
    # https://github.com/airbytehq/airbyte/pull/32245 skips it per media
    return GraphErrorReply(10, "(#10) Application does not have permission for this action")


def unsupported_metrics(names: list[str], style: str) -> GraphErrorReply:
    """Code 100 refusing ``names`` for the media, in one of Meta's wordings (``REFUSAL_STYLES``)."""
    if style == "multi":  # https://www.volcengine.com/article/1139570
        listed = ", ".join(names)
        return GraphErrorReply(
            100, f"(#100) The Media Insights API does not support the {listed} metric for this media product type"
        )
    if style == "media_type":  # https://github.com/exileum/meta-mcp/issues/120
        return GraphErrorReply(100, f"The metric {names[0]} is not supported for this media type")
    if style == "anonymous":  # names nothing: the client must find the metric itself
        return GraphErrorReply(100, "(#100) Invalid parameter")
    return GraphErrorReply(
        100, f"(#100) The Media Insights API does not support the {names[0]} metric for this media product type"
    )


REFUSAL_STYLES = ("single", "multi", "media_type", "anonymous")


def token_too_young() -> GraphErrorReply:
    """refresh_access_token on a token under 24 h old (the rule is Meta's, the wording unverified)."""
    # https://developers.facebook.com/documentation/instagram-platform/reference/refresh_access_token
    return GraphErrorReply(100, "(#100) The access token must be at least 24 hours old to be refreshed")


def bad_client_secret() -> GraphErrorReply:
    """A ``client_secret`` that is not the app's."""
    return GraphErrorReply(1, "Error validating client secret.", status=400)


def bad_client_id() -> GraphErrorReply:
    """A ``client_id`` that is not the app's."""
    return GraphErrorReply(101, "Error validating application. Invalid application ID.")
