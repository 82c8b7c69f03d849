"""The e-mail rule is the OpenAPI pattern's, applied to the address as typed; the stored form
is its normalised key (tests/postgres/students/test_constraints.py holds that to the database)."""

from __future__ import annotations

import pytest

from class_management_service.students.schemas import email_key, normalize_email


@pytest.mark.parametrize(
    "typed",
    [
        "anna@example.se",
        "  Anna@Example.SE \n",
        # NFKC turns U+00A8 into a space and a combining mark: still the address that was typed.
        "m\u00a8@x.se",
        "a\u0140@x.se",
        # Fullwidth and small forms of "@" and "." are the same address once normalised.
        "jos\u00e9\uff20x\uff0ese",
        "jos\u00e9\ufe6bx\ufe52se",
    ],
)
def test_an_address_the_schema_allows_is_accepted_and_stored_as_its_key(typed: str) -> None:
    assert normalize_email(typed) == email_key(typed)


@pytest.mark.parametrize("typed", ["anna", "anna@", "a b@x.se", "a@b@x.se", "@x.se", "a@xse"])
def test_an_address_the_schema_refuses_is_refused(typed: str) -> None:
    with pytest.raises(ValueError, match="not an e-mail address"):
        normalize_email(typed)
