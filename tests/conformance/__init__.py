"""Conformance suites: one per core interface, run against every implementation and layer.

A suite is a class of tests written against the interface only; a test module
subclasses it and provides the implementation as a fixture.
"""

import pytest

# The suites live outside test files, so ask pytest to rewrite their asserts too.
pytest.register_assert_rewrite("tests.conformance.content")
