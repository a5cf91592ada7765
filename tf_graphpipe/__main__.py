# SPDX-License-Identifier: Apache-2.0
"""``python -m tf_graphpipe``: the ``tf-graphpipe`` command."""
import sys

from tf_graphpipe.cli import main

if __name__ == "__main__":
    sys.exit(main())
