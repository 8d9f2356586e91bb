"""The workload simulator behind ``opsmind demo`` and many tests."""
