import sys

from mb.cli import main

sys.exit(main())
