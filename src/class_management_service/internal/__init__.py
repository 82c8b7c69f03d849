"""Internal routes for platform services (X-Internal-API-Key)."""
