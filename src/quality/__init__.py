"""Data quality: expectation suites, valid/quarantine split and quality metrics (issue 6)."""
