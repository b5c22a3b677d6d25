"""RelayCustomer custom resources as a source of customers (`SMARTHOST_POLICY_SOURCE=kubernetes`).

The objects of one namespace are listed, then watched from the list's
resourceVersion. A watch that ends (server timeout) resumes from the last
version seen; a `410 Gone` (that version was compacted away) forces a fresh
list; any other error is retried with backoff while the customers already
known stay in force. An object whose spec does not validate, or whose DKIM
key Secret cannot be read or holds no usable key, is ignored with a log line
naming it, and its last good version, if any, stays in force. A key is read
from its Secret when its RelayCustomer is listed or changes.
"""

import asyncio
import base64
import binascii
import logging
from pathlib import Path
from typing import Any, cast

from kubernetes.aio import client, config, watch
from kubernetes.aio.client.exceptions import ApiException
from prometheus_client import Counter

from smarthost_policy.policy_file import FROM_RESOURCE, Customer
from smarthost_policy.policy_store import PolicyStore

log = logging.getLogger("smarthost.policy")

GROUP = "smarthost.io"
VERSION = "v1alpha1"
PLURAL = "relaycustomers"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# The API server ends each watch after this long; it is then resumed.
WATCH_SECONDS = 300
RETRY_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)

EVENTS = Counter("smarthost_policy_kubernetes_events_total", "RelayCustomer list and watch events, by type", ["type"])


class ConfigError(Exception):
    """The kubernetes source cannot be set up; the message names the setting."""


def default_namespace(configured: str) -> str:
    if configured:
        return configured
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    except OSError:
        raise ConfigError(
            "SMARTHOST_POLICY_NAMESPACE: not set, and not running in a pod with a service account"
        ) from None


async def load_client_config() -> None:
    """In a pod, its service account; elsewhere the kubeconfig (`KUBECONFIG`)."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        try:
            await config.load_kube_config()  # type: ignore[no-untyped-call]
        except (config.ConfigException, OSError) as exc:
            raise ConfigError(
                f"SMARTHOST_POLICY_SOURCE=kubernetes: no service account and no usable kubeconfig: {exc}"
            ) from None


class RelayCustomerSource:
    def __init__(self, namespace: str, store: PolicyStore) -> None:
        self._namespace = namespace
        self._store = store
        self._customers: dict[str, Customer] = {}
        # The last resourceVersion seen, where a watch resumes; "" to list first.
        self._version = ""
        self._failures = 0
        self.synced = asyncio.Event()
        self._secrets: client.CoreV1Api | None = None

    async def run(self) -> None:
        async with client.ApiClient() as api_client:
            api = client.CustomObjectsApi(api_client)
            self._secrets = client.CoreV1Api(api_client)
            while True:
                try:
                    if not self._version:
                        await self._list(api)
                        self.synced.set()
                    started = asyncio.get_running_loop().time()
                    await self._watch(api)
                    # A server holds a watch open for its timeout: one that ends
                    # at once is broken, and must not be asked again in a tight loop.
                    if asyncio.get_running_loop().time() - started < 1.0:
                        await self._back_off("watch ended at once")
                except ApiException as exc:
                    if exc.status == 410:
                        log.info("relaycustomers watch expired, listing again", extra={"version": self._version})
                        self._version = ""
                        continue
                    await self._back_off(f"{exc.status} {exc.reason}")
                except Exception as exc:
                    # Connection refused or reset, a truncated stream, a malformed
                    # answer: all are retried, none may stop the source.
                    await self._back_off(repr(exc))

    async def _list(self, api: client.CustomObjectsApi) -> None:
        listing = cast(dict[str, Any], await api.list_namespaced_custom_object(GROUP, VERSION, self._namespace, PLURAL))
        EVENTS.labels(type="LIST").inc()
        previous, self._customers = self._customers, {}
        for item in listing.get("items", []):
            key = _key(item)
            customer = await self._customer(item) or previous.get(key)
            if customer is not None:
                self._customers[key] = customer
        self._store.use_cluster(self._customers)
        self._version = str(listing.get("metadata", {}).get("resourceVersion", ""))
        self._failures = 0
        log.info("relaycustomers listed", extra={"namespace": self._namespace, "customers": len(self._customers)})

    async def _watch(self, api: client.CustomObjectsApi) -> None:
        """Apply events until the server ends the watch, remembering the last version seen."""
        stream = watch.Watch()  # type: ignore[no-untyped-call]
        async with stream.stream(  # type: ignore[no-untyped-call]
            api.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self._namespace,
            PLURAL,
            resource_version=self._version,
            timeout_seconds=WATCH_SECONDS,
            allow_watch_bookmarks=True,
        ) as events:
            async for event in events:
                kind, item = event["type"], event["raw_object"]
                EVENTS.labels(type=kind).inc()
                self._failures = 0
                if kind in ("ADDED", "MODIFIED"):
                    customer = await self._customer(item)
                    if customer is not None:
                        self._customers[_key(item)] = customer
                        self._store.use_cluster(self._customers)
                elif kind == "DELETED" and self._customers.pop(_key(item), None) is not None:
                    self._store.use_cluster(self._customers)
                # Only once applied: should reading a key Secret fail, the watch resumes before this event.
                self._version = item.get("metadata", {}).get("resourceVersion", self._version)
                log.debug("relaycustomer event", extra={"event": kind, "object": _key(item), "version": self._version})

    async def _customer(self, item: dict[str, Any]) -> Customer | None:
        try:
            customer = Customer.model_validate(item.get("spec") or {}, context=FROM_RESOURCE)
            for i, key in enumerate(customer.dkim):
                try:
                    key.use_private_key(await self._secret_data(key.secret_name or "", key.secret_key or ""))
                except ValueError as exc:
                    raise ValueError(f"dkim.{i}: Secret {key.secret_name}, key {key.secret_key}: {exc}") from None
        except ValueError as exc:
            log.error(
                "relaycustomer refused, its last good version stays in force",
                extra={"object": _key(item), "error": str(exc)},
            )
            return None
        return customer

    async def _secret_data(self, name: str, key: str) -> bytes:
        assert self._secrets is not None  # set by run()
        try:
            secret = await self._secrets.read_namespaced_secret(name, self._namespace)
        except ApiException as exc:
            raise ValueError(f"cannot be read ({exc.status} {exc.reason})") from None
        encoded = (secret.data or {}).get(key)
        if encoded is None:
            raise ValueError("no such key in the Secret")
        try:
            return base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"not base64 ({exc})") from None

    async def _back_off(self, error: str) -> None:
        delay = RETRY_DELAYS[min(self._failures, len(RETRY_DELAYS) - 1)]
        self._failures += 1
        log.warning(
            "relaycustomers list/watch failed, the known customers stay in force",
            extra={"error": error, "retry_in": delay},
        )
        await asyncio.sleep(delay)


def _key(item: dict[str, Any]) -> str:
    metadata = item.get("metadata", {})
    return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"
