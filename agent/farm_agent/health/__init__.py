"""Health: probe the backend, judge what the probes and the relay say, publish the verdict.

`probes` look (one module per kind, `runner` runs a round), `judging` turns a round
and the relay's snapshot into a `Health` report, `publishing` sends it over MQTT with
the agent's status and `discovery`, `once` runs it all a single time (`farm-agent check`).
`cache_targets` judges the HTTP endpoints' latency and cache targets; `loadtest` puts
many clients on each database route (`farm-agent loadtest`).
The relay is read only through `farm_agent.relay` (`RelaySnapshot`, its listeners).
"""
