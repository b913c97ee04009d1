"""Simulated farm actuators (pumps and valves) on MQTT, announced to Home Assistant.

Each device answers a command after 0.2-2 s, like a relay behind a slow radio link,
and ignores a few percent of commands, as real field devices do: that is what the
integration is there to measure. Sensors of `tools.farm_simulator` are announced
here too, so Home Assistant shows them and the hub can watch them for staleness.
"""

from __future__ import annotations

import heapq
import itertools
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tools.farm_simulator import Sensor

DISCOVERY_PREFIX = "homeassistant"
AVAILABILITY_TOPIC = "farm/actuators/status"
# Home Assistant's MQTT valve and switch defaults, written out so both sides read the same.
COMMAND_TO_STATE = {
    "switch": {"ON": "ON", "OFF": "OFF"},
    "valve": {"OPEN": "open", "CLOSE": "closed"},
}
MOVING = {"open": "opening", "closed": "closing"}
SENSOR_DEVICE_CLASSES = {
    "soil/moisture": "moisture",
    "air/temperature": "temperature",
    "air/humidity": "humidity",
}


@dataclass(frozen=True, slots=True)
class Actuator:
    """A pump (an MQTT switch) or a valve; its entity id is `<kind>.<object_id>`."""

    kind: str
    object_id: str
    name: str
    area: str

    @property
    def entity_id(self) -> str:
        return f"{self.kind}.{self.object_id}"

    @property
    def state_topic(self) -> str:
        return f"farm/actuators/{self.object_id}/state"

    @property
    def command_topic(self) -> str:
        return f"farm/actuators/{self.object_id}/set"

    @property
    def initial_state(self) -> str:
        return "OFF" if self.kind == "switch" else "closed"

    def discovery(self) -> tuple[str, dict[str, object]]:
        """Home Assistant MQTT discovery topic and config of this actuator."""
        config: dict[str, object] = {
            "name": None,  # the entity is the device itself: "Well pump"
            "object_id": self.object_id,
            "unique_id": f"farm_demo_{self.object_id}",
            "command_topic": self.command_topic,
            "state_topic": self.state_topic,
            "availability_topic": AVAILABILITY_TOPIC,
            "qos": 1,
            "device": _device(self.object_id, self.name, self.area),
        }
        if self.kind == "valve":
            config.update({"device_class": "water", "payload_stop": None})
        else:
            config["icon"] = "mdi:pump" if "pump" in self.object_id else "mdi:fan"
        return f"{DISCOVERY_PREFIX}/{self.kind}/{self.object_id}/config", config


FARM_ACTUATORS = (
    Actuator("switch", "well_pump", "Well pump", "Pump house"),
    Actuator("switch", "field_1_pump", "Field 1 pump", "Field 1"),
    Actuator("switch", "field_2_pump", "Field 2 pump", "Field 2"),
    Actuator("switch", "greenhouse_fan", "Greenhouse fan", "Greenhouse"),
    Actuator("valve", "field_1_valve", "Field 1 valve", "Field 1"),
    Actuator("valve", "field_2_valve", "Field 2 valve", "Field 2"),
    Actuator("valve", "field_3_valve", "Field 3 valve", "Field 3"),
    Actuator("valve", "main_valve", "Main irrigation valve", "Pump house"),
)


def _device(identifier: str, name: str, area: str) -> dict[str, object]:
    return {
        "identifiers": [f"farm_demo_{identifier}"],
        "name": name,
        "manufacturer": "Farm Resilience demo",
        "model": "simulated",
        "suggested_area": area,
    }


def sensor_object_id(sensor: Sensor) -> str:
    """`farm/field1/soil/moisture` -> `field1_soil_moisture`."""
    return "_".join(sensor.topic.split("/")[1:])


def sensor_discovery(sensor: Sensor) -> tuple[str, dict[str, object]]:
    """Home Assistant MQTT discovery topic and config of one simulated sensor."""
    _, field, *what = sensor.topic.split("/")
    object_id = sensor_object_id(sensor)
    station = field.replace("field", "Field ")
    config: dict[str, object] = {
        "name": " ".join(what).capitalize(),
        "object_id": object_id,
        "unique_id": f"farm_demo_{object_id}",
        "state_topic": sensor.topic,
        "unit_of_measurement": sensor.unit,
        "state_class": "measurement",
        "suggested_display_precision": 1,
        "device": _device(f"{field}_station", f"{station} station", station),
    }
    if not sensor.bare:
        config["value_template"] = "{{ value_json.value }}"
    kind = "/".join(what)
    if kind in SENSOR_DEVICE_CLASSES:
        config["device_class"] = SENSOR_DEVICE_CLASSES[kind]
    else:
        config["icon"] = "mdi:waves-arrow-right"
    return f"{DISCOVERY_PREFIX}/sensor/{object_id}/config", config


class FarmDevices:
    """The actuators: answer commands late or not at all, on a thread of their own."""

    def __init__(
        self,
        host: str,
        port: int,
        actuators: tuple[Actuator, ...] = FARM_ACTUATORS,
        sensors: list[Sensor] | None = None,
        *,
        ignore_ratio: float = 0.03,
        delay_s: tuple[float, float] = (0.2, 2.0),
        seed: int | None = None,
    ) -> None:
        self.actuators = {a.command_topic: a for a in actuators}
        self.sensors = sensors or []
        self.ignore_ratio = ignore_ratio
        self.delay_s = delay_s
        self.commands = 0
        self.ignored = 0
        self._rng = random.Random(seed)
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopping = False
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id="farm-devices")
        self._client.will_set(AVAILABILITY_TOPIC, "offline", qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._thread = threading.Thread(target=self._run, name="farm-devices", daemon=True)

    def start(self) -> None:
        self._client.loop_start()
        self._thread.start()

    def _on_connect(self, client: paho.Client, *_: object) -> None:
        # Discovery configs and states are retained: Home Assistant finds them whenever it comes.
        for sensor in self.sensors:
            topic, config = sensor_discovery(sensor)
            client.publish(topic, json.dumps(config), qos=1, retain=True)
        for actuator in self.actuators.values():
            topic, config = actuator.discovery()
            client.publish(topic, json.dumps(config), qos=1, retain=True)
            client.publish(actuator.state_topic, actuator.initial_state, qos=1, retain=True)
            client.subscribe(actuator.command_topic, qos=1)
        client.publish(AVAILABILITY_TOPIC, "online", qos=1, retain=True)

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        actuator = self.actuators.get(message.topic)
        target = COMMAND_TO_STATE[actuator.kind].get(message.payload.decode()) if actuator else None
        if actuator is None or target is None:
            return
        self.commands += 1
        if self._rng.random() < self.ignore_ratio:
            self.ignored += 1
            return
        delay = self._rng.uniform(*self.delay_s)
        if actuator.kind == "valve":
            # A motorised valve reports that it moves, then where it ended up.
            self._after(min(0.1, delay / 2), self._publisher(actuator, MOVING[target]))
        self._after(delay, self._publisher(actuator, target))

    def _publisher(self, actuator: Actuator, state: str) -> Callable[[], None]:
        def publish() -> None:
            self._client.publish(actuator.state_topic, state, qos=1, retain=True)

        return publish

    def _after(self, delay_s: float, action: Callable[[], None]) -> None:
        with self._wake:
            heapq.heappush(self._due, (time.monotonic() + delay_s, next(self._order), action))
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopping and (not self._due or self._due[0][0] > time.monotonic()):
                    self._wake.wait(self._due[0][0] - time.monotonic() if self._due else None)
                if self._stopping:
                    return
                _, _, action = heapq.heappop(self._due)
            action()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(5)
        self._client.publish(AVAILABILITY_TOPIC, "offline", qos=1, retain=True).wait_for_publish(2)
        self._client.disconnect()
        self._client.loop_stop()
