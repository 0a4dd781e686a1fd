"""Test tooling, run from the repository's root (not part of the installed package).

``python -m tests.tools.fuzz fcs --seconds 300`` fuzzes the FCS reader;
``python -m tests.tools.reliability_report`` runs the reliability tests and writes
``docs/RELIABILITY.md``. The tests import :func:`tests.tools.reliability_report.record` as
``tools.reliability_report`` (pytest puts ``tests/`` on ``sys.path``).
"""
