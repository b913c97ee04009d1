"""A paho client set up from the config: MQTT 5, the broker's auth and TLS, reconnect backoff."""

from __future__ import annotations

import ssl
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from farm_agent.config import MqttConfig


def new_client(
    config: MqttConfig,
    client_id: str,
    *,
    reconnect_max_s: int,
    client_class: type[paho.Client] = paho.Client,
    **options: Any,
) -> paho.Client:
    """A client of `client_class` for the configured broker, not connected yet."""
    client = client_class(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=MQTTProtocolVersion.MQTTv5,
        **options,
    )
    client.reconnect_delay_set(1, reconnect_max_s)
    if config.username is not None:
        client.username_pw_set(config.username, config.password)
    if config.tls is not None:
        client.tls_set(
            ca_certs=config.tls.ca_file,
            certfile=config.tls.cert_file,
            keyfile=config.tls.key_file,
            cert_reqs=ssl.CERT_REQUIRED,
        )
    return client
