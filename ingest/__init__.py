"""MQTT in: topic contract, payload schemas, the ingest worker, presence, alarms, dead letters."""
