"""Use cases: each takes an explicit session (and the ports it needs) and returns entities or
plain results. Screens call these; they never open sessions themselves."""
