"""Students: the people whose essays are matched, owned by the teacher who created them."""
