"""A service's /metrics, read as Prometheus reads it (prometheus_client's own parser)."""

import urllib.request

from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    def __init__(self, metrics_port: int) -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
            self.text = response.read().decode()
        # (sample name, labels) -> value, for every sample of every family.
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        self.families: dict[str, str] = {}
        for family in text_string_to_metric_families(self.text):
            self.families[family.name] = family.type
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named `name` whose labels include `labels` (0 when there are none)."""
        wanted = set(labels.items())
        return sum(value for (sample, have), value in self.samples.items() if sample == name and wanted <= have)

    def by(self, name: str, label: str) -> dict[str, float]:
        """`name`'s samples summed per value of `label`, zeros left out."""
        totals: dict[str, float] = {}
        for (sample, have), value in self.samples.items():
            if sample == name and value:
                key = dict(have).get(label, "")
                totals[key] = totals.get(key, 0) + value
        return totals
