"""`grep <queue id>` over the services' logs tells a message's story, as Postfix's logs do."""

import json

from support.processes import Process

from observability.conftest import Run


def lines_of(process: Process, queue_id: str) -> list[dict[str, object]]:
    """The JSON log lines (not on a terminal: one object a line) that carry `queue_id`."""
    lines = [json.loads(line) for line in process.log().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("queue_id") == queue_id]


def test_the_queue_id_is_in_the_ingress_policy_and_delivery_lines_of_its_message(run: Run) -> None:
    # The later messages came from the same host with the same domains: the
    # ingress reused the first one's sender and recipient verdicts.
    for queue_id, stages in (
        (run.first, {"sender", "recipient", "message"}),
        (run.later, {"message"}),
        (run.bounced, {"message"}),
    ):
        assert [line["msg"] for line in lines_of(run.ingress.process, queue_id)][-1] == "queued"
        assert {str(line["stage"]) for line in lines_of(run.policy.process, queue_id)} == stages
        assert "delivery attempt" in [line["msg"] for line in lines_of(run.delivery.process, queue_id)]


def test_one_line_per_decision_and_per_attempt(run: Run) -> None:
    policy = [(line["stage"], line["rule"]) for line in lines_of(run.policy.process, run.first)]
    assert policy == [
        ("sender", "sender"),
        ("recipient", "recipient"),
        ("recipient", "recipient-domain"),
        ("message", "message"),
    ]
    (refused,) = [line for line in lines_of(run.ingress.process, run.first) if line["msg"] == "refused"]
    assert refused["stage"] == "recipient"
    assert str(refused["reply"]).startswith("556 5.1.10 ")

    delivery = [line for line in lines_of(run.delivery.process, run.later) if line["msg"] == "delivery attempt"]
    assert [(line["attempt"], line["result"], line["to"]) for line in delivery] == [
        (1, "deferred", "later@example.test"),
        (2, "delivered", "later@example.test"),
    ]
    assert str(delivery[0]["reply"]).startswith("451 4.3.0")
    assert delivery[1]["remote"] == "mx.example.test [127.0.0.2]"


def test_the_dsn_names_the_message_it_reports_on(run: Run) -> None:
    (dsn,) = [line for line in lines_of(run.delivery.process, run.bounced) if line["msg"] == "DSN queued"]
    dsn_lines = lines_of(run.delivery.process, str(dsn["dsn_queue_id"]))
    assert [(line["msg"], line.get("result")) for line in dsn_lines] == [
        ("delivery attempt", "delivered"),
        ("message settled", None),
    ]
