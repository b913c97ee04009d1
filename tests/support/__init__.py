"""Helpers every test folder may use: the agent as a process, devices on MQTT, the queues.

Each folder's fixtures live in its own conftest.py; the ones several folders share
are in tests/conftest.py, built on these modules.
"""
