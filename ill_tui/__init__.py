"""ill-tui: interlibrary-loan work in the terminal.

The package ``ill_tui`` is the core: what ILL work *is* (requests, partners, the workflow
state machines, money) with no terminal in it. ``app.py`` and ``cli.py`` are the composition
root, the only modules that wire concrete adapters and screens in.
"""

__version__ = "0.1.0"
