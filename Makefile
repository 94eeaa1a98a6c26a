# Developer shortcuts; CI runs .ci/run (which installs what is missing first).
.PHONY: check lint test typecheck

check:  ## the lint gate and the tests, as CI runs them, without installing anything
	CI=$${CI:-false} ILL_TUI_CI_SKIP_INSTALL=1 .ci/run

lint:
	ruff check .
	ruff format --check .
	lint-imports

test:
	python3 -m pytest -q

typecheck:  ## mypy --strict on ill_tui, adapters and screens (part of CI)
	mypy
