"""MQTT, the only package that touches paho: the agent's link, and a publisher awaiting acks."""

from farm_agent.mqtt.confirmed import ConfirmedPublisher
from farm_agent.mqtt.link import Message, MessageHandler, MqttLink, Published, undecodable_topic

__all__ = [
    "ConfirmedPublisher",
    "Message",
    "MessageHandler",
    "MqttLink",
    "Published",
    "undecodable_topic",
]
