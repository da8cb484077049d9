"""The ``>>>`` examples in the docstrings of the pure modules run, and say what they show.

Each module here has runnable examples only (illustrative ones that need a server, a store
or a compiler are marked ``# doctest: +SKIP`` in their module, or the module is not listed).
A module joins the list once its examples are true; every listed module must have at least
one, so an example deleted by accident fails here.
"""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "aibridge.decision",
    "aibridge.errors",
    "aibridge.features",
    "aibridge.ingest.broker_clock",
    "aibridge.ingest.naming",
    "aibridge.instruments",
    "aibridge.labels",
    "aibridge.mt4.rewrite",
    "aibridge.protocol",
    "aibridge.risk",
    "aibridge.server.ledger",
    "aibridge.settings",
    "aibridge.training",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{name} has no >>> example"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} fail"
