"""Classes: a teacher's teaching group, bound to exactly one course."""
