"""cable-ingest: parse diplomatic cables into validated records and fan them out to sinks."""

__version__ = "0.1.0"
