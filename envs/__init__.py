"""Tasks, wrappers and preferences. A leaf package: imports only gymnasium, mujoco and pymdp.

``TASKS`` maps a task name to ``("module:attr", one-line description)``; entries are
imported only when used.
"""

TASKS: dict[str, tuple[str, str]] = {}
