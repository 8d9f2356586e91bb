"""Benchmark harnesses and their scorers. Each ``opsmind bench NAME`` lives in a module here."""
