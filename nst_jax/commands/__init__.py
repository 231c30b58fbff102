"""Console commands (``[project.scripts]`` in ``pyproject.toml``)."""
