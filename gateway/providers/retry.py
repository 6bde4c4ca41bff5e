"""When to try an upstream call again, and how long to wait first."""

from __future__ import annotations

import email.utils
import time

from gateway import errors

# A timeout reaches the policy only as an upstream's 408 or 504 answer: our own socket
# timeout is final (the transport raises it before asking).
_RETRYABLE = (errors.UpstreamRateLimited, errors.UpstreamUnavailable, errors.UpstreamTimeout)


class RetryPolicy:
    """429, 5xx, 408, connection errors and empty replies; `min(base·2^(n-1), cap)` or Retry-After.

    A Retry-After longer than the cap is not waited out: the 429 goes to the client
    with the header, who can decide better than a gateway holding a connection open.
    """

    def __init__(self, max_attempts: int, base_delay: float, max_delay: float) -> None:
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay

    def delay_for(
        self, error: errors.GatewayError, attempt: int, retry_after: str | None
    ) -> float | None:
        if attempt >= self.max_attempts or not isinstance(error, _RETRYABLE):
            return None
        wanted = parse_retry_after(retry_after)
        if wanted is not None:
            return wanted if wanted <= self.max_delay else None
        backoff: float = self.base_delay * 2.0 ** (attempt - 1)
        return min(backoff, self.max_delay)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
