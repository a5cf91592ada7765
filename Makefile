# The two commands of the README. Both set up a fresh machine first.
.PHONY: demo test

# Starts a GraphPipe server on the embedded demo model and calls it.
demo:
	bash scripts/bootstrap.sh
	.venv/bin/tf-graphpipe demo

# Builds, installs and runs the whole test suite against the installed package.
test:
	bash scripts/bootstrap.sh test,notebooks,bench
	.venv/bin/pytest
