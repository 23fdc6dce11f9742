"""Jina Executors of the COVID-19 QA Flow: one module each, thin wrappers over :mod:`covidqa`."""
