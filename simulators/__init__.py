"""Simulated worlds for the demo, the tests and the benches: regions, fleets, video, demo devices."""
