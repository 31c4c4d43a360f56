"""Unit tests of the session driver's cancel bookkeeping (no Spark needed).

Run by scripts/test.sh: python3 -m unittest discover -s python
"""

import signal
import unittest

import livy_repl


class CancelBeforeStart(unittest.TestCase):
    """A cancel can reach the driver before its main thread has taken the statement the endpoint
    already marked running (seen in CI under load: the statement then ran its full two minutes)."""

    def test_a_statement_cancelled_before_it_started_does_not_run(self):
        c = livy_repl.Cancellation()
        self.assertFalse(c.request(7), "nothing to interrupt yet")
        self.assertFalse(c.start(7))
        self.assertTrue(c.start(8), "the next statement runs")

    def test_a_running_statement_is_interrupted(self):
        c = livy_repl.Cancellation()
        self.assertTrue(c.start(3))
        self.assertTrue(c.request(3))
        with self.assertRaises(KeyboardInterrupt):
            c.on_sigint(signal.SIGINT, None)

    def test_a_late_cancel_of_a_finished_statement_hits_nothing(self):
        c = livy_repl.Cancellation()
        self.assertTrue(c.start(3))
        c.finish()
        self.assertFalse(c.request(3))
        self.assertTrue(c.start(4), "the next statement is not cancelled by it")
        c.on_sigint(signal.SIGINT, None)  # no pending cancel: the signal is ignored

    def test_a_cancel_meant_for_another_statement_does_not_interrupt(self):
        c = livy_repl.Cancellation()
        self.assertTrue(c.start(5))
        self.assertFalse(c.request(4))
        c.on_sigint(signal.SIGINT, None)

    def test_early_cancels_are_bounded(self):
        c = livy_repl.Cancellation()
        for statement in range(1, 10 * livy_repl.MAX_EARLY_CANCELS):
            c.request(statement)
        self.assertLessEqual(len(c.before_start), livy_repl.MAX_EARLY_CANCELS)


if __name__ == "__main__":
    unittest.main()
