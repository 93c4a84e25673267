import sys

from pynn.cli import main

sys.exit(main())
