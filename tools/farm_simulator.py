"""A small simulated farm: sensors publishing readings over MQTT, as real field devices do."""

from __future__ import annotations

import json
import math
import random
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

SENSOR_KINDS = (
    ("soil/moisture", "%", 35.0, 8.0),
    ("air/temperature", "°C", 21.0, 4.0),
    ("air/humidity", "%", 60.0, 10.0),
    ("water/flow", "l/min", 12.0, 3.0),
)


@dataclass(frozen=True, slots=True)
class Sensor:
    topic: str
    unit: str
    mean: float
    swing: float
    bare: bool

    def reading(self, now: float, rng: random.Random) -> str:
        value = self.mean + self.swing * math.sin(now / 60) + rng.gauss(0, self.swing / 10)
        if self.bare:
            return f"{value:.2f}"
        return json.dumps({"value": round(value, 2), "unit": self.unit})


def farm_sensors(count: int, site: str = "farm") -> list[Sensor]:
    """`count` sensors over a few fields; some publish JSON, some a bare number."""
    sensors = []
    for index in range(count):
        kind, unit, mean, swing = SENSOR_KINDS[index % len(SENSOR_KINDS)]
        field = f"field{index // len(SENSOR_KINDS) + 1}"
        sensors.append(Sensor(f"{site}/{field}/{kind}", unit, mean, swing, bare=index % 3 == 0))
    return sensors


class FarmSimulator:
    """Publishes one reading per sensor every `period_s` on a thread of its own."""

    def __init__(self, host: str, port: int, sensors: list[Sensor], period_s: float = 1.0) -> None:
        self.sensors = sensors
        self.period_s = period_s
        self.published = 0
        self._rng = random.Random(42)
        self._stop = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id="farm-simulator")
        self._client.connect(host, port)
        self._client.loop_start()
        self._thread = threading.Thread(target=self._run, name="farm-simulator", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        next_round = time.monotonic()
        while not self._stop.is_set():
            now = time.time()
            for sensor in self.sensors:
                self._client.publish(sensor.topic, sensor.reading(now, self._rng), qos=1)
                self.published += 1
            next_round += self.period_s
            self._stop.wait(max(0.0, next_round - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._client.disconnect()
        self._client.loop_stop()
