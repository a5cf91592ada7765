# The two commands of the README. Both set up a fresh machine first.
.PHONY: demo test check

# Starts a GraphPipe server on the embedded demo model and calls it.
demo:
	bash scripts/bootstrap.sh
	.venv/bin/tf-graphpipe demo

# Builds and installs the package, runs the static checks, then the whole
# test suite against the installed package.
test:
	bash scripts/bootstrap.sh test,notebooks,bench
	$(MAKE) check
	.venv/bin/pytest

# The static checks alone (after a bootstrap with the test extra): ruff with
# the rules of pyproject.toml, and mypy --strict on the package, whose native
# module is typed by tf_graphpipe/_native.pyi.
check:
	.venv/bin/ruff check tf_graphpipe tests bench
	.venv/bin/mypy --strict tf_graphpipe
