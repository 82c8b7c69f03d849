"""HTTP plumbing shared by every feature: middleware and request dependencies."""
