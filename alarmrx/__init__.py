"""SIA DC-09 alarm receiver: intrusion and fire panels in, contract-v1 MQTT out."""
