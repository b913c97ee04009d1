"""The link's reading of a SUBACK, with answers a real Mosquitto does not give (pure logic).

Mosquitto refuses a subscription only through its dynamic security plugin, and refuses
the agent's QoS 1 last will (at CONNECT) before it could lower a subscription's QoS;
test_security.py has both on a real broker. Other brokers lower the QoS in the SUBACK.
"""

from __future__ import annotations

import asyncio

from farm_agent.config_file import parse_config
from farm_agent.mqtt.link import MqttLink

GRANTED_0 = (False, 0, "Granted QoS 0")
GRANTED_1 = (False, 1, "Granted QoS 1")
NOT_AUTHORIZED = (True, 135, "Not authorized")


def link_with_readings(*filters: str) -> MqttLink:
    config = parse_config(
        {
            "agent_id": "farm",
            "mqtt": {"topics": list(filters), "qos": 1},
            "backend": {"direct_dsn": "postgresql://localhost/"},
        }
    )
    link = MqttLink(config.mqtt, asyncio.get_running_loop())
    link.subscribe_readings(config.mqtt.topics, config.mqtt.qos, lambda *_: None)
    return link


def answer(link: MqttLink, *granted: tuple[bool, int, str]) -> None:
    """As if the readings' subscription went out as packet 7 and its SUBACK came back."""
    link._awaiting_suback[7] = link._subscriptions[-1]
    link._subscribed(7, list(granted))


async def test_a_lower_qos_than_mqtt_qos_is_a_problem_and_not_subscribed() -> None:
    link = link_with_readings("farm/#", "barn/+")

    answer(link, GRANTED_1, GRANTED_0)

    assert link.readings_subscribed is False
    assert link.readings_problems == (
        "MQTT broker granted QoS 0 for barn/+ where mqtt.qos is 1: readings on it can be lost",
    )


async def test_a_partial_refusal_names_only_the_refused_filter_until_a_retry_is_granted() -> None:
    link = link_with_readings("farm/#", "barn/+")

    answer(link, NOT_AUTHORIZED, GRANTED_1)
    refused = link.readings_problems
    answer(link, GRANTED_1, GRANTED_1)

    assert refused == (
        "MQTT broker refused the subscription to farm/# (Not authorized): no reading on it arrives",
    )
    assert link.readings_subscribed is True
    assert link.readings_problems == ()


async def test_an_answer_from_a_previous_connection_is_ignored() -> None:
    link = link_with_readings("farm/#")

    link._subscribed(99, [NOT_AUTHORIZED])

    assert link.readings_subscribed is False
    assert link.readings_problems == ()
