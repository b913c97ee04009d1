"""A broker with TLS and passwords: the agent connects with a CA file and its credentials."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.agent import TEST_SECRET, AgentProcess
from tests.support.queues import wait_for_messages
from tests.support.waiting import wait_until
from tools.services import BrokerSecurity, Mosquitto, Postgres, Services, make_certificates

USERNAME = "farm-agent"


@pytest.fixture(scope="module")
def secure_broker(services: Services) -> Iterator[tuple[Mosquitto, Path]]:
    # Inside the services' folder: Mosquitto's own user must be able to reach the files.
    folder = services.root / "broker-tls"
    folder.mkdir()
    ca_file, cert_file, key_file = make_certificates(folder)
    passwords = folder / "broker-passwords"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwords), USERNAME, TEST_SECRET], check=True
    )
    passwords.chmod(0o644)
    broker = services.mosquitto(BrokerSecurity(ca_file, cert_file, key_file, passwords))
    yield broker, ca_file
    broker.stop()


def tls_config(
    make_config: Callable[..., dict[str, Any]], broker: Mosquitto, ca_file: Path, **mqtt: Any
) -> dict[str, Any]:
    return make_config(
        mqtt_port=broker.port,
        mqtt={"tls": {"ca_file": str(ca_file)}, "username": USERNAME, **mqtt},
    )


def publish_over_tls(broker: Mosquitto, ca_file: Path, topic: str, payloads: list[str]) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{topic}-device")
    client.tls_set(ca_certs=str(ca_file))
    client.username_pw_set(USERNAME, TEST_SECRET)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        for info in [client.publish(topic, payload, qos=1) for payload in payloads]:
            info.wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.parametrize("password_from", ["password_file", "environment"])
async def test_agent_relays_over_tls_with_a_password_from_a_file_or_the_environment(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    secure_broker: tuple[Mosquitto, Path],
    postgres: Postgres,
    tmp_path: Path,
    test_id: str,
    password_from: str,
) -> None:
    broker, ca_file = secure_broker
    if password_from == "password_file":
        (tmp_path / "mqtt-password").write_text(TEST_SECRET + "\n")
        config = tls_config(make_config, broker, ca_file, password_file="mqtt-password")
        agent = start_agent(config)
    else:
        config = tls_config(make_config, broker, ca_file, password="${FARM_TEST_MQTT_PASSWORD}")
        agent = start_agent(config, env={"FARM_TEST_MQTT_PASSWORD": TEST_SECRET})
    topic = f"{test_id}/greenhouse/air/temperature"

    publish_over_tls(broker, ca_file, topic, ["19.5", "19.7", "19.9"])
    messages = await wait_for_messages(postgres.dsn, config["backend"]["queue"], 3)

    assert [m["payload"] for m in messages] == [19.5, 19.7, 19.9]
    assert agent.terminate() == 0


async def test_wrong_password_is_one_clear_error_and_calm_retries_not_a_crash_loop(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    secure_broker: tuple[Mosquitto, Path],
) -> None:
    broker, ca_file = secure_broker
    config = tls_config(make_config, broker, ca_file, password=TEST_SECRET + "-wrong")

    agent = start_agent(config, ready=False)
    await asyncio.sleep(8)

    assert agent.running, "a refused login must not end the agent"
    log = agent.log()
    refusals = [line for line in log.splitlines() if "refused the connection" in line]
    assert len(refusals) == 1, "one error per distinct problem, not one per retry"
    assert "Not authorized" in refusals[0] or "Bad user name or password" in refusals[0]
    assert f"{broker.port}" in refusals[0]
    assert len(log.splitlines()) < 15, "no log flood"
    assert agent.terminate() == 0


async def test_server_certificate_from_an_unknown_ca_is_refused(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    secure_broker: tuple[Mosquitto, Path],
    tmp_path: Path,
) -> None:
    broker, _ = secure_broker
    other_ca, _, _ = make_certificates(tmp_path)
    config = tls_config(make_config, broker, other_ca, password=TEST_SECRET)

    agent = start_agent(config, ready=False)
    await wait_until(lambda: "retrying every" in agent.log(), "the broker refused, in the log")
    await asyncio.sleep(2)  # a few reconnect attempts, none of which may succeed

    assert agent.running
    assert "connected" not in agent.log().replace("not connected", "")
    assert agent.terminate() == 0


async def test_a_broker_acl_refusing_the_readings_subscription_is_an_error_and_not_ready(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    services: Services,
    test_id: str,
) -> None:
    # Anonymous clients may use the agent's own topics, not the readings'.
    own_topics = [
        {"acltype": kind, "topic": topic, "allow": True}
        for kind in ("subscribePattern", "publishClientSend")
        for topic in ("farm_resilience/#", "homeassistant/#")
    ]
    dynamic_security = {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": True,
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": [],
        "groups": [{"groupname": "anonymous", "roles": [{"rolename": "own-topics"}]}],
        "anonymousGroup": "anonymous",
        "roles": [{"rolename": "own-topics", "acls": own_topics}],
    }
    broker = services.mosquitto(plugin=json.dumps(dynamic_security))
    agent = start_agent(make_config(mqtt_port=broker.port, probes={"interval_s": 1}), ready=False)

    await wait_until(lambda: "refused the subscription" in agent.log(), "the refusal, logged")
    await wait_until(lambda: agent.readiness()["checks"]["mqtt_connected"], "connected")
    readiness = agent.readiness()

    assert agent.running, "a refused subscription must not end the agent"
    refusals = [line for line in agent.log().splitlines() if "refused the subscription" in line]
    assert len(refusals) == 1
    assert f"refused the subscription to {test_id}/#" in refusals[0]
    assert "Not authorized" in refusals[0]
    assert readiness["ready"] is False
    assert readiness["checks"]["mqtt_subscribed"] is False
    assert "MQTT broker has not accepted the readings' subscription" in readiness["problems"]

    # Home Assistant hears it too: the health report is degraded, naming the filter.
    def refusal_reported() -> dict[str, Any] | None:
        health = agent.health()
        said = health is not None and any("refused" in p for p in health["problems"])
        return health if said else None

    health = await wait_until(refusal_reported, "the refusal in the health report")
    assert health["status"] == "degraded"
    assert (
        f"MQTT broker refused the subscription to {test_id}/#: no reading on it arrives"
        in health["problems"]
    )
    assert agent.terminate() == 0
