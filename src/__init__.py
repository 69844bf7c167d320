"""kappalake: a Kappa-architecture streaming lakehouse on Kafka, Spark Structured Streaming and Delta Lake."""

__version__ = "0.1.0"
