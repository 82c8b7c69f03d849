"""Two-step decoding of BatchAuthorMatchesSuggestedV1 and poison classification (no servers)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from class_management_service.associations.events import decode_author_match_event, match_reasons
from class_management_service.courses.domain import CourseCode
from class_management_service.messaging import topics
from class_management_service.messaging.batch import PoisonMessage


def platform_event(**data_overrides: Any) -> dict[str, Any]:
    """An envelope shaped exactly like the NLP service publishes it."""
    essay_id = str(uuid.uuid4())
    data: dict[str, Any] = {
        "event_name": "batch.author.matches.suggested",
        "entity_id": None,
        "entity_type": None,
        "parent_id": None,
        "timestamp": "2025-01-01T10:00:00Z",
        "batch_id": str(uuid.uuid4()),
        "class_id": str(uuid.uuid4()),
        "course_code": "ENG5",
        "match_results": [
            {
                "essay_id": essay_id,
                "text_storage_id": "storage-1",
                "filename": "essay.docx",
                "suggestions": [
                    {
                        "student_id": str(uuid.uuid4()),
                        "student_name": "Anna Andersson",
                        "student_email": "anna@example.com",
                        "confidence_score": 0.92,
                        "match_reasons": ["name_exact"],
                        "extraction_metadata": {"method": "header"},
                    }
                ],
                "no_match_reason": None,
                "extraction_metadata": {},
            }
        ],
        "processing_summary": {"total_essays": 1, "matched": 1, "no_match": 0, "errors": 0},
        "processing_metadata": {"model": "v3"},
    }
    data.update(data_overrides)
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": topics.BATCH_AUTHOR_MATCHES_SUGGESTED,
        "event_timestamp": "2025-01-01T10:00:01Z",
        "source_service": "nlp_service",
        "schema_version": 1,
        "correlation_id": str(uuid.uuid4()),
        "data_schema_uri": None,
        "data": data,
        "metadata": {"partition_key": data.get("batch_id")},
    }


def encode(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope).encode()


def poison_reason(value: bytes | None) -> str:
    with pytest.raises(PoisonMessage) as caught:
        decode_author_match_event(value)
    return caught.value.reason


def test_platform_shaped_event_decodes() -> None:
    envelope = platform_event()
    event = decode_author_match_event(encode(envelope))
    assert str(event.event_id) == envelope["event_id"]
    assert str(event.correlation_id) == envelope["correlation_id"]
    payload = event.payload
    assert str(payload.batch_id) == envelope["data"]["batch_id"]
    assert payload.course_code is CourseCode.ENG5
    [result] = payload.match_results
    assert result.filename == "essay.docx"
    assert result.suggestions[0]["confidence_score"] == 0.92
    # Only the declared fields are kept (the student's name, e-mail and metadata are not).
    assert set(result.suggestions[0]) == {"student_id", "confidence_score", "match_reasons"}
    assert match_reasons(result.suggestions[0]) == ("name_exact",)
    assert payload.processing_summary["total_essays"] == 1


@pytest.mark.parametrize(
    "event_type",
    [topics.BATCH_AUTHOR_MATCHES_SUGGESTED, topics.BATCH_AUTHOR_MATCHES_SUGGESTED_SHORT],
)
def test_both_event_type_spellings_are_accepted(event_type: str) -> None:
    envelope = platform_event()
    envelope["event_type"] = event_type
    decode_author_match_event(encode(envelope))


def test_other_event_types_are_poison() -> None:
    envelope = platform_event()
    envelope["event_type"] = "huleedu.something.else.v1"
    assert poison_reason(encode(envelope)) == "unexpected_event_type"


def test_older_producers_without_course_code_are_accepted() -> None:
    envelope = platform_event()
    del envelope["data"]["course_code"]
    assert decode_author_match_event(encode(envelope)).payload.course_code is None


def test_unknown_extra_fields_are_tolerated_everywhere() -> None:
    envelope = platform_event()
    envelope["future_envelope_field"] = {"x": 1}
    envelope["data"]["future_payload_field"] = [1, 2]
    envelope["data"]["match_results"][0]["future_essay_field"] = "y"
    envelope["data"]["match_results"][0]["suggestions"][0]["future_suggestion_field"] = True
    decode_author_match_event(encode(envelope))


def test_minimal_payload_decodes() -> None:
    envelope = platform_event()
    envelope["data"] = {
        "batch_id": str(uuid.uuid4()),
        "class_id": str(uuid.uuid4()),
        "match_results": [{"essay_id": str(uuid.uuid4()), "suggestions": []}],
    }
    event = decode_author_match_event(encode(envelope))
    assert event.payload.match_results[0].suggestions == []


def test_single_essay_batch_id_is_a_malformed_id() -> None:
    assert poison_reason(encode(platform_event(batch_id="single-essay-batch"))) == "malformed_id"


def test_non_uuid_essay_id_is_a_malformed_id() -> None:
    envelope = platform_event()
    envelope["data"]["match_results"][0]["essay_id"] = "essay-17"
    with pytest.raises(PoisonMessage) as caught:
        decode_author_match_event(encode(envelope))
    assert caught.value.reason == "malformed_id"
    assert "essay_id" in caught.value.error


def test_non_uuid_class_and_student_ids_are_malformed_ids() -> None:
    assert poison_reason(encode(platform_event(class_id="class-9"))) == "malformed_id"
    envelope = platform_event()
    envelope["data"]["match_results"][0]["suggestions"][0]["student_id"] = "anna"
    assert poison_reason(encode(envelope)) == "malformed_id"


@pytest.mark.parametrize("confidence", [1.5, -0.1, "high"])
def test_confidence_outside_zero_to_one_is_schema_invalid(confidence: Any) -> None:
    envelope = platform_event()
    envelope["data"]["match_results"][0]["suggestions"][0]["confidence_score"] = confidence
    assert poison_reason(encode(envelope)) == "schema_invalid"


def test_nan_confidence_is_schema_invalid() -> None:
    envelope = platform_event()
    raw = encode(envelope).replace(b"0.92", b"NaN")
    assert poison_reason(raw) in {"schema_invalid", "invalid_json"}


def test_missing_payload_fields_and_unknown_course_are_schema_invalid() -> None:
    envelope = platform_event()
    del envelope["data"]["class_id"]
    assert poison_reason(encode(envelope)) == "schema_invalid"
    assert poison_reason(encode(platform_event(course_code="MATH1"))) == "schema_invalid"
    assert poison_reason(encode(platform_event(match_results="nope"))) == "schema_invalid"


def test_non_json_and_empty_values_are_poison() -> None:
    assert poison_reason(b"\x00\x01 not json") == "invalid_json"
    assert poison_reason(b"{truncated") == "invalid_json"
    assert poison_reason(b"") == "empty_message"
    assert poison_reason(None) == "empty_message"


def test_envelope_without_event_id_or_with_non_object_data_is_invalid_envelope() -> None:
    envelope = platform_event()
    del envelope["event_id"]
    assert poison_reason(encode(envelope)) == "invalid_envelope"
    envelope = platform_event()
    envelope["data"] = [1, 2]
    assert poison_reason(encode(envelope)) == "invalid_envelope"
    assert poison_reason(b"[1, 2, 3]") == "invalid_envelope"


def test_reason_order_when_envelope_type_and_payload_are_all_wrong() -> None:
    # The one-pass decode refuses these; the reason is still the first failing step's.
    envelope = platform_event(batch_id="single-essay-batch")
    envelope["event_type"] = "huleedu.something.else.v1"
    assert poison_reason(encode(envelope)) == "unexpected_event_type"
    del envelope["correlation_id"]
    assert poison_reason(encode(envelope)) == "invalid_envelope"


def test_whitespace_only_value_is_an_empty_message() -> None:
    assert poison_reason(b" \n\t ") == "empty_message"


def test_informational_fields_are_not_validated() -> None:
    envelope = platform_event()
    essay = envelope["data"]["match_results"][0]
    essay["extraction_metadata"] = "not an object"
    essay["suggestions"][0]["student_name"] = {"unexpected": ["shape"]}
    event = decode_author_match_event(encode(envelope))
    assert event.payload.match_results[0].suggestions[0]["confidence_score"] == 0.92


def test_a_suggestion_without_reasons_has_none() -> None:
    envelope = platform_event()
    del envelope["data"]["match_results"][0]["suggestions"][0]["match_reasons"]
    [result] = decode_author_match_event(encode(envelope)).payload.match_results
    assert match_reasons(result.suggestions[0]) == ()
