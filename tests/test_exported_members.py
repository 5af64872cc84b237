"""Every public name is exported explicitly, and nothing private leaks."""

from __future__ import annotations

import signalwire_calls
from signalwire_calls import commands, errors, events, legs, receiver, testing


def test_all_is_sorted_and_complete() -> None:
    exported = signalwire_calls.__all__
    assert exported == sorted(exported)
    assert len(exported) == len(set(exported))
    public = {
        name
        for name, value in vars(signalwire_calls).items()
        if not name.startswith("_") and not isinstance(value, type(signalwire_calls))
    }
    public.discard("annotations")
    assert public == set(exported) - {"__version__"}


def test_every_export_resolves() -> None:
    for module in (signalwire_calls, commands, errors, events, legs, receiver, testing):
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"


def test_errors_tree_is_exported_whole() -> None:
    error_classes = {
        name
        for name in errors.__all__
        if isinstance(getattr(errors, name), type) and issubclass(getattr(errors, name), Exception)
    }
    assert error_classes <= set(signalwire_calls.__all__)
