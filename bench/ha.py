"""Home Assistant overhead, measured in a real HA core in this process (`python -m bench.ha`).

- `overhead`: state writes across tracked entities, with the integration following
  them and, alternated in the same process, with a no-op
  `async_track_state_change_event` callback on the same entities (HA's own dispatch,
  the floor for any integration that follows entities) and with no follower at all.
  Then commands (service calls that the simulated device answers at once) with the
  integration tracking them and with the no-op follower: the difference is the cost
  of tracking one command.
- `memory`: the hub tracking many entities with many outcomes in its window: the
  process's RSS before the hub is set up and after.
- `stale`: the hub monitoring many sensors that have all gone stale, then every one
  of them reporting once (a gateway coming back), alternated with the same writes
  and no hub: the difference is what a stale sensor's report costs the hub.

Talks to the parent in JSON lines on stdout: {"progress": …, "total": …} and, at the
end, {"result": {…}}. HA logs warnings and errors to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from homeassistant.core import Event, HomeAssistant, ServiceCall, callback
from homeassistant.helpers.event import async_track_state_change_event

from bench.cpu import TICKS, machine_ticks
from bench.ha_core import (
    config_entry,
    run_in_home_assistant_loop,
    start_home_assistant,
    stop_home_assistant,
)
from bench.procinfo import peak_rss_bytes, reset_peak_rss, rss_bytes
from custom_components.farm_resilience.const import (
    DEFAULT_OPTIONS,
    DOMAIN,
    HUB_NAME,
    OUTCOME_SUCCESS,
    OUTCOME_TIMEOUT,
    OUTCOME_UNAVAILABLE,
)

# Writes between two yields to the event loop: devices report in bursts, HA runs
# what they trigger in between.
WRITES_PER_YIELD = 100
COMMAND_TIMEOUT_S = 5.0
ORDERS = (
    ("integration", "noop", "none"),
    ("noop", "none", "integration"),
    ("none", "integration", "noop"),
    ("noop", "integration", "none"),
    ("integration", "none", "noop"),
    ("none", "noop", "integration"),
)


def emit(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


def entity_ids(count: int) -> list[str]:
    return [f"switch.bench_{number:05d}" for number in range(count)]


class Stopwatch:
    """Wall time, CPU time of the event loop's thread, and the CPU other processes took.

    On a shared machine the loop thread's CPU time is the robust figure: it is what
    the work costs whatever else runs. Wall time is what HA lived through.
    """

    def __init__(self) -> None:
        gc.collect()
        self._wall = time.perf_counter()
        self._thread = time.thread_time()
        self._process = time.process_time()
        self._machine = machine_ticks()[0]

    def stop(self) -> dict[str, float]:
        busy_s = (machine_ticks()[0] - self._machine) / TICKS
        process_s = time.process_time() - self._process
        return {
            "wall": time.perf_counter() - self._wall,
            "cpu": time.thread_time() - self._thread,
            "others": max(0.0, busy_s - process_s),
        }


@callback
def _noop(event: Event[Any]) -> None:
    """A follower that does nothing: what remains is HA's cost of dispatching to it."""


class Bench:
    """One HA core with `count` switches that answer turn_on/turn_off at once."""

    def __init__(self, hass: HomeAssistant, count: int) -> None:
        self.hass = hass
        self.ids = entity_ids(count)
        self.entry = config_entry(
            DOMAIN,
            HUB_NAME,
            {**DEFAULT_OPTIONS, "tracked_entities": self.ids, "command_timeout": 5.0},
        )
        self._added = False
        for entity_id in self.ids:
            hass.states.async_set(entity_id, "off")
        for service, state in (("turn_on", "on"), ("turn_off", "off")):
            hass.services.async_register("switch", service, self._device(state))

    def _device(self, state: str) -> Callable[[ServiceCall], None]:
        @callback
        def apply(call: ServiceCall) -> None:
            for entity_id in call.data["entity_id"]:
                self.hass.states.async_set(entity_id, state)

        return apply

    async def follow_with_integration(self) -> Callable[[], Any]:
        """Set up the hub tracking the entities; returns how to unload it."""
        if not self._added:
            self._added = True
            await self.hass.config_entries.async_add(self.entry)
        else:
            await self.hass.config_entries.async_setup(self.entry.entry_id)
        await self.hass.async_block_till_done()
        return lambda: self.hass.config_entries.async_unload(self.entry.entry_id)

    def hub_commands(self) -> int:
        figures = self.entry.runtime_data.statistics.figures(time.time())
        return int(figures.counts[OUTCOME_SUCCESS])

    async def write_states(self, writes: int, flip: int) -> dict[str, float]:
        """`writes` state changes round-robin over the entities; time until all dispatched."""
        hass, ids = self.hass, self.ids
        width = len(ids)
        set_state = hass.states.async_set
        watch = Stopwatch()
        for index in range(writes):
            # Every write changes the state, so every write is a state_changed event.
            state = "on" if (index // width + flip) % 2 == 0 else "off"
            set_state(ids[index % width], state)
            if index % WRITES_PER_YIELD == WRITES_PER_YIELD - 1:
                await asyncio.sleep(0)
        await hass.async_block_till_done()
        return watch.stop()

    async def send_commands(self, commands: int) -> dict[str, float]:
        """`commands` turn_on/turn_off calls, each answered by its device; time taken."""
        hass, ids = self.hass, self.ids
        watch = Stopwatch()
        for index in range(commands):
            entity_id = ids[index % len(ids)]
            service = "turn_off" if hass.states.is_state(entity_id, "on") else "turn_on"
            await hass.services.async_call(
                "switch", service, {"entity_id": [entity_id]}, blocking=True
            )
            # Let HA dispatch the state change, as it would before the next command.
            await asyncio.sleep(0)
        await hass.async_block_till_done()
        return watch.stop()


async def overhead(args: argparse.Namespace, config_dir: Path) -> dict[str, Any]:
    hass = await start_home_assistant(config_dir)
    try:
        bench = Bench(hass, args.entities)
        await hass.async_block_till_done()
        total = args.runs * (3 * args.writes + 2 * args.commands)
        done = 0
        writes: dict[str, list[dict[str, float]]] = {"integration": [], "noop": [], "none": []}
        commands: dict[str, list[dict[str, float]]] = {"integration": [], "noop": []}
        counted: list[int] = []
        # Warm-up: imports, caches and the first set-up are not part of any run.
        unload = await bench.follow_with_integration()
        await bench.write_states(min(args.writes, 5000), 0)
        await unload()
        for run in range(args.runs):
            # Rotate the order run by run, so a drift in machine speed hits every side.
            order = ORDERS[run % len(ORDERS)]
            for mode in order:
                unfollow = await _follow(bench, mode)
                writes[mode].append(await bench.write_states(args.writes, run % 2))
                done += args.writes
                emit({"progress": done, "total": total})
                if mode != "none":
                    before = bench.hub_commands() if mode == "integration" else 0
                    commands[mode].append(await bench.send_commands(args.commands))
                    if mode == "integration":
                        counted.append(bench.hub_commands() - before)
                    done += args.commands
                    emit({"progress": done, "total": total})
                await unfollow()
        return {
            "entities": args.entities,
            "writes": args.writes,
            "commands": args.commands,
            "write": writes,
            "command": commands,
            "commands_counted": counted,
        }
    finally:
        await stop_home_assistant(hass)


async def _follow(bench: Bench, mode: str) -> Callable[[], Any]:
    if mode == "integration":
        return await bench.follow_with_integration()
    if mode == "noop":
        unsubscribe = async_track_state_change_event(bench.hass, bench.ids, _noop)

        async def unfollow() -> None:
            unsubscribe()

        return unfollow

    async def nothing() -> None:
        return None

    return nothing


async def memory(args: argparse.Namespace, config_dir: Path) -> dict[str, Any]:
    """RSS of the hub tracking `entities` entities with `outcomes` outcomes in its window."""
    hass = await start_home_assistant(config_dir)
    try:
        bench = Bench(hass, args.entities)
        await hass.async_block_till_done()
        gc.collect()
        before = rss_bytes()
        await bench.follow_with_integration()
        hub = bench.entry.runtime_data
        window_s = hub.statistics.window_s
        now = time.time()
        rng = random.Random(20251126)
        ids = bench.ids
        record = hub.statistics.record
        # Outcomes as a day of a busy farm leaves them: spread over the whole window in
        # time order, over every entity, 98 % successes with latencies of 0.2-3 s.
        for index in range(args.outcomes):
            at = now - window_s + window_s * index / args.outcomes
            draw = rng.random()
            if draw < 0.98:
                record(ids[rng.randrange(len(ids))], OUTCOME_SUCCESS, rng.uniform(0.2, 3.0), at)
            elif draw < 0.995:
                record(ids[rng.randrange(len(ids))], OUTCOME_TIMEOUT, None, at)
            else:
                record(ids[rng.randrange(len(ids))], OUTCOME_UNAVAILABLE, None, at)
            if index % 100_000 == 99_999:
                emit({"progress": index + 1, "total": args.outcomes})
        # What the hub does with the window in normal running: refresh the entities.
        hub.async_schedule_update()
        await hass.async_block_till_done()
        figures = hub.statistics.figures(time.time())
        gc.collect()
        after = rss_bytes()
        # Unloading writes the window to storage: the peak of the hub's life.
        reset_peak_rss()
        await hass.config_entries.async_unload(bench.entry.entry_id)
        peak = peak_rss_bytes()
        return {
            "entities": args.entities,
            "outcomes": args.outcomes,
            "counted": figures.commands,
            "rss_before": before,
            "rss_after": after,
            "rss_peak_saving": peak,
        }
    finally:
        await stop_home_assistant(hass)


# The hub's stale_after in the `stale` bench: short, so that the sensors go stale soon.
STALE_AFTER_S = 2.0


def sensor_ids(count: int) -> list[str]:
    return [f"sensor.bench_probe_{number:05d}" for number in range(count)]


async def _report_all(hass: HomeAssistant, sensors: list[str], value: str) -> dict[str, float]:
    """Every sensor reports once (a new value); time until every follower has run.

    One report per loop iteration, as they arrive from a radio gateway or MQTT: HA
    runs the followers of each before the next comes.
    """
    watch = Stopwatch()
    for sensor in sensors:
        hass.states.async_set(sensor, value)
        await asyncio.sleep(0)
    await hass.async_block_till_done()
    return watch.stop()


async def stale(args: argparse.Namespace, config_dir: Path) -> dict[str, Any]:
    """Event-loop CPU of `sensors` stale sensors reporting, with the hub and without."""
    hass = await start_home_assistant(config_dir)
    try:
        sensors = sensor_ids(args.sensors)
        for sensor in sensors:
            hass.states.async_set(sensor, "20.0")
        entry = config_entry(
            DOMAIN,
            HUB_NAME,
            {**DEFAULT_OPTIONS, "monitored_sensors": sensors, "stale_after": STALE_AFTER_S},
        )
        await hass.config_entries.async_add(entry)  # a first set-up, not measured
        await hass.async_block_till_done()
        await hass.config_entries.async_unload(entry.entry_id)
        runs: dict[str, list[dict[str, float]]] = {"integration": [], "none": []}
        came_back: list[int] = []
        for run in range(args.runs):
            value = f"{20 + run}.5"
            for mode in ("integration", "none") if run % 2 == 0 else ("none", "integration"):
                if mode == "integration":
                    await hass.config_entries.async_setup(entry.entry_id)
                    await hass.async_block_till_done()
                    await asyncio.sleep(STALE_AFTER_S + 0.2)  # every sensor goes stale
                    hub = entry.runtime_data
                    stale_before = len(hub.staleness.stale)
                    runs[mode].append(await _report_all(hass, sensors, value))
                    came_back.append(stale_before - len(hub.staleness.stale))
                    await hass.config_entries.async_unload(entry.entry_id)
                else:
                    runs[mode].append(await _report_all(hass, sensors, value + "0"))
            emit({"progress": run + 1, "total": args.runs})
        return {"sensors": args.sensors, "report": runs, "came_back": came_back}
    finally:
        await stop_home_assistant(hass)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ha")
    parser.add_argument("mode", choices=("overhead", "memory", "stale"))
    parser.add_argument("--entities", type=int, default=1000)
    parser.add_argument("--writes", type=int, default=100_000)
    parser.add_argument("--commands", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--outcomes", type=int, default=1_000_000)
    parser.add_argument("--sensors", type=int, default=2000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    job = {"overhead": overhead, "memory": memory, "stale": stale}[args.mode]
    # HA's config folder (storage, registries) goes with the run.
    with tempfile.TemporaryDirectory(prefix="bench-ha-") as config_dir:
        try:
            emit({"result": run_in_home_assistant_loop(lambda: job(args, Path(config_dir)))})
        except (KeyboardInterrupt, BrokenPipeError):
            return 130  # the benchmark was interrupted; HA stopped, the folder goes
    return 0


if __name__ == "__main__":
    sys.exit(main())
