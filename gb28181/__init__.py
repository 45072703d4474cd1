"""GB/T 28181 access gateway: SIP signalling and MANSCDP bodies in, contract-v1 MQTT out."""
