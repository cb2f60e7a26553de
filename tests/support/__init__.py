"""What the tests share besides fixtures: the worlds they build (ledgers, indexes, served apps) and the helpers that
write, read and check them. Test modules and ``conftest.py`` files import from here; fixtures are defined in the
``conftest.py`` files only (issue 12)."""
