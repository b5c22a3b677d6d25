"""The relay's Service keeps customers' addresses: the policy decides on them."""

from collections.abc import Callable

from support.chart import Rendered


def test_load_balancer_keeps_client_ips_by_default(render_case: Callable[[str], Rendered]) -> None:
    service = render_case("default").get("Service", "ingress")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["externalTrafficPolicy"] == "Local"


def test_every_case_keeps_client_ips(rendered: Rendered) -> None:
    """Either the load balancer does not rewrite sources, or PROXY protocol carries them."""
    service = rendered.get("Service", "ingress")
    env = Rendered.env_of(rendered.container("ingress"))
    assert service["spec"]["externalTrafficPolicy"] == "Local" or "SMARTHOST_PROXY_TRUSTED" in env


def test_public_ports_reach_unprivileged_listeners(rendered: Rendered) -> None:
    """25 always; 587 only with a certificate, as AUTH is offered only after STARTTLS."""
    service = rendered.get("Service", "ingress")
    container = rendered.container("ingress")
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    env = Rendered.env_of(container)
    by_port = {port["port"]: port["targetPort"] for port in service["spec"]["ports"]}
    assert env["SMARTHOST_SMTP_LISTEN"]["value"] == "0.0.0.0:2525"
    assert ports["smtp"] == 2525
    if rendered.values["ingress"]["tls"]["enabled"]:
        assert by_port == {25: "smtp", 587: "submission"}
        assert ports["submission"] == 5870
        assert env["SMARTHOST_SUBMISSION_LISTEN"]["value"] == "0.0.0.0:5870"
    else:
        assert by_port == {25: "smtp"}
        assert "submission" not in ports and "SMARTHOST_SUBMISSION_LISTEN" not in env


def test_proxy_protocol_trusts_only_its_load_balancers(render_case: Callable[[str], Rendered]) -> None:
    rendered = render_case("proxy-protocol")
    service = rendered.get("Service", "ingress")
    env = Rendered.env_of(rendered.container("ingress"))
    assert env["SMARTHOST_PROXY_TRUSTED"]["value"] == "10.0.0.0/8"
    assert service["spec"]["loadBalancerSourceRanges"] == ["198.51.100.0/24", "2001:db8:1::/48"]
    assert service["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-proxy-protocol"] == "*"


def test_no_proxy_protocol_unless_asked(render_case: Callable[[str], Rendered]) -> None:
    env = Rendered.env_of(render_case("default").container("ingress"))
    assert "SMARTHOST_PROXY_TRUSTED" not in env


def test_notes_explain_client_ips(render_case: Callable[[str], Rendered], render: Callable[..., Rendered]) -> None:
    assert "Client IPs are preserved" in render_case("default").notes
    cluster = render({"ingress": {"service": {"externalTrafficPolicy": "Cluster"}}})
    assert "WARNING: externalTrafficPolicy is Cluster" in cluster.notes


def test_tls_comes_from_a_mounted_secret(render_case: Callable[[str], Rendered]) -> None:
    rendered = render_case("tls")
    pod = rendered.get("Deployment", "ingress")["spec"]["template"]["spec"]
    env = Rendered.env_of(pod["containers"][0])
    volume = next(v for v in pod["volumes"] if v["name"] == "tls")
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "tls")
    assert volume["secret"]["secretName"] == "smarthost-relay-tls"
    # A subPath mount would never see cert-manager's renewals.
    assert "subPath" not in mount
    assert env["SMARTHOST_TLS_CERT"]["value"] == f"{mount['mountPath']}/tls.crt"
    assert env["SMARTHOST_TLS_KEY"]["value"] == f"{mount['mountPath']}/tls.key"
    certificate = next(obj for obj in rendered.objects if obj["kind"] == "Certificate")
    assert certificate["spec"]["secretName"] == "smarthost-relay-tls"
    assert certificate["spec"]["dnsNames"] == ["relay.example.net"]
