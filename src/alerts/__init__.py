"""Alert delivery: the Kafka ``alerts`` topic, notifiers (webhooks, logs, your own class) and their records."""
