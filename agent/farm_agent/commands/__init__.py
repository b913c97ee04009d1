"""Moved here from farm_agent/; see the next commit."""
