"""The MQTT wire contract v1 (docs/mqtt.md): topics, payload models and broker ACL patterns.

One place for what devices, gateways and hub services say to each other through the broker:
`topics` (names, filters, parsing), `payloads` (device messages), `analytics` (vision results)
and `acl` (what each broker role may publish and read). It sits in the device-facts layer so that
ingest, vision, the fleet, the API, the gateways and the broker provisioning all read it.
"""
