"""Federation: county hubs feeding a city hub (logical replication for data, a broker bridge for events)."""
