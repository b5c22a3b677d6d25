"""Asking a policy replica directly over gRPC, as the ingress does."""

import grpc
from smarthost.policy.v1 import policy_pb2 as pb
from smarthost.policy.v1.policy_pb2_grpc import PolicyServiceStub


class PolicyProbe:
    def __init__(self, address: str) -> None:
        self._channel = grpc.insecure_channel(address)
        self._stub = PolicyServiceStub(self._channel)

    def connection(self, client_ip: str) -> pb.CheckConnectionResponse:
        request = pb.CheckConnectionRequest(session=pb.Session(client_ip=client_ip))
        response: pb.CheckConnectionResponse = self._stub.CheckConnection(request, timeout=10)
        return response

    def verdict(self, client_ip: str) -> str:
        """ "250 2.0.0 acme 20971520", or the refusal's code and enhanced code."""
        response = self.connection(client_ip)
        verdict = response.verdict
        if verdict.action != pb.ACTION_ACCEPT:
            return f"{verdict.code} {verdict.enhanced_code}"
        return f"{verdict.code} {verdict.enhanced_code} {response.customer} {response.max_message_size}"

    def dkim_keys(self, client_ip: str, from_domain: str) -> list[tuple[str, str, bytes]]:
        """The keys an accepted message from `from_domain` is signed with (the message is counted)."""
        request = pb.CheckMessageRequest(
            session=pb.Session(client_ip=client_ip, queue_id="PROBE"), size=100, from_domain=from_domain
        )
        response: pb.CheckMessageResponse = self._stub.CheckMessage(request, timeout=10)
        return [(key.domain, key.selector, key.private_key) for key in response.dkim]

    def close(self) -> None:
        self._channel.close()
