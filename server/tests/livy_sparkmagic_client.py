"""sparkmagic's Livy client library (`sparkmagic.livyclientlib` from PyPI, what Jupyter's
%%spark magics use against Synapse, EMR and HDInsight) against `spool livy-local`: create a
session, run a statement of each kind the endpoint supports (pyspark, sql), read the results
in each shape (text/plain, application/json, error), list and delete.

Usage: python livy_sparkmagic_client.py BASE_URL. Exits non-zero, with the reason, on any
mismatch.
"""

import importlib.util
import json
import sys
import time
import types


def _register_sparkmagic_without_its_init():
    """sparkmagic's package __init__ loads its Jupyter server extension (jupyter_server,
    tornado, the kernels' magics and plotting widgets), which its Livy client library does not
    use and the tests do not install (requirements-no-deps.txt). Registers the package without
    running __init__, so that its submodules import on their own."""
    spec = importlib.util.find_spec("sparkmagic")
    package = types.ModuleType("sparkmagic")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["sparkmagic"] = package


_register_sparkmagic_without_its_init()

import sparkmagic.utils.constants as constants  # noqa: E402 - after the registration above
from sparkmagic.livyclientlib.command import Command  # noqa: E402
from sparkmagic.livyclientlib.endpoint import Endpoint  # noqa: E402
from sparkmagic.livyclientlib.livyreliablehttpclient import LivyReliableHttpClient  # noqa: E402
from sparkmagic.livyclientlib.livysession import LivySession  # noqa: E402
from sparkmagic.livyclientlib.sqlquery import SQLQuery  # noqa: E402


class QuietDisplay:
    """sparkmagic writes progress to Jupyter; outside a notebook there is nothing to show."""

    def writeln(self, _text):
        pass

    def write(self, _text):
        pass

    def html(self, _html):
        pass

    def display(self, _widget):
        pass

    def send_error(self, text):
        print(text, file=sys.stderr)


def wait_statement(http, session_id, statement_id):
    for _ in range(600):
        statement = http.get_statement(session_id, statement_id)
        if statement["state"] in constants.FINAL_STATEMENT_STATUS:
            return statement
        time.sleep(0.1)
    raise AssertionError("statement %s did not finish" % statement_id)


def main(url):
    http = LivyReliableHttpClient.from_endpoint(Endpoint(url, None))
    session = LivySession(
        http,
        {constants.LIVY_KIND_PARAM: constants.SESSION_KIND_PYSPARK, "name": "sparkmagic"},
        QuietDisplay(),
    )
    # Creates the session, waits for idle, checks `spark` exists (sparkmagic's own statement).
    session.start()
    session_id = session.id
    try:
        assert session.status == constants.IDLE_SESSION_STATUS, session.status
        assert session.sql_context_variable_name == "spark"

        ok, out, mime = Command("print(spark.range(5).count())").execute(session)
        assert (ok, out.strip(), mime) == (True, "5", constants.MIMETYPE_TEXT_PLAIN), (ok, out, mime)

        ok, out, _ = Command("raise ValueError('from sparkmagic')").execute(session)
        assert not ok and "from sparkmagic" in out, out

        # %%sql as sparkmagic runs it: pyspark code that prints one JSON row per line.
        frame = SQLQuery("SELECT 40 + 2 AS answer, 'x' AS letter").execute(session)
        assert list(frame["answer"]) == [42] and list(frame["letter"]) == ["x"], frame

        # A statement of kind sql, through the same client: Livy's application/json table.
        posted = http.post_statement(session.id, {"code": "SELECT 1 AS one", "kind": "sql"})
        done = wait_statement(http, session.id, posted["id"])
        table = done["output"]["data"][constants.MIMETYPE_APPLICATION_JSON]
        assert table["data"] == [[1]], json.dumps(table)
        assert table["schema"]["fields"][0]["name"] == "one", json.dumps(table)

        listed = {s["id"]: s for s in http.get_sessions()["sessions"]}
        assert listed[session.id]["state"] == constants.IDLE_SESSION_STATUS, listed
        logs = http.get_all_session_logs(session.id)
        assert isinstance(logs["log"], list), logs
    finally:
        session.delete()
    assert session.status == constants.DEAD_SESSION_STATUS, session.status
    gone = {s["id"] for s in http.get_sessions()["sessions"]}
    assert session_id not in gone, gone
    print("sparkmagic client: ok")


if __name__ == "__main__":
    main(sys.argv[1])
