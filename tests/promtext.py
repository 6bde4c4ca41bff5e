"""Reading the gateway's `/metrics` in tests: scrape, parse, look samples up by label."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx2
from prometheus_client.parser import text_string_to_metric_families


class Samples:
    """One scrape, parsed; values of absent series read as 0."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families: dict[str, str] = {}
        self._samples: list[tuple[str, dict[str, str], float]] = []
        for family in text_string_to_metric_families(text):
            self.families[family.name] = family.type
            for sample in family.samples:
                self._samples.append((sample.name, dict(sample.labels), sample.value))

    def sum(self, name: str, **labels: str) -> float:
        """Sum over the samples of `name` whose labels include `labels`."""
        return sum(
            value
            for sample, have, value in self._samples
            if sample == name and all(have.get(k) == v for k, v in labels.items())
        )

    def label_values(self, name: str, label: str, **labels: str) -> set[str]:
        """The values `label` takes among the samples of `name` that match `labels`."""
        return {
            have[label]
            for sample, have, _ in self._samples
            if sample == name and label in have and all(have.get(k) == v for k, v in labels.items())
        }


def scrape(url: str, headers: dict[str, str] | None = None) -> Samples:
    response = httpx2.get(url + "/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Samples(response.text)


def wait_for(url: str, check: Callable[[Samples], bool], timeout: float = 10) -> Samples:
    """Scrape until `check` holds (a stream is recorded only once its request ends)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(url)
        if check(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.02)
