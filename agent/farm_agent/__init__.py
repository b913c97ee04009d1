"""Farm Resilience edge agent: MQTT readings to a Supabase Queue, losing nothing."""

__version__ = "0.2.0"
