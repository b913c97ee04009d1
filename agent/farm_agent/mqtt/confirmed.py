"""A connection of its own for messages that must arrive: QoS 1, each publish waits for its PUBACK.

Connected on first use, with the agent's broker settings (auth, TLS) and a client id
of its own, so it never takes over the relay's persistent session. The task worker's
`send_notification` handler publishes through it.
"""

from __future__ import annotations

import asyncio
import threading

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

from farm_agent.config import MqttConfig
from farm_agent.mqtt.buffered import QuietClient
from farm_agent.mqtt.client import new_client

CONNECT_TIMEOUT_S = 5.0
RECONNECT_MAX_S = 30


class ConfirmedPublisher:
    """Publishes one message at a time and returns only once the broker acknowledged it."""

    def __init__(self, config: MqttConfig, client_id: str) -> None:
        self._config = config
        self._client_id = client_id
        self._client: paho.Client | None = None
        self._connected = threading.Event()
        self._lock = asyncio.Lock()

    async def publish(self, topic: str, payload: bytes, timeout_s: float = 10.0) -> None:
        """Publish with QoS 1 and wait for the PUBACK; raises if the broker does not confirm."""
        client = await self._connected_client()
        info = client.publish(topic, payload, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"MQTT publish to {topic} refused: {paho.error_string(info.rc)}")
        await asyncio.to_thread(info.wait_for_publish, timeout_s)
        if not info.is_published():
            raise TimeoutError(f"no PUBACK from the broker for {topic} within {timeout_s:g} s")

    async def _connected_client(self) -> paho.Client:
        async with self._lock:
            if self._client is None:
                client = self._new_client()
                try:
                    await asyncio.to_thread(client.connect, self._config.host, self._config.port)
                except OSError as err:
                    raise ConnectionError(
                        f"MQTT broker {self._config.host}:{self._config.port} unreachable "
                        f"({err.__class__.__name__})"
                    ) from None
                client.loop_start()
                self._client = client
            connected = await asyncio.to_thread(self._connected.wait, CONNECT_TIMEOUT_S)
            if not connected:
                raise ConnectionError(
                    f"MQTT broker {self._config.host}:{self._config.port} not connected"
                )
            return self._client

    def _new_client(self) -> paho.Client:
        client = new_client(
            self._config, self._client_id, reconnect_max_s=RECONNECT_MAX_S, client_class=QuietClient
        )
        client.on_connect = self._on_connect
        client.on_disconnect = lambda *args: self._connected.clear()
        return client

    def _on_connect(self, client: paho.Client, userdata: object, *args: object) -> None:
        reason = args[1] if len(args) > 1 else None
        if reason is None or not getattr(reason, "is_failure", False):
            self._connected.set()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
