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
from tests.support.mqtt import publisher
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


async def test_a_subscription_the_broker_refuses_is_reported_and_retried_until_granted(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    services: Services,
    postgres: Postgres,
    test_id: str,
) -> None:
    # Anonymous clients may use the agent's own topics and publish readings, but not
    # subscribe to them; they may also change the ACL ($CONTROL), as an operator would.
    allowed = [
        ("subscribePattern", "farm_resilience/#"),
        ("subscribePattern", "homeassistant/#"),
        ("publishClientSend", "farm_resilience/#"),
        ("publishClientSend", "homeassistant/#"),
        ("publishClientSend", f"{test_id}/#"),
        ("publishClientSend", "$CONTROL/dynamic-security/#"),
    ]
    acls = [{"acltype": kind, "topic": topic, "allow": True} for kind, topic in allowed]
    dynamic_security = {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": True,
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": [],
        "groups": [{"groupname": "anonymous", "roles": [{"rolename": "farm"}]}],
        "anonymousGroup": "anonymous",
        "roles": [{"rolename": "farm", "acls": acls}],
    }
    broker = services.mosquitto(plugin=json.dumps(dynamic_security))
    config = make_config(mqtt_port=broker.port, probes={"interval_s": 1})
    agent = start_agent(config, ready=False)
    refused = (
        f"MQTT broker refused the subscription to {test_id}/# (Not authorized):"
        " no reading on it arrives"
    )

    await wait_until(lambda: refused in agent.log(), "the refusal, logged")
    await wait_until(lambda: agent.readiness()["checks"]["mqtt_connected"], "connected")
    readiness = agent.readiness()
    # Home Assistant hears it too: the health report is degraded, naming the filter.
    health = await wait_until(
        lambda: (found := agent.health()) is not None and refused in found["problems"] and found,
        "the refusal in the health report",
    )
    await asyncio.sleep(3)  # three probe rounds, each subscribing again

    assert agent.running, "a refused subscription must not end the agent"
    assert readiness["ready"] is False
    assert readiness["checks"]["mqtt_subscribed"] is False
    assert "MQTT broker has not granted the readings' subscription" in readiness["problems"]
    assert health["status"] == "degraded"
    assert agent.log().count(refused) == 1, "logged once, not at every retry"

    # The operator fixes the ACL on the broker: the next probe round's retry is granted.
    with publisher(broker.port, f"{test_id}-operator") as operator:
        grant = {
            "command": "addRoleACL",
            "rolename": "farm",
            "acltype": "subscribePattern",
            "topic": f"{test_id}/#",
            "allow": True,
        }
        operator.publish("$CONTROL/dynamic-security/v1", json.dumps({"commands": [grant]}))
        await wait_until(lambda: agent.readiness()["ready"], "ready once the ACL allows it")
        operator.publish(f"{test_id}/barn/temperature", "18.5", wait=True)
        messages = await wait_for_messages(postgres.dsn, config["backend"]["queue"], 1)

    assert [message["payload"] for message in messages] == [18.5]
    assert f"subscribed to {test_id}/#" in agent.log()
    assert agent.terminate() == 0


async def test_a_broker_whose_maximum_qos_is_below_the_agents_refuses_it_in_one_clear_error(
    make_config: Callable[..., dict[str, Any]],
    start_agent: Callable[..., AgentProcess],
    services: Services,
) -> None:
    # Mosquitto's max_qos 0 refuses the agent's QoS 1 last will at CONNECT (MQTT 5), so
    # it never gets as far as granting the readings a lower QoS (test_mqtt_link.py has that).
    broker = services.mosquitto(options="max_qos 0\n")
    agent = start_agent(make_config(mqtt_port=broker.port), ready=False)

    await wait_until(lambda: "QoS not supported" in agent.log(), "the refusal, logged")
    await asyncio.sleep(3)  # a few reconnect attempts

    assert agent.running
    refusals = [line for line in agent.log().splitlines() if "refused the connection" in line]
    assert len(refusals) == 1
    assert "broker refused the connection: QoS not supported" in refusals[0]
    assert agent.readiness()["checks"]["mqtt_connected"] is False
    assert agent.terminate() == 0
