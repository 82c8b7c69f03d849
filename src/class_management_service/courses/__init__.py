"""Courses: reference data seeded by migration (ENG5..SV3)."""
