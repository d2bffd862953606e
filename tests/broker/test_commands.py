"""Client command parsing: valid forms and the error for each invalid one."""

from __future__ import annotations

import pytest

from eegpi.broker.commands import CommandError, ListTopics, Subscribe, Unsubscribe, parse_command


def test_valid_commands() -> None:
    assert parse_command('{"subscribe": "eeg"}') == Subscribe("eeg", "json", 10.0)
    assert parse_command('{"subscribe": "eeg", "format": "binary", "max_latency_ms": 0}') == (
        Subscribe("eeg", "binary", 0.0)
    )
    assert parse_command('{"unsubscribe": "eeg"}') == Unsubscribe("eeg")
    assert parse_command('{"list_topics": true}') == ListTopics()


@pytest.mark.parametrize(
    ("text", "code", "words"),
    [
        ("nope", "bad_json", "not valid JSON"),
        ("[" * 100000 + "]" * 100000, "bad_json", "not valid JSON"),
        ("42", "bad_request", "JSON object"),
        ('{"subscribe": "eeg", "max_latency_ms": 5000}', "bad_request", "between 0 and 1000"),
        ('{"subscribe": "eeg", "max_latency_ms": true}', "bad_request", "milliseconds"),
        ('{"subscribe": ""}', "bad_request", "not a valid name"),
        ('{"ping": 1}', "unknown_command", "'ping'"),
    ],
)
def test_invalid_commands_name_the_problem(text: str, code: str, words: str) -> None:
    with pytest.raises(CommandError) as error:
        parse_command(text)
    assert error.value.code == code
    assert words in error.value.message
    assert error.value.to_json()["error"]["code"] == code
