"""Client side of the COVID-19 QA Flow: a gRPC CLI (``python -m client``) and :mod:`client.flowctl` to run a Flow."""
