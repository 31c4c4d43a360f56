"""The `livy` package from PyPI (a Livy client Spool did not write) against `spool livy-local`.

Usage: python livy_python_client.py BASE_URL. Exits non-zero, with the reason, on any mismatch.
"""

import sys

from livy import LivySession, SessionKind
from livy.client import LivyClient
from livy.models import SessionState, SparkRuntimeError, StatementKind, StatementState


def main(url):
    client = LivyClient(url)
    assert not client.legacy_server(), "the endpoint must report Livy >= 0.5"
    with LivySession.create(url, kind=SessionKind.PYSPARK, name="python-client", echo=False) as session:
        assert session.state == SessionState.IDLE, session.state

        assert session.run("1 + 1").text == "2"
        assert session.run("print('a')\nprint('b')").text == "a\nb"

        session.run("frame = spark.range(4).selectExpr('id', 'id * id AS square')")
        downloaded = session.download("frame")
        assert list(downloaded["square"]) == [0, 1, 4, 9], downloaded

        try:
            session.run("raise ValueError('from the test')")
            raise AssertionError("the failing statement did not raise")
        except SparkRuntimeError as error:
            assert error.ename == "ValueError", error.ename
            assert error.evalue == "from the test", error.evalue
            assert any("from the test" in line for line in error.traceback), error.traceback

        sql = client.create_statement(session.session_id, "SELECT 40 + 2 AS answer", StatementKind.SQL)
        while sql.state in (StatementState.WAITING, StatementState.RUNNING):
            sql = client.get_statement(session.session_id, sql.statement_id)
        assert sql.output.json["data"] == [[42]], sql.output.json

        listed = {s.session_id: s for s in client.list_sessions()}
        assert listed[session.session_id].state == SessionState.IDLE
        statements = client.list_statements(session.session_id)
        assert [s.statement_id for s in statements] == sorted(s.statement_id for s in statements)
        assert all(s.state == StatementState.AVAILABLE for s in statements)
        session_id = session.session_id
    # Leaving the block deletes the session.
    assert client.get_session(session_id) is None
    print("livy client: ok")


if __name__ == "__main__":
    main(sys.argv[1])
