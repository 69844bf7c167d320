"""Getting events in: the local Kafka broker, topics, client settings, Spark's Kafka source, producers."""
