"""``check`` as a subprocess: all fine on a complete setup; otherwise exit 1 with one readable
reason per failing check."""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from class_management_service.messaging import topics
from tests.service.cli.conftest import CliRunner
from tests.service_process import PREFIX

PUBLISHED = [
    topics.STUDENT_ASSOCIATIONS_CONFIRMED,
    topics.CLASS_CREATED,
    topics.CLASS_UPDATED,
    topics.STUDENT_CREATED,
    topics.STUDENT_UPDATED,
    topics.TEACHER_NOTIFICATION_REQUESTED,
]


async def _create_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for name in names:  # one by one: the platform's topics may exist from other tests
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(name, 1, 1)])
    finally:
        await admin.close()


async def test_check_passes_when_everything_the_service_needs_is_there(
    broker_cli: CliRunner, kafka_bootstrap: str
) -> None:
    env = broker_cli.env
    consumed = env[PREFIX + "AUTHOR_MATCHES_TOPIC"]
    missing_topic = await broker_cli("check")
    assert missing_topic.returncode == 1, missing_topic
    assert f"FAIL  kafka          topics missing: {consumed}" in missing_topic.stdout

    await _create_topics(kafka_bootstrap, [consumed, env[PREFIX + "DEAD_LETTER_TOPIC"], *PUBLISHED])
    finished = await broker_cli("check")
    assert finished.returncode == 0, finished
    lines = finished.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["ok", "configuration"],
        ["ok", "database"],
        ["ok", "redis"],
        ["ok", "kafka"],
    ]


async def test_check_names_every_problem_and_exits_1(
    cli: CliRunner, empty_database_url: str
) -> None:
    finished = await cli(
        "check",
        "--timeout",
        "5",
        env={"INTERNAL_API_KEY": "", "DATABASE_URL": empty_database_url},
    )
    assert finished.returncode == 1, finished
    failures = {
        line.split()[1]: line for line in finished.stdout.splitlines() if line.startswith("FAIL")
    }
    assert set(failures) == {"configuration", "database", "redis", "kafka"}, finished
    assert "no internal API key" in failures["configuration"]
    assert "schema at migration none" in failures["database"]
    assert "run `class-management-service migrate`" in failures["database"]
    assert "cannot reach Redis" in failures["redis"]
    assert "127.0.0.1:1" in failures["kafka"]
