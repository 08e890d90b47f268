"""The webhook gateway (FastAPI): monitoring systems open emergencies over HTTP."""
