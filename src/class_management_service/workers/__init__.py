"""Background workers that run inside the service process, under one supervisor."""
