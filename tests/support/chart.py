"""The Helm chart's rendered objects, and the values cases the tests render.

Cases are the chart's defaults plus every `helm/smarthost/ci/*-values.yaml`,
the same files chart-testing tools install.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "smarthost"
RELEASE = "relay"
NAMESPACE = "mail"
HOOK = "helm.sh/hook"

Obj = dict[str, Any]


def _load_cases() -> dict[str, Obj]:
    cases: dict[str, Obj] = {"default": {}}
    for path in sorted((CHART / "ci").glob("*-values.yaml")):
        cases[path.name.removesuffix("-values.yaml")] = yaml.safe_load(path.read_text()) or {}
    return cases


CASES = _load_cases()


@dataclass(frozen=True)
class Rendered:
    """One render: the values it used and the Kubernetes objects it produced."""

    values: Obj
    objects: list[Obj]
    notes: str

    def of_kind(self, kind: str) -> list[Obj]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def get(self, kind: str, component: str) -> Obj:
        """The one object of `kind` named after `component`."""
        name = f"{RELEASE}-smarthost-{component}"
        found = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
        return found[0]

    def pod_templates(self) -> list[tuple[Obj, Obj]]:
        """(owner, pod spec) for every workload and hook pod."""
        pods = []
        for obj in self.objects:
            if obj["kind"] in ("Deployment", "StatefulSet"):
                pods.append((obj, obj["spec"]["template"]))
            elif obj["kind"] == "Pod":
                pods.append((obj, obj))
        return pods

    @staticmethod
    def is_hook(obj: Obj) -> bool:
        return HOOK in (obj["metadata"].get("annotations") or {})

    @staticmethod
    def env_of(container: Obj) -> dict[str, Obj]:
        return {entry["name"]: entry for entry in container.get("env", [])}

    def container(self, component: str) -> Obj:
        kind = "StatefulSet" if component == "redis" else "Deployment"
        containers: list[Obj] = self.get(kind, component)["spec"]["template"]["spec"]["containers"]
        return containers[0]


def parse(manifests: dict[str, str], values: Obj) -> Rendered:
    objects: list[Obj] = []
    notes = ""
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(values=values, objects=objects, notes=notes)
