"""`python -m local_infra ...` is the same as the `local-infra` command."""

import sys

from local_infra.cli import main

sys.exit(main())
