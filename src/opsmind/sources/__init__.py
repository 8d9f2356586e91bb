"""Data sources: files and the Prometheus HTTP API turned into typed frames."""
