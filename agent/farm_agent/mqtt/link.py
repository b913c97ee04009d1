"""The agent's one MQTT connection: persistent session, reconnect with backoff, TLS and auth.

paho runs its network loop on its own thread; connection events are handed to the
event loop, so listeners run there. Message handlers run on paho's thread, with paho's
calling convention (client, user data, message): the readings' handler is called
thousands of times a second, and nothing stands between paho and it. Ingest, the
health publisher and the MQTT probe share this link, through its methods only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from farm_agent.config import MqttConfig
from farm_agent.mqtt.buffered import BufferedClient
from farm_agent.mqtt.client import new_client

_LOGGER = logging.getLogger(__name__)

Message = paho.MQTTMessage
# paho's calling convention: the client and its user data, then the message.
MessageHandler = Callable[[Any, Any, Message], None]
ConnectListener = Callable[[bool], None]
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 60
CONNECT_TIMEOUT_S = 4.0


class Published(Protocol):
    """A message handed to paho: `is_published()` once the broker has it (QoS 1: acked)."""

    def is_published(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class _Subscription:
    filters: tuple[str, ...]
    qos: int
    # MQTT 5 retain handling 1: retained messages only with a new subscription.
    retained_once: bool


def undecodable_topic(message: Message) -> str:
    """A topic that is not UTF-8 (`message.topic` raised), as text: kept rather than lost."""
    return message._topic.decode("utf-8", "backslashreplace")


class MqttLink:
    """Connects, keeps connecting, subscribes, and tells listeners (on the event loop) it is up."""

    def __init__(
        self,
        config: MqttConfig,
        loop: asyncio.AbstractEventLoop,
        will: tuple[str, bytes] | None = None,
    ) -> None:
        self.config = config
        self._loop = loop
        self.connected = False
        # What the SUBACK of the readings' subscription on this connection refused or
        # downgraded, in words; None until it comes.
        self._readings_answer: tuple[str, ...] | None = None
        # Subscriptions the broker refused or downgraded on this connection, with the
        # problems logged (a retry that meets the same ones logs nothing more).
        self._refused: dict[_Subscription, str] = {}
        # Bumped on paho's thread before any message of the new connection is handled.
        self.connection_id = 0
        self._connect_listeners: list[ConnectListener] = []
        self._disconnect_listeners: list[Callable[[], None]] = []
        self._subscriptions: list[_Subscription] = []
        # Subscriptions sent and not yet answered, by packet id (touched on the event loop).
        self._awaiting_suback: dict[int, _Subscription] = {}
        self._last_problem: str | None = None
        self._stopping = False
        self._client = client = new_client(
            config,
            config.client_id,
            reconnect_max_s=RECONNECT_MAX_S,
            client_class=BufferedClient,
            manual_ack=True,
            reconnect_on_failure=True,
        )
        assert isinstance(client, BufferedClient)
        self._buffered = client
        client.enable_logger(logging.getLogger("farm_agent.paho"))
        client.connect_timeout = CONNECT_TIMEOUT_S
        if will is not None:
            client.will_set(will[0], will[1], qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe

    @property
    def readings_subscribed(self) -> bool:
        """The broker granted every readings' filter on this connection (its SUBACK came)."""
        return self._readings_answer == ()

    @property
    def readings_problems(self) -> tuple[str, ...]:
        """What the broker refused or downgraded of the readings' subscription, in words."""
        return self._readings_answer or ()

    def add_connect_listener(self, listener: ConnectListener) -> None:
        """`listener(session_present)` runs on the event loop after every successful connect."""
        self._connect_listeners.append(listener)

    def add_disconnect_listener(self, listener: Callable[[], None]) -> None:
        self._disconnect_listeners.append(listener)

    # subscriptions -------------------------------------------------------------------

    def subscribe(self, topic_filter: str, handler: MessageHandler, *, qos: int = 0) -> None:
        """Hand messages on `topic_filter` to `handler` (paho's thread), from every connect on.

        Such messages never reach the readings' handler. QoS 0 by default: with manual
        acks, a QoS 1 message here would wait for an ack nobody sends.
        """
        self._client.message_callback_add(topic_filter, handler)
        self._add_subscription(_Subscription((topic_filter,), qos, retained_once=False))

    def subscribe_readings(self, filters: Sequence[str], qos: int, handler: MessageHandler) -> None:
        """Hand every other message to `handler`; subscribe `filters` in one packet at each connect.

        Retained messages come only with a new subscription (MQTT 5 retain handling 1):
        devices publish their state retained, and the session keeps the subscription
        across restarts and reconnects, so each retained reading is relayed once, not
        again at every reconnect. QoS 1 messages wait for `ack` / `ack_all`.
        """
        self._client.on_message = handler
        self._add_subscription(_Subscription(tuple(filters), qos, retained_once=True))

    def stop_readings(self) -> None:
        """No more messages to the readings' handler (those on their way are dropped unacked)."""
        self._client.on_message = None

    def _add_subscription(self, subscription: _Subscription) -> None:
        self._subscriptions.append(subscription)
        if self.connected:
            self._send_subscription(subscription)

    def _send_subscription(self, subscription: _Subscription) -> None:
        options = SubscribeOptions(
            qos=subscription.qos,
            retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB
            if subscription.retained_once
            else SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE,
        )
        result, mid = self._client.subscribe([(topic, options) for topic in subscription.filters])
        if result == paho.MQTT_ERR_SUCCESS and mid is not None:
            self._awaiting_suback[mid] = subscription

    # flow control, called with the caller's own lock held ----------------------------

    def pause_reading(self) -> None:
        """Read no more from this connection: TCP keeps the rest at the broker."""
        self._buffered.pause_reading()

    def resume_reading(self) -> None:
        self._buffered.resume_reading()

    def ack_all(self, mids: Sequence[int]) -> None:
        """PUBACK these QoS 1 messages of the current connection, in one write."""
        self._buffered.ack_all(mids)

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge one message (QoS 0 has nothing to ack)."""
        if qos > 0:
            self._client.ack(mid, qos)

    # connection ----------------------------------------------------------------------

    def start(self) -> None:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        # Without an expiry, MQTT 5 ends the session at disconnect and the broker
        # would drop the readings published while the agent is away.
        properties.SessionExpiryInterval = self.config.session_expiry_s
        properties.ReceiveMaximum = self.config.receive_maximum
        self._client.connect_async(
            self.config.host,
            self.config.port,
            keepalive=self.config.keepalive_s,
            clean_start=False,
            properties=properties,
        )
        self._client.loop_start()

    def publish(
        self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False
    ) -> Published:
        """Queue a message; paho sends it now or after the next reconnect."""
        return self._client.publish(topic, payload, qos=qos, retain=retain)

    async def stop(self, before_disconnect: Callable[[], None] | None = None) -> None:
        """Disconnect cleanly (the session stays on the broker) and stop the network thread."""
        if before_disconnect is not None and self.connected:
            before_disconnect()
        self._stopping = True
        self._client.disconnect()
        await self._loop.run_in_executor(None, self._client.loop_stop)
        self.connected = False

    # paho thread -----------------------------------------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: Any,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self._report_problem(f"broker refused the connection: {reason_code}")
            return
        self.connection_id += 1
        self._loop.call_soon_threadsafe(self._connected, flags.session_present)

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[Any],
        properties: Properties | None,
    ) -> None:
        granted = [(code.is_failure, code.value, str(code)) for code in reason_codes]
        self._loop.call_soon_threadsafe(self._subscribed, mid, granted)

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        self._report_problem("broker unreachable")

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason_code: Any,
        properties: Properties | None,
    ) -> None:
        self._loop.call_soon_threadsafe(self._disconnected, str(reason_code))

    def _report_problem(self, problem: str) -> None:
        # Once per distinct problem, so a broker that stays down does not flood the log.
        if problem != self._last_problem:
            self._last_problem = problem
            _LOGGER.error(
                "MQTT %s:%s: %s; retrying every %s-%s s",
                self.config.host,
                self.config.port,
                problem,
                RECONNECT_MIN_S,
                RECONNECT_MAX_S,
            )

    # event loop ------------------------------------------------------------------

    def _connected(self, session_present: bool) -> None:
        self.connected = True
        self._awaiting_suback.clear()  # the last connection's will never be answered
        self._readings_answer = None
        if self._last_problem is not None:
            _LOGGER.info("MQTT %s:%s: connected again", self.config.host, self.config.port)
        else:
            _LOGGER.info("MQTT %s:%s: connected", self.config.host, self.config.port)
        self._last_problem = None
        for subscription in self._subscriptions:
            self._send_subscription(subscription)
        for listener in self._connect_listeners:
            listener(session_present)

    def _subscribed(self, mid: int, granted: list[tuple[bool, int, str]]) -> None:
        """The broker's answer (SUBACK) to a subscription: a refusal is an error, never silent."""
        subscription = self._awaiting_suback.pop(mid, None)
        if subscription is None:
            return
        problems: list[str] = []
        for topic_filter, (failed, qos, reason) in zip(subscription.filters, granted, strict=False):
            if failed:
                problems.append(
                    f"MQTT broker refused the subscription to {topic_filter} ({reason}):"
                    " no reading on it arrives"
                )
            elif qos < subscription.qos:
                # Unacknowledged delivery: the broker would not redeliver what a crash lost.
                problems.append(
                    f"MQTT broker granted QoS {qos} for {topic_filter} where mqtt.qos is"
                    f" {subscription.qos}: readings on it can be lost"
                )
        where = f"MQTT {self.config.host}:{self.config.port}"
        if problems:
            said = "; ".join(problems)
            if said != self._refused.get(subscription):
                _LOGGER.error("%s: %s; subscribing again at every probe round", where, said)
            self._refused[subscription] = said
        else:
            self._refused.pop(subscription, None)
            if subscription.retained_once:
                _LOGGER.info("%s: subscribed to %s", where, ", ".join(subscription.filters))
        if subscription.retained_once:
            self._readings_answer = tuple(problems)

    def subscribe_refused_again(self) -> None:
        """Send again what the broker refused: an ACL fixed on the broker needs no restart."""
        if self.connected:
            for subscription in self._refused:
                if subscription not in self._awaiting_suback.values():
                    self._send_subscription(subscription)

    def _disconnected(self, reason: str) -> None:
        was_connected = self.connected
        self.connected = False
        self._readings_answer = None
        if was_connected and not self._stopping:
            _LOGGER.warning(
                "MQTT %s:%s: disconnected (%s)", self.config.host, self.config.port, reason
            )
        for listener in self._disconnect_listeners:
            listener()
