"""The one runner that composes source -> transforms -> sink from ``conf/`` pipelines."""
